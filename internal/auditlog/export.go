package auditlog

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/etatcivil/etatcivil/internal/merkle"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/store"
)

// ExportFormat names the export bundle's format (manifest.json "format").
const ExportFormat = "etatcivil-export-1"

// Manifest is an export's manifest.json, sealed in manifest.json.p7s: the
// acts it carries and the SHA-256 of every other file of the bundle.
type Manifest struct {
	Format      string                `json:"format"`
	Commune     string                `json:"commune"`
	Year        int                   `json:"year"`
	CreatedAt   time.Time             `json:"created_at"`
	CreatedBy   string                `json:"created_by"`
	Acts        []ExportAct           `json:"acts"`
	Files       []ExportFile          `json:"files"`
	Checkpoints []int64               `json:"checkpoints"`
	Events      int                   `json:"events"`
	Unanchored  int                   `json:"unanchored_events"`
	Excluded    []store.ExportVersion `json:"excluded"`
}

// ExportAct is one archived act version of an export.
type ExportAct struct {
	store.ExportVersion
	File   string `json:"file"`
	Report string `json:"report"`
}

// ExportFile is one file of the bundle and its checksum.
type ExportFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// ProvenEvent is an event of the export with its Merkle inclusion proof
// in a checkpoint: SHA-256(Encoding) is the event's digest, its leaf is
// LeafHash(digest) at Index of that checkpoint's tree.
type ProvenEvent struct {
	store.ExportEvent
	Checkpoint int64    `json:"checkpoint"`
	Index      int64    `json:"index"`
	Proof      []string `json:"proof"`
}

// ExportRequest says what to export and how to verify each act.
type ExportRequest struct {
	Commune string
	Year    int
	Actor   store.Actor
	// Verify returns an act version's integrity report and whether its
	// bytes are the ledger's (a version that fails is listed as excluded
	// with its report, never exported with other bytes).
	Verify func(ctx context.Context, actID string, version int) (report any, bytesOK bool, err error)
	// Versions, if set, are the versions to export (already listed, and
	// their reads recorded, by the caller); nil: listed here.
	Versions []store.ExportVersion
}

// Export writes a bundle (tar) for a commune and year: the sealed PDFs,
// their integrity reports, the events about them with inclusion proofs,
// the sealed checkpoints those proofs lead to, and a sealed manifest.
// It anchors the chain once the acts are verified. Nothing about another commune's acts is in
// it. audit check verifies it offline.
func (a *Anchor) Export(ctx context.Context, w io.Writer, req ExportRequest) (Manifest, error) {
	m := Manifest{Format: ExportFormat, Commune: req.Commune, Year: req.Year, CreatedAt: time.Now().UTC().Truncate(time.Second),
		CreatedBy: req.Actor.Name + " (" + req.Actor.ID + ")", Acts: []ExportAct{}, Files: []ExportFile{}, Checkpoints: []int64{},
		Excluded: []store.ExportVersion{}}
	versions := req.Versions
	if versions == nil {
		var err error
		if versions, err = a.Store.ExportVersions(ctx, req.Commune, req.Year); err != nil {
			return m, err
		}
	}
	small := map[string][]byte{} // generated files, by path, in order
	var order []string
	addSmall := func(path string, b []byte) {
		sum := sha256.Sum256(b)
		small[path] = b
		order = append(order, path)
		m.Files = append(m.Files, ExportFile{Path: path, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))})
	}
	var actIDs []string
	seen := map[string]bool{}
	for _, v := range versions {
		report, ok, err := req.Verify(ctx, v.ActID, v.Version)
		if err != nil {
			return m, err
		}
		rb, err := json.MarshalIndent(report, "", "  ")
		if err != nil {
			return m, err
		}
		rpath := fmt.Sprintf("rapports/%s-v%d.json", v.ActID, v.Version)
		addSmall(rpath, rb)
		if !ok {
			m.Excluded = append(m.Excluded, v)
			continue
		}
		file := fmt.Sprintf("actes/%s/%d/%s-%05d-v%d.pdf", v.Commune, v.Year, v.Kind, v.Number, v.Version)
		m.Acts = append(m.Acts, ExportAct{ExportVersion: v, File: file, Report: rpath})
		if !seen[v.ActID] {
			seen[v.ActID] = true
			actIDs = append(actIDs, v.ActID)
		}
	}

	// Anchor the chain now, the verifications just recorded included, and
	// carry the events with their proofs in the checkpoints that anchor
	// them.
	if _, err := a.Checkpoint(ctx); err != nil {
		return m, err
	}
	cps, err := a.Store.Checkpoints(ctx)
	if err != nil {
		return m, err
	}
	var anchored int64
	if len(cps) > 0 {
		anchored = cps[len(cps)-1].LastSeq
	}
	events, err := a.Store.ActEvents(ctx, actIDs, anchored)
	if err != nil {
		return m, err
	}
	if m.Unanchored, err = a.Store.CountActEventsAfter(ctx, actIDs, anchored); err != nil {
		return m, err
	}
	proven := make([]ProvenEvent, 0, len(events))
	ci := 0
	var tree *merkle.Tree
	for _, e := range events {
		for ci < len(cps) && cps[ci].LastSeq < e.Seq {
			ci, tree = ci+1, nil
		}
		if ci == len(cps) {
			break
		}
		cp := cps[ci]
		if tree == nil {
			if tree, err = a.leaves(ctx, cp); err != nil {
				return m, err
			}
			m.Checkpoints = append(m.Checkpoints, cp.Number)
			addSmall(fmt.Sprintf("points-d-ancrage/%012d.json", cp.Number), cp.Document)
			addSmall(fmt.Sprintf("points-d-ancrage/%012d.p7s", cp.Number), cp.Signature)
		}
		idx := e.Seq - cp.FirstSeq
		proof, err := tree.Proof(int(idx))
		if err != nil {
			return m, err
		}
		pe := ProvenEvent{ExportEvent: e, Checkpoint: cp.Number, Index: idx, Proof: make([]string, len(proof))}
		for i, p := range proof {
			pe.Proof[i] = hex.EncodeToString(p)
		}
		proven = append(proven, pe)
	}
	m.Events = len(proven)
	eb, err := json.MarshalIndent(proven, "", "  ")
	if err != nil {
		return m, err
	}
	addSmall("evenements.json", eb)
	addSmall("LISEZMOI.txt", []byte(readme))
	for _, act := range m.Acts {
		m.Files = append(m.Files, ExportFile{Path: act.File, SHA256: act.SHA256, Size: act.Size})
	}

	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	sig, err := seal.SignDetached(ctx, mb, a.Key, a.Timestamp)
	if err != nil {
		return m, fmt.Errorf("scellement du manifeste : %w", err)
	}
	tw := tar.NewWriter(w)
	put := func(path string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(b)), ModTime: m.CreatedAt, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := put("manifest.json", mb); err != nil {
		return m, err
	}
	if err := put("manifest.json.p7s", sig); err != nil {
		return m, err
	}
	for _, p := range order {
		if err := put(p, small[p]); err != nil {
			return m, err
		}
	}
	for _, act := range m.Acts {
		if err := a.copyPDF(ctx, tw, act, m.CreatedAt); err != nil {
			return m, err
		}
	}
	return m, tw.Close()
}

func (a *Anchor) copyPDF(ctx context.Context, tw *tar.Writer, act ExportAct, at time.Time) error {
	rc, err := a.Blob.GetArchive(ctx, act.Key, act.VersionID)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := tw.WriteHeader(&tar.Header{Name: act.File, Mode: 0o644, Size: act.Size, ModTime: at, Format: tar.FormatPAX}); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(rc, act.Size))
	if err != nil {
		return err
	}
	// Checked just before by the integrity report; changed since, the
	// export stops rather than carry other bytes under the ledger's sum.
	if n != act.Size || hex.EncodeToString(h.Sum(nil)) != act.SHA256 {
		return fmt.Errorf("export : %s a changé pendant l'export (%d octets lus)", act.File, n)
	}
	return nil
}

// leaves reads a checkpoint's leaves from the bucket, checked against its
// document, as a tree.
func (a *Anchor) leaves(ctx context.Context, cp store.Checkpoint) (*merkle.Tree, error) {
	var doc Document
	if err := json.Unmarshal(cp.Document, &doc); err != nil {
		return nil, err
	}
	raw, err := a.Blob.ReadArchive(ctx, ObjectKey(cp.Number, "leaves"), "", int64(store.MaxCheckpointEvents)*sha256.Size)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	if hex.EncodeToString(sum[:]) != doc.LeavesSHA256 || int64(len(raw)) != doc.TreeSize*sha256.Size {
		return nil, errors.New("export : les feuilles du point d'ancrage ne sont pas celles qu'il scelle — lancez « audit verify »")
	}
	hashes := make([][]byte, doc.TreeSize)
	for i := range hashes {
		hashes[i] = merkle.LeafHash(raw[i*sha256.Size : (i+1)*sha256.Size])
	}
	return merkle.NewTree(hashes), nil
}

const readme = `Export d'etatcivil : actes d'une commune et d'une année, vérifiable sans serveur.

Contenu
  manifest.json        les actes et l'empreinte SHA-256 de chaque fichier
  manifest.json.p7s    son cachet (CMS détaché, horodaté RFC 3161)
  actes/               les PDF scellés (PAdES)
  rapports/            le rapport d'intégrité de chaque version au moment de l'export
  evenements.json      le journal d'audit de ces actes : pour chaque événement,
                       son encodage exact (SHA-256 = empreinte de l'événement)
                       et sa preuve d'inclusion Merkle (RFC 9162) dans un point
                       d'ancrage
  points-d-ancrage/    les points d'ancrage cités, scellés et horodatés

Vérifier
  etatcivil audit check --roots RACINES.pem EXPORT.tar

  ou, à la main :
  openssl cms -verify -binary -purpose any -inform DER -in manifest.json.p7s \
      -content manifest.json -CAfile RACINES.pem -out /dev/null
  sha256sum de chaque fichier, comparé à manifest.json ;
  pdfsig sur chaque PDF ;
  pour chaque événement : feuille = SHA-256(0x00 || SHA-256(encodage)),
  remonter la preuve jusqu'à la racine « root » du point d'ancrage,
  dont le cachet se vérifie comme celui du manifeste.
`
