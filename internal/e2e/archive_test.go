package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etatcivil/etatcivil/internal/ingest"
	"github.com/etatcivil/etatcivil/internal/sample"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/testenv"
)

func pdfsig(t *testing.T, file string) string {
	t.Helper()
	p, err := exec.LookPath("pdfsig")
	if err != nil {
		t.Fatal("pdfsig absent : make tools installe poppler-utils")
	}
	out, _ := exec.Command(p, file).CombinedOutput()
	return string(out)
}

func actJSON(t *testing.T, s *server, id string) store.ActView {
	t.Helper()
	cmd := s.client(context.Background(), s.admin, "act", "show", "--json", id)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("act show: %v", err)
	}
	var a store.ActView
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestArchivedAct: an archived act is fetched sealed and verified, its
// original is the prefix of the sealed file, pdfsig says the seal is
// valid, the object version is locked COMPLIANCE with the ledger's
// SHA-256 and cannot be deleted; the receipt is sealed too; and bytes
// overwritten on the gateway's disk make act fetch fail, writing nothing.
func TestArchivedAct(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	tok := hubToken(t, s)
	dir := t.TempDir()
	if err := sample.Generate(sample.Options{Dir: dir, Count: 2, Seed: 31}); err != nil {
		t.Fatal(err)
	}
	up := s.client(context.Background(), tok, "upload", "--wait", "--timeout", "2m", "--json", dir)
	out, err := up.Output()
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	b := decodeBatch(t, out)
	if b.Counts.Archived != 2 {
		t.Fatalf("lot: %+v", b.Counts)
	}
	e := b.Acts[0]
	a := actJSON(t, s, *e.ID)
	v := a.Versions[0]
	if v.State != "archived" || v.ObjectKey == nil || v.VersionID == nil || v.SealedSHA256 == nil ||
		!strings.HasPrefix(*v.ObjectKey, "acts/"+*e.Commune+"/") || !strings.Contains(*v.ObjectKey, *v.SealedSHA256) {
		t.Fatalf("version archivée: %+v", v)
	}

	// act fetch: sealed, verified, the original as exact prefix, pdfsig valid.
	got := filepath.Join(t.TempDir(), "acte.pdf")
	fetch := s.client(context.Background(), s.admin, "act", "fetch", *e.ID, "-o", got, "--purpose", "controle", "--reason", "test e2e")
	if o, err := fetch.CombinedOutput(); err != nil {
		t.Fatalf("act fetch: %v\n%s", err, o)
	}
	sealed, _ := os.ReadFile(got)
	orig, _ := os.ReadFile(filepath.Join(dir, e.File))
	if !bytes.HasPrefix(sealed, orig) || len(sealed) <= len(orig) {
		t.Fatal("le fichier reçu n'est pas le préfixe du fichier scellé")
	}
	if sha(sealed) != *v.SealedSHA256 {
		t.Fatalf("SHA-256 %s, registre %s", sha(sealed), *v.SealedSHA256)
	}
	if o := pdfsig(t, got); !strings.Contains(o, "Signature is Valid") {
		t.Fatalf("pdfsig:\n%s", o)
	}
	// The integrity report, by the real binary: B-LT (hubs' default, with
	// the TSA and the revocation services the harness serves), every
	// check ok, the timestamps listed, exit 0.
	verify := s.client(context.Background(), s.admin, "act", "verify", *e.ID)
	if o, err := verify.CombinedOutput(); err != nil || !strings.Contains(string(o), "INTÈGRE (niveau B-LT)") || strings.Contains(string(o), "ÉCHEC") ||
		!strings.Contains(string(o), "données de validation") || !strings.Contains(string(o), "horodatage de la signature") {
		t.Fatalf("act verify : %v\n%s", err, o)
	}
	// A hub is not an auditor.
	if o, err := s.client(context.Background(), tok, "act", "verify", *e.ID).CombinedOutput(); err == nil {
		t.Fatalf("act verify par un opérateur accepté :\n%s", o)
	}

	// The object version: COMPLIANCE, the ledger's SHA-256, undeletable.
	ctx := context.Background()
	ret, err := s.blob.Retention(ctx, *v.ObjectKey, *v.VersionID)
	if err != nil || ret.Mode != "COMPLIANCE" || ret.Until.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("rétention %+v %v", ret, err)
	}
	head, err := s.blob.HeadArchive(ctx, *v.ObjectKey, *v.VersionID)
	if err != nil || head.SHA256 != *v.SealedSHA256 {
		t.Fatalf("HEAD %+v %v", head, err)
	}
	if err := s.blob.RemoveArchiveVersion(ctx, *v.ObjectKey, *v.VersionID); err == nil {
		t.Fatal("la suppression d'une version verrouillée a été acceptée")
	}

	// The deposit receipt is sealed with the hub's seal.
	rec := filepath.Join(t.TempDir(), "recepisse.pdf")
	rc := s.client(ctx, tok, "batch", "receipt", b.ID, "-o", rec)
	if o, err := rc.CombinedOutput(); err != nil {
		t.Fatalf("batch receipt: %v\n%s", err, o)
	}
	if o := pdfsig(t, rec); !strings.Contains(o, "Signature is Valid") {
		t.Fatalf("pdfsig du récépissé:\n%s", o)
	}

	// Overwrite the object's bytes on the gateway's disk: fetch must fail.
	data := testenv.S3Env(t).DataDir
	if data == "" {
		t.Fatal("ETATCIVIL_TEST_S3_DATA_DIR absent")
	}
	path := filepath.Join(data, "data", s.archiveBucket(), *v.ObjectKey)
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("objet sur disque: %v", err)
	}
	disk[len(disk)/2] ^= 0xff
	if err := os.WriteFile(path, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "altere.pdf")
	fetch = s.client(ctx, s.admin, "act", "fetch", *e.ID, "-o", bad, "--purpose", "controle")
	o, err := fetch.CombinedOutput()
	if err == nil {
		t.Fatal("act fetch a accepté un objet altéré")
	}
	if !strings.Contains(string(o), "intégrité") {
		t.Fatalf("message peu clair:\n%s", o)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatal("un fichier a été écrit malgré l'écart")
	}
	if n := s.metric(t, "etatcivil_integrity_alerts_total"); n != 1 {
		t.Fatalf("%d alertes d'intégrité", n)
	}
}

// TestCrashPoints kills a worker at every step boundary, then lets a new
// worker finish: every act ends archived exactly once, with one object
// version each in the bucket.
func TestCrashPoints(t *testing.T) {
	t.Parallel()
	for _, point := range ingest.CrashPoints {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			s := startServerArgs(t, []string{"serve", "--workers=false"}, "ETATCIVIL_RESCUE_AFTER=2s",
				// Short step timeouts: River rescues a dead worker's job
				// only once it has outlived its timeout.
				"ETATCIVIL_PDFCHECK_TIMEOUT=8s", "ETATCIVIL_STEP_TIMEOUT=8s")
			tok := hubToken(t, s)
			dir := t.TempDir()
			if err := sample.Generate(sample.Options{Dir: dir, Count: 3, Seed: 41}); err != nil {
				t.Fatal(err)
			}
			up := s.client(context.Background(), tok, "upload", "--json", dir)
			out, err := up.Output()
			if err != nil {
				t.Fatalf("upload: %v", err)
			}
			b := decodeBatch(t, out)

			// The first worker dies at the crash point.
			w1 := exec.Command(s.bin, "worker")
			w1.Env = append(append([]string{}, s.env...), "ETATCIVIL_OPS_ADDR=127.0.0.1:0", ingest.CrashEnv+"="+point)
			var log1 syncBuffer
			w1.Stdout, w1.Stderr = &log1, &log1
			if err := w1.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- w1.Wait() }()
			select {
			case err := <-done:
				if exitCode(err) != 70 {
					t.Fatalf("le worker n'est pas mort au point %s (code %d):\n%s", point, exitCode(err), log1.String())
				}
			case <-time.After(90 * time.Second):
				_ = w1.Process.Kill()
				t.Fatalf("le point %s n'a jamais été atteint:\n%s", point, log1.String())
			}

			// A new worker finishes the batch.
			w2 := exec.Command(s.bin, "worker")
			w2.Env = append(append([]string{}, s.env...), "ETATCIVIL_OPS_ADDR=127.0.0.1:0")
			var log2 syncBuffer
			w2.Stdout, w2.Stderr = &log2, &log2
			if err := w2.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = w2.Process.Signal(os.Interrupt); _ = w2.Wait() }()
			deadline := time.Now().Add(3 * time.Minute)
			for {
				cmd := s.client(context.Background(), tok, "batch", "show", "--json", b.ID)
				o, err := cmd.Output()
				if err == nil {
					b = decodeBatch(t, o)
					if b.Counts.Archived == 3 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("lot non archivé: %+v\njobs: %s\n%s", b.Counts, s.jobs(t), log2.String())
				}
				time.Sleep(250 * time.Millisecond)
			}
			versions, err := s.blob.Versions(context.Background(), "acts/")
			if err != nil {
				t.Fatal(err)
			}
			if len(versions) != 3 {
				t.Fatalf("%d objets archivés, attendu 3: %v", len(versions), versions)
			}
			for k, vs := range versions {
				if len(vs) != 1 {
					t.Errorf("%s : %d versions (duplicated)", k, len(vs))
				}
			}
			for _, e := range b.Acts {
				a := actJSON(t, s, *e.ID)
				n := 0
				for _, h := range a.History {
					if h.State == "archived" {
						n++
					}
				}
				if n != 1 || a.Versions[0].ObjectKey == nil || len(versions[*a.Versions[0].ObjectKey]) != 1 {
					t.Errorf("%s : archivé %d fois, objet %v", e.File, n, a.Versions[0].ObjectKey)
				}
			}
		})
	}
}
