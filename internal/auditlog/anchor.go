// Package auditlog anchors the audit chain outside the database and
// proves it: sealed, timestamped Merkle checkpoints written once in the
// archive bucket (Checkpoint), their verification against the events as
// stored (Verify), fixity audits of the archived objects (Fixity), and
// exports an auditor checks offline (Export, Check). See docs/audit.md.
package auditlog

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/etatcivil/etatcivil/internal/blob"
	"github.com/etatcivil/etatcivil/internal/merkle"
	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/store"
	"github.com/etatcivil/etatcivil/internal/tsa"
)

// Prefix is where checkpoints live in the archive bucket: for checkpoint
// n, Prefix+"%012d" with .json (the document), .p7s (its detached seal,
// timestamped) and .leaves (the events' digests, 32 bytes each).
const Prefix = "audit/checkpoints/"

// DocumentType names a checkpoint document.
const DocumentType = "etatcivil-audit-checkpoint"

// Document is a checkpoint as sealed. Leaves are SHA-256(0x00 || d) of
// each event's digest d = SHA-256(its encoding, audit_event_encoding in
// PostgreSQL), in seq order from FirstSeq to LastSeq; Root is their RFC
// 9162 tree head; ChainHead the chain's hash at LastSeq; Previous the
// SHA-256 of the previous checkpoint's document, so the checkpoints are a
// chain of their own.
type Document struct {
	Type         string    `json:"type"`
	Version      int       `json:"version"`
	Number       int64     `json:"number"`
	FirstSeq     int64     `json:"first_seq"`
	LastSeq      int64     `json:"last_seq"`
	TreeSize     int64     `json:"tree_size"`
	Root         string    `json:"root"`
	ChainHead    string    `json:"chain_head"`
	LeavesSHA256 string    `json:"leaves_sha256"`
	Previous     string    `json:"previous"`
	CreatedAt    time.Time `json:"created_at"`
}

// ObjectKey is the archive key of checkpoint n's part (ext: json, p7s, leaves).
func ObjectKey(n int64, ext string) string { return fmt.Sprintf("%s%012d.%s", Prefix, n, ext) }

// Anchor builds and verifies checkpoints.
type Anchor struct {
	Store *store.Store
	Blob  *blob.Store
	// Key seals checkpoints (the server's default seal); nil: Checkpoint
	// fails with store.ErrNoSeal.
	Key *seal.Key
	// Timestamp timestamps the seal (nil: not timestamped).
	Timestamp seal.Timestamper
	// Roots are the trusted roots seals and timestamps verify against.
	Roots *x509.CertPool
	// RetainUntil is the object-lock date of what is written at t.
	RetainUntil func(t time.Time) time.Time
}

// Checkpoint chains every event committed before it was called, then
// anchors every chained event not yet anchored (several checkpoints for a
// long backlog) and returns the documents written, none if there was
// nothing new. A checkpoint half-written by a process that died is
// completed, never duplicated.
func (a *Anchor) Checkpoint(ctx context.Context) ([]Document, error) {
	if a.Key == nil {
		return nil, store.ErrNoSeal
	}
	if _, err := a.Store.ChainCommitted(ctx); err != nil {
		return nil, err
	}
	var out []Document
	for {
		var doc *Document
		more := false
		err := a.Store.WithCheckpointLock(ctx, func(p store.Pending) error {
			if len(p.Digests) == 0 {
				return nil
			}
			more = len(p.Digests) == store.MaxCheckpointEvents
			d, err := a.write(ctx, p)
			doc = d
			return err
		})
		if err != nil {
			return out, err
		}
		if doc != nil {
			out = append(out, *doc)
		}
		if !more {
			return out, nil
		}
	}
}

// maxDocument bounds a checkpoint document or seal read back.
const maxDocument = 1 << 20

func (a *Anchor) write(ctx context.Context, p store.Pending) (*Document, error) {
	number, previous := int64(1), ""
	if p.Last != nil {
		number = p.Last.Number + 1
		sum := sha256.Sum256(p.Last.Document)
		previous = hex.EncodeToString(sum[:])
	}
	leaves := make([][]byte, len(p.Digests))
	raw := make([]byte, 0, len(p.Digests)*sha256.Size)
	for i, d := range p.Digests {
		leaves[i] = merkle.LeafHash(d)
		raw = append(raw, d...)
	}
	root := merkle.Root(leaves)
	leavesSum := sha256.Sum256(raw)
	doc := Document{Type: DocumentType, Version: 1, Number: number, FirstSeq: p.FirstSeq, LastSeq: p.LastSeq,
		TreeSize: int64(len(leaves)), Root: hex.EncodeToString(root), ChainHead: hex.EncodeToString(p.ChainHead),
		LeavesSHA256: hex.EncodeToString(leavesSum[:]), Previous: previous, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	docBytes, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	// A previous attempt may have written this checkpoint's document and
	// died before indexing it: the same anchor, adopted as written.
	if old, err := a.Blob.ReadArchive(ctx, ObjectKey(number, "json"), "", maxDocument); err == nil {
		var od Document
		if json.Unmarshal(old, &od) != nil || od.FirstSeq != doc.FirstSeq || od.LastSeq != doc.LastSeq ||
			od.Root != doc.Root || od.Previous != doc.Previous || od.LeavesSHA256 != doc.LeavesSHA256 {
			return nil, fmt.Errorf("point d'ancrage n° %d : le seau en contient déjà un autre (%s) — lancez « audit verify »", number, ObjectKey(number, "json"))
		}
		doc, docBytes = od, old
	} else if !errors.Is(err, blob.ErrIntegrity) {
		return nil, err
	}
	retain := a.RetainUntil(time.Now())
	if _, err := a.Blob.PutLocked(ctx, ObjectKey(number, "leaves"), raw, "application/octet-stream", retain); err != nil {
		return nil, err
	}
	if _, err := a.Blob.PutLocked(ctx, ObjectKey(number, "json"), docBytes, "application/json", retain); err != nil {
		return nil, err
	}
	var sig []byte
	if old, err := a.Blob.ReadArchive(ctx, ObjectKey(number, "p7s"), "", maxDocument); err == nil {
		if _, verr := seal.VerifyDetached(docBytes, old, a.Roots, a.verifyTimestamp); verr != nil {
			return nil, fmt.Errorf("point d'ancrage n° %d : cachet déjà écrit invalide : %w", number, verr)
		}
		sig = old
	} else if !errors.Is(err, blob.ErrIntegrity) {
		return nil, err
	} else {
		if sig, err = seal.SignDetached(ctx, docBytes, a.Key, a.Timestamp); err != nil {
			return nil, fmt.Errorf("point d'ancrage n° %d : %w", number, err)
		}
		if _, err := a.Blob.PutLocked(ctx, ObjectKey(number, "p7s"), sig, "application/pkcs7-signature", retain); err != nil {
			return nil, err
		}
	}
	err = a.Store.SaveCheckpoint(ctx, store.Checkpoint{Number: number, FirstSeq: doc.FirstSeq, LastSeq: doc.LastSeq,
		Root: root, ChainHead: p.ChainHead, Document: docBytes, Signature: sig})
	return &doc, err
}

func (a *Anchor) verifyTimestamp(token, imprint []byte) (time.Time, error) {
	info, err := tsa.Verify(token, imprint, crypto.SHA256, a.Roots)
	return info.Time, err
}

// Failure is one problem audit verify found: the event's sequence number
// and, for a checkpoint's own problem, the checkpoint's number.
type Failure struct {
	Seq        int64  `json:"seq"`
	Checkpoint int64  `json:"checkpoint,omitempty"`
	Problem    string `json:"problem"`
}

// Report is audit verify's answer (INTERFACE.md): ok, how many events are
// chained, how many are not yet anchored by a checkpoint that verifies,
// and every failure.
type Report struct {
	OK              bool      `json:"ok"`
	Chained         int64     `json:"chained"`
	Unanchored      int64     `json:"unanchored"`
	Checkpoints     int       `json:"checkpoints"`
	AnchoredThrough int64     `json:"anchored_through"`
	Failures        []Failure `json:"failures"`
}

// Verify recomputes the chain, then checks every checkpoint found in the
// bucket (the evidence; the database's index is only compared with it):
// numbered 1..n without a gap, one version of each part, a seal and
// timestamp that verify, each linked to the previous, its leaves giving
// its root, and each leaf equal to the digest of the event as stored now.
// An edited, deleted or inserted event under a checkpoint is named by its
// sequence number even if the whole chain was recomputed.
func (a *Anchor) Verify(ctx context.Context) (Report, error) {
	r := Report{Failures: []Failure{}}
	chain, err := a.Store.VerifyChain(ctx)
	if err != nil {
		return r, err
	}
	r.Chained = chain.Chained
	for _, f := range chain.Failures {
		r.Failures = append(r.Failures, Failure{Seq: f.Seq, Problem: f.Problem})
	}
	versions, err := a.Blob.Versions(ctx, Prefix)
	if err != nil {
		return r, err
	}
	numbers := map[int64]bool{}
	for key := range versions {
		name := strings.TrimPrefix(key, Prefix)
		if n, err := strconv.ParseInt(strings.TrimSuffix(name, ".json"), 10, 64); err == nil && strings.HasSuffix(name, ".json") {
			numbers[n] = true
		}
	}
	index, err := a.Store.Checkpoints(ctx)
	if err != nil {
		return r, err
	}
	indexed := map[int64]store.Checkpoint{}
	var max int64
	for _, c := range index {
		indexed[c.Number] = c
		max = c.Number
		if !numbers[c.Number] {
			r.Failures = append(r.Failures, Failure{Seq: c.FirstSeq, Checkpoint: c.Number,
				Problem: fmt.Sprintf("point d'ancrage n° %d (événements %d à %d) absent du seau d'archive", c.Number, c.FirstSeq, c.LastSeq)})
		}
	}
	for n := range numbers {
		if n > max {
			max = n
		}
	}
	var prevDoc []byte
	var prevLast int64
	for n := int64(1); n <= max; n++ {
		if !numbers[n] {
			if _, ok := indexed[n]; !ok {
				r.Failures = append(r.Failures, Failure{Seq: prevLast + 1, Checkpoint: n, Problem: fmt.Sprintf("point d'ancrage n° %d absent", n)})
			}
			prevDoc = nil
			continue
		}
		doc, raw, probs := a.checkCheckpoint(ctx, n, versions, prevDoc, prevLast)
		r.Failures = append(r.Failures, probs...)
		if doc == nil {
			prevDoc = nil
			continue
		}
		if c, ok := indexed[n]; ok && !bytes.Equal(c.Document, raw) {
			r.Failures = append(r.Failures, Failure{Seq: doc.FirstSeq, Checkpoint: n,
				Problem: fmt.Sprintf("l'index du point d'ancrage n° %d en base diffère du document du seau", n)})
		}
		prevDoc, prevLast = raw, doc.LastSeq
		r.Checkpoints++
		if len(probs) == 0 {
			r.AnchoredThrough = doc.LastSeq
		}
	}
	if r.Unanchored, err = a.Store.CountUnanchored(ctx, r.AnchoredThrough); err != nil {
		return r, err
	}
	r.Failures = mergeFailures(r.Failures)
	r.OK = len(r.Failures) == 0
	return r, nil
}

// checkCheckpoint verifies checkpoint n's three parts and compares its
// leaves with the events as stored; it returns the document (nil if it
// cannot be read) and the problems found.
func (a *Anchor) checkCheckpoint(ctx context.Context, n int64, versions map[string][]string, prevDoc []byte, prevLast int64) (*Document, []byte, []Failure) {
	var probs []Failure
	fail := func(seq int64, format string, args ...any) {
		probs = append(probs, Failure{Seq: seq, Checkpoint: n, Problem: fmt.Sprintf(format, args...)})
	}
	parts := map[string][]byte{}
	for _, ext := range []string{"json", "p7s", "leaves"} {
		key := ObjectKey(n, ext)
		vs := versions[key]
		if len(vs) == 0 {
			fail(prevLast+1, "point d'ancrage n° %d : %s absent du seau", n, key)
			continue
		}
		if len(vs) > 1 {
			fail(prevLast+1, "point d'ancrage n° %d : %s a %d versions (réécrit après coup)", n, key, len(vs))
		}
		// The first version written is the evidence (a later one is a rewrite).
		b, err := a.Blob.ReadArchive(ctx, key, vs[len(vs)-1], int64(store.MaxCheckpointEvents)*sha256.Size+maxDocument)
		if err != nil {
			fail(prevLast+1, "point d'ancrage n° %d : %s illisible : %v", n, key, err)
			continue
		}
		parts[ext] = b
	}
	raw := parts["json"]
	if raw == nil {
		return nil, nil, probs
	}
	var doc Document
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Type != DocumentType || doc.Number != n {
		fail(prevLast+1, "point d'ancrage n° %d : document illisible ou d'un autre numéro", n)
		return nil, nil, probs
	}
	if sig := parts["p7s"]; sig != nil {
		info, err := seal.VerifyDetached(raw, sig, a.Roots, a.verifyTimestamp)
		switch {
		case err != nil:
			fail(doc.FirstSeq, "point d'ancrage n° %d : cachet invalide : %v", n, err)
		case info.Level != "B-T" && a.Timestamp != nil:
			fail(doc.FirstSeq, "point d'ancrage n° %d : cachet sans horodatage", n)
		}
	}
	if prevDoc != nil {
		sum := sha256.Sum256(prevDoc)
		if doc.Previous != hex.EncodeToString(sum[:]) {
			fail(doc.FirstSeq, "point d'ancrage n° %d : ne désigne pas le point n° %d comme précédent", n, n-1)
		}
	}
	if n > 1 && prevLast != 0 && doc.FirstSeq != prevLast+1 {
		fail(prevLast+1, "point d'ancrage n° %d : commence à l'événement %d, le précédent finissait à %d", n, doc.FirstSeq, prevLast)
	}
	if n == 1 && doc.FirstSeq != 1 {
		fail(1, "point d'ancrage n° 1 : commence à l'événement %d", doc.FirstSeq)
	}
	leaves := parts["leaves"]
	if leaves == nil {
		return &doc, raw, probs
	}
	sum := sha256.Sum256(leaves)
	size := doc.LastSeq - doc.FirstSeq + 1
	if hex.EncodeToString(sum[:]) != doc.LeavesSHA256 || int64(len(leaves)) != size*sha256.Size || doc.TreeSize != size {
		fail(doc.FirstSeq, "point d'ancrage n° %d : ses feuilles ne sont pas celles que le document scelle", n)
		return &doc, raw, probs
	}
	hashes := make([][]byte, size)
	for i := range hashes {
		hashes[i] = merkle.LeafHash(leaves[i*sha256.Size : (i+1)*sha256.Size])
	}
	if hex.EncodeToString(merkle.Root(hashes)) != doc.Root {
		fail(doc.FirstSeq, "point d'ancrage n° %d : la racine ne correspond pas aux feuilles", n)
	}
	stored, err := a.Store.ChainedDigests(ctx, doc.FirstSeq, doc.LastSeq)
	if err != nil {
		fail(doc.FirstSeq, "point d'ancrage n° %d : lecture des événements : %v", n, err)
		return &doc, raw, probs
	}
	i := 0
	for seq := doc.FirstSeq; seq <= doc.LastSeq; seq++ {
		leaf := leaves[(seq-doc.FirstSeq)*sha256.Size : (seq-doc.FirstSeq+1)*sha256.Size]
		for i < len(stored) && stored[i].Seq < seq {
			i++
		}
		if i >= len(stored) || stored[i].Seq != seq {
			fail(seq, "événement absent (supprimé) : le point d'ancrage n° %d le scelle", n)
			continue
		}
		if !bytes.Equal(stored[i].Digest, leaf) {
			fail(seq, "contenu modifié ou événement substitué : ne correspond plus au point d'ancrage n° %d", n)
		}
		if seq == doc.LastSeq && hex.EncodeToString(stored[i].Hash) != doc.ChainHead {
			fail(seq, "chaîne recalculée : l'empreinte chaînée diffère de celle du point d'ancrage n° %d", n)
		}
	}
	return &doc, raw, probs
}

// mergeFailures keeps one line per sequence number (the chain's and the
// checkpoints' findings about one event together), in seq order.
func mergeFailures(fs []Failure) []Failure {
	at := map[int64]int{}
	out := []Failure{}
	for _, f := range fs {
		if i, ok := at[f.Seq]; ok {
			if !strings.Contains(out[i].Problem, f.Problem) {
				out[i].Problem += " ; " + f.Problem
			}
			if out[i].Checkpoint == 0 {
				out[i].Checkpoint = f.Checkpoint
			}
			continue
		}
		at[f.Seq] = len(out)
		out = append(out, f)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// CheckAct checks the chained audit events about an act: each one's link
// in the chain as stored and, once anchored, its digest against its
// checkpoint's leaf in the bucket (one ranged read per event), so an edit
// is caught even in a recomputed chain. It returns whether they hold and
// a French detail.
func (a *Anchor) CheckAct(ctx context.Context, actID string) (bool, string, error) {
	links, err := a.Store.ActChain(ctx, actID)
	if err != nil {
		return false, "", err
	}
	cps, err := a.Store.Checkpoints(ctx)
	if err != nil {
		return false, "", err
	}
	var bad []string
	anchored := 0
	zero := make([]byte, sha256.Size)
	for _, l := range links {
		prev := l.Prev
		if l.Seq == 1 {
			prev = zero
		}
		if prev == nil {
			bad = append(bad, fmt.Sprintf("n° %d : l'événement précédent manque", l.Seq))
			continue
		}
		if h := sha256.Sum256(append(append([]byte{}, prev...), l.Digest...)); !bytes.Equal(h[:], l.Hash) {
			bad = append(bad, fmt.Sprintf("n° %d : modifié (empreinte chaînée différente)", l.Seq))
			continue
		}
		i := sort.Search(len(cps), func(i int) bool { return cps[i].LastSeq >= l.Seq })
		if i == len(cps) || cps[i].FirstSeq > l.Seq {
			continue // not yet anchored
		}
		leaf, err := a.Blob.ReadArchiveRange(ctx, ObjectKey(cps[i].Number, "leaves"), (l.Seq-cps[i].FirstSeq)*sha256.Size, sha256.Size)
		if err != nil {
			if errors.Is(err, blob.ErrUnavailable) {
				return false, "", err
			}
			bad = append(bad, fmt.Sprintf("n° %d : feuille du point d'ancrage n° %d illisible (%v)", l.Seq, cps[i].Number, err))
			continue
		}
		if !bytes.Equal(leaf, l.Digest) {
			bad = append(bad, fmt.Sprintf("n° %d : modifié (ne correspond plus au point d'ancrage n° %d)", l.Seq, cps[i].Number))
			continue
		}
		anchored++
	}
	if len(bad) > 0 {
		return false, fmt.Sprintf("%d événement(s) en échec sur %d : %s", len(bad), len(links), strings.Join(bad, " ; ")), nil
	}
	return true, fmt.Sprintf("%d événement(s) chaîné(s), dont %d ancré(s)", len(links), anchored), nil
}
