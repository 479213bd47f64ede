package auditlog

import (
	"archive/tar"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/etatcivil/etatcivil/internal/merkle"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/tsa"
)

// FileProblem is one thing audit check found wrong, and in which file.
type FileProblem struct {
	File    string `json:"file"`
	Problem string `json:"problem"`
}

// CheckReport is audit check's verdict on a bundle.
type CheckReport struct {
	OK          bool          `json:"ok"`
	Commune     string        `json:"commune"`
	Year        int           `json:"year"`
	Acts        int           `json:"acts"`
	Events      int           `json:"events"`
	Checkpoints int           `json:"checkpoints"`
	Unanchored  int           `json:"unanchored_events"`
	Problems    []FileProblem `json:"problems"`
}

// MaxBundleFile bounds one file read from a bundle (a sealed PDF is
// verified in memory).
const MaxBundleFile = 256 << 20

// Check verifies a bundle written by Export, offline: the manifest's seal
// against roots, every file's SHA-256 and size, no file missing or added,
// each PDF's seal, each checkpoint's seal, each event's encoding against
// its fields, its act among the bundle's, and its inclusion proof up to
// its checkpoint's root. Every problem names its file.
func Check(r io.Reader, roots *x509.CertPool) (CheckReport, error) {
	rep := CheckReport{Problems: []FileProblem{}}
	fail := func(file, format string, args ...any) {
		rep.Problems = append(rep.Problems, FileProblem{File: file, Problem: fmt.Sprintf(format, args...)})
	}
	verifyTS := func(token, imprint []byte) (time.Time, error) {
		info, err := tsa.Verify(token, imprint, crypto.SHA256, roots)
		return info.Time, err
	}
	tr := tar.NewReader(r)
	next := func() (*tar.Header, []byte, error) {
		h, err := tr.Next()
		if err != nil {
			return nil, nil, err
		}
		if h.Size > MaxBundleFile {
			return h, nil, fmt.Errorf("%s : %d octets, plus que %d", h.Name, h.Size, MaxBundleFile)
		}
		b, err := io.ReadAll(io.LimitReader(tr, MaxBundleFile))
		return h, b, err
	}
	h, mb, err := next()
	if err != nil || h.Name != "manifest.json" {
		return rep, errors.New("ce n'est pas un export etatcivil : manifest.json doit être le premier fichier de l'archive tar")
	}
	h, sig, err := next()
	if err != nil || h.Name != "manifest.json.p7s" {
		return rep, errors.New("export incomplet : manifest.json.p7s doit suivre manifest.json")
	}
	if _, err := seal.VerifyDetached(mb, sig, roots, verifyTS); err != nil {
		fail("manifest.json", "cachet du manifeste invalide : %v", err)
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil || m.Format != ExportFormat {
		fail("manifest.json", "manifeste illisible ou d'un autre format")
		return finish(rep), nil
	}
	rep.Commune, rep.Year, rep.Unanchored = m.Commune, m.Year, m.Unanchored
	want := map[string]ExportFile{}
	for _, f := range m.Files {
		want[f.Path] = f
	}
	acts := map[string]bool{}
	pdfs := map[string]bool{}
	for _, a := range m.Acts {
		acts[a.ActID] = true
		pdfs[a.File] = true
	}
	got := map[string][]byte{} // the small files, kept for the checks below
	seen := map[string]bool{}
	for {
		h, b, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			name := ""
			if h != nil {
				name = h.Name
			}
			fail(name, "illisible : %v", err)
			return finish(rep), nil
		}
		f, listed := want[h.Name]
		switch {
		case !listed:
			fail(h.Name, "fichier absent du manifeste (ajouté)")
			continue
		case seen[h.Name]:
			fail(h.Name, "fichier en double")
			continue
		}
		seen[h.Name] = true
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(b)) != f.Size {
			fail(h.Name, "contenu modifié : SHA-256 %x (%d octets), le manifeste dit %s (%d octets)", sum, len(b), f.SHA256, f.Size)
			continue
		}
		if pdfs[h.Name] {
			rep.Acts++
			if _, err := seal.VerifyTimestamped(b, roots, verifyTS); err != nil {
				fail(h.Name, "cachet PAdES invalide : %v", err)
			}
			continue
		}
		got[h.Name] = b
	}
	for _, f := range m.Files {
		if !seen[f.Path] {
			fail(f.Path, "fichier manquant")
		}
	}

	roots2 := map[int64][]byte{} // checkpoint number → root
	for _, n := range m.Checkpoints {
		jp, sp := fmt.Sprintf("points-d-ancrage/%012d.json", n), fmt.Sprintf("points-d-ancrage/%012d.p7s", n)
		doc, sig := got[jp], got[sp]
		if doc == nil || sig == nil {
			continue // already named: missing or modified
		}
		if _, err := seal.VerifyDetached(doc, sig, roots, verifyTS); err != nil {
			fail(jp, "cachet du point d'ancrage invalide : %v", err)
			continue
		}
		var d Document
		if err := json.Unmarshal(doc, &d); err != nil || d.Type != DocumentType || d.Number != n {
			fail(jp, "point d'ancrage illisible")
			continue
		}
		root, err := hex.DecodeString(d.Root)
		if err != nil {
			fail(jp, "racine illisible")
			continue
		}
		roots2[n] = root
		rep.Checkpoints++
	}
	if eb := got["evenements.json"]; eb != nil {
		var events []ProvenEvent
		if err := json.Unmarshal(eb, &events); err != nil {
			fail("evenements.json", "illisible : %v", err)
		}
		docs := map[int64]Document{}
		for _, n := range m.Checkpoints {
			var d Document
			if json.Unmarshal(got[fmt.Sprintf("points-d-ancrage/%012d.json", n)], &d) == nil {
				docs[n] = d
			}
		}
		for _, e := range events {
			if p := checkEvent(e, acts, docs, roots2); p != "" {
				fail("evenements.json", "événement n° %d : %s", e.Seq, p)
				continue
			}
			rep.Events++
		}
		if len(events) != m.Events {
			fail("evenements.json", "%d événements, le manifeste en annonce %d", len(events), m.Events)
		}
	}
	return finish(rep), nil
}

func finish(r CheckReport) CheckReport {
	r.OK = len(r.Problems) == 0
	return r
}

// checkEvent verifies one event of a bundle; "" when it holds.
func checkEvent(e ProvenEvent, acts map[string]bool, docs map[int64]Document, roots map[int64][]byte) string {
	fields, err := ParseEncoding(e.Encoding)
	if err != nil {
		return err.Error()
	}
	str := func(p *string) string {
		if p == nil {
			return "-"
		}
		return *p
	}
	data, _ := json.Marshal(e.Data)
	var dataStored any
	_ = json.Unmarshal([]byte(fields[11]), &dataStored)
	storedData, _ := json.Marshal(dataStored)
	switch {
	case fields[0] != strconv.FormatInt(e.ID, 10), fields[12] != strconv.FormatInt(e.Seq, 10):
		return "numéro ou identifiant différent de l'encodage scellé"
	case fields[3] != e.Actor, fields[4] != e.Name, fields[5] != e.Action:
		return "auteur ou action différents de l'encodage scellé"
	case fields[7] != str(e.ActID), fields[9] != str(e.Purpose), fields[6] != str(e.BatchID), fields[8] != str(e.EntryID):
		return "acte, lot ou finalité différents de l'encodage scellé"
	case string(data) != string(storedData):
		return "données différentes de l'encodage scellé"
	case fields[1] != strconv.FormatInt(e.At.UnixMicro(), 10):
		return "date différente de l'encodage scellé"
	}
	if e.ActID == nil || !acts[*e.ActID] {
		return "concerne un acte absent de l'export"
	}
	d, ok := docs[e.Checkpoint]
	root := roots[e.Checkpoint]
	if !ok || root == nil {
		return fmt.Sprintf("point d'ancrage n° %d absent ou invalide", e.Checkpoint)
	}
	if e.Seq < d.FirstSeq || e.Seq > d.LastSeq || e.Index != e.Seq-d.FirstSeq {
		return fmt.Sprintf("hors du point d'ancrage n° %d", e.Checkpoint)
	}
	proof := make([][]byte, len(e.Proof))
	for i, p := range e.Proof {
		if proof[i], err = hex.DecodeString(p); err != nil {
			return "preuve illisible"
		}
	}
	digest := sha256.Sum256([]byte(e.Encoding))
	if err := merkle.VerifyInclusion(merkle.LeafHash(digest[:]), int(e.Index), int(d.TreeSize), proof, root); err != nil {
		return fmt.Sprintf("preuve d'inclusion invalide dans le point d'ancrage n° %d", e.Checkpoint)
	}
	return ""
}

// encodingPrefix starts every event encoding (audit_event_encoding).
const encodingPrefix = "etatcivil-audit-v1|"

// ParseEncoding splits an event's encoding into its 13 fields (id, at in
// microseconds, xid, actor, actor_name, action, batch_id, act_id,
// entry_id, purpose, reason_sha256, data, seq), "-" for NULL; lengths
// count characters, as PostgreSQL's length().
func ParseEncoding(s string) ([]string, error) {
	if !strings.HasPrefix(s, encodingPrefix) {
		return nil, errors.New("encodage d'un autre format")
	}
	s = s[len(encodingPrefix):]
	var out []string
	for s != "" {
		if s[0] == '-' {
			out, s = append(out, "-"), s[1:]
			continue
		}
		colon := strings.IndexByte(s, ':')
		n, err := strconv.Atoi(s[:max(colon, 0)])
		if colon <= 0 || err != nil || n < 0 {
			return nil, errors.New("encodage illisible")
		}
		s = s[colon+1:]
		i := 0
		for range n {
			if i >= len(s) {
				return nil, errors.New("encodage tronqué")
			}
			_, w := utf8.DecodeRuneInString(s[i:])
			i += w
		}
		out, s = append(out, s[:i]), s[i:]
	}
	if len(out) != 13 {
		return nil, fmt.Errorf("encodage de %d champs, 13 attendus", len(out))
	}
	return out, nil
}
