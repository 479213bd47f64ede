package registrysim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/pdfgen"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/seda"
)

// postTransfer sends a one-act package whose PDF is pdf and returns the
// parsed reply.
func postTransfer(t *testing.T, url, key string, pdf []byte) seda.Reply {
	t.Helper()
	sum := sha256.Sum256(pdf)
	tr := seda.Transfer{MessageID: key, Date: time.Now(), Commune: "12202", CommuneName: "Rodez", Year: 2024, Kind: "naissance",
		ArchivalAgency: seda.Identifier{ID: "arch", Name: "Archives"}, TransferringAgency: seda.Identifier{ID: "etatcivil", Name: "etatcivil"},
		Acts: []seda.Act{{ActID: "act-" + key, Commune: "12202", CommuneName: "Rodez", Year: 2024, Kind: "naissance", Number: 1, Version: 1,
			ActDate: "2024-01-02", SealedSHA256: hex.EncodeToString(sum[:]), Size: int64(len(pdf)), FileName: "acts/00001-v1.pdf",
			Persons: []seda.Person{{Role: "titulaire", Surname: "ROUX", GivenNames: []string{"Léa"}}}}}}
	var zip bytes.Buffer
	if err := tr.WriteZip(&zip, func(seda.Act) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(pdf)), nil }); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", url+"/archives/arch", &zip)
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r, err := seda.ParseReply(body)
	if err != nil {
		t.Fatalf("réponse %d illisible : %v\n%s", resp.StatusCode, err, body)
	}
	return r
}

// TestArchivesChecksSeals: a package whose PDF carries a valid seal is
// taken (whoever signed it); one whose PDF is not sealed, or whose seal no
// longer matches its bytes, is refused with the reason.
func TestArchivesChecksSeals(t *testing.T) {
	dir := t.TempDir()
	if err := seal.DevCA(dir); err != nil {
		t.Fatal(err)
	}
	key, err := ingest.LoadKey(filepath.Join(dir, "dev-seal.pem"), filepath.Join(dir, "dev-seal.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	scan := pdfgen.ScanPDF(pdfgen.ScanOptions{Seed: 3, DPI: 72})
	rc, _, err := seal.New().Seal(context.Background(), bytes.NewReader(scan), int64(len(scan)), key, seal.Options{Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New().Handler())
	defer srv.Close()

	if r := postTransfer(t, srv.URL, "k-sealed", sealed); r.ReplyCode != seda.ReplyOK {
		t.Fatalf("paquet scellé refusé : %s", r.Reason)
	}
	if r := postTransfer(t, srv.URL, "k-plain", scan); r.ReplyCode != seda.ReplyKO || !strings.Contains(r.Reason, "sceau") {
		t.Fatalf("paquet non scellé : %s « %s »", r.ReplyCode, r.Reason)
	}
	tampered := bytes.Clone(sealed)
	i := bytes.Index(tampered, []byte("/MediaBox"))
	if i < 0 {
		t.Fatal("pas de /MediaBox à altérer")
	}
	tampered[i+1] = 'm'
	if r := postTransfer(t, srv.URL, "k-tampered", tampered); r.ReplyCode != seda.ReplyKO || !strings.Contains(r.Reason, "sceau") {
		t.Fatalf("paquet altéré : %s « %s »", r.ReplyCode, r.Reason)
	}
}
