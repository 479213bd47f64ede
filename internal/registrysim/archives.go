package registrysim

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/etatcivil/etatcivil/internal/seal"
	"github.com/etatcivil/etatcivil/internal/seda"
)

// maxPDFBytes bounds one PDF of a package.
const maxPDFBytes = 64 << 20

// handleArchives is a departmental archives' SEDA endpoint: it receives a
// ZIP (manifest.xml, an ArchiveTransfer, and the PDFs), validates the
// message against the SEDA 2.3 schemas, each PDF against its digest and
// its seal, and answers an ArchiveTransferReply (OK, or KO with the
// reason).
// Idempotency keys and double acceptances are counted as for /http.
func (s *Sim) handleArchives(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("registry")
	key := r.Header.Get("Idempotency-Key")
	msgID, actSet, manifest, problem := readTransfer(r.Body)
	s.mu.Lock()
	s.count(id, func(st *Stats) { st.Received++ })
	k := id + "\x00" + key
	if prev, ok := s.replies[k]; ok && key != "" {
		s.count(id, func(st *Stats) { st.Resends++; st.Acks++ })
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write(prev)
		return
	}
	refuse := problem != "" || key == ""
	simulated := false
	if !refuse && s.randFloat() < s.faults.RefuseRate {
		problem, refuse, simulated = "refus simulé : versement non conforme", true, true
	}
	if problem == "" && key == "" {
		problem = "Idempotency-Key manquante"
	}
	if refuse {
		s.count(id, func(st *Stats) { st.Refused++ })
	} else {
		if prev, ok := s.content[id+"\x00"+actSet]; ok && prev != key {
			s.count(id, func(st *Stats) { st.DoubleAccepted++ })
		} else {
			s.count(id, func(st *Stats) { st.Unique++ })
		}
		s.content[id+"\x00"+actSet] = key
		s.record(id, key, manifest)
	}
	s.seq++
	reply := seda.Reply{MessageID: fmt.Sprintf("%s-reply-%06d", id, s.seq), RequestID: msgID, Date: time.Now(),
		ReplyCode: seda.ReplyOK, ArchivalAgency: seda.Identifier{ID: id}, TransferringAgency: seda.Identifier{ID: "etatcivil"}}
	if refuse {
		reply.ReplyCode, reply.Reason = seda.ReplyKO, problem
		if simulated && actSet != "" {
			// A simulated refusal names the package's first act, as an
			// archives service names the unit it cannot take.
			first, _, _ := strings.Cut(actSet, ",")
			reply.Refused = map[string]string{first: "refus simulé : unité d'archive non conforme"}
		}
	} else {
		reply.GrantDate = time.Now()
	}
	if reply.RequestID == "" {
		reply.RequestID = "inconnu"
	}
	doc, err := seda.BuildReply(reply)
	if err != nil {
		s.mu.Unlock()
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	lost := !refuse && s.randFloat() < s.faults.LostAckRate
	if key != "" {
		s.replies[k] = doc
	}
	if !lost {
		s.count(id, func(st *Stats) { st.Acks++ })
	}
	s.mu.Unlock()
	if lost {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write(doc)
}

// readTransfer reads a package and returns its message id, a canonical
// description of its act set (for double acceptances), or a French
// problem.
func readTransfer(body io.Reader) (msgID, actSet string, msg []byte, problem string) {
	f, err := os.CreateTemp("", "registrysim-*.zip")
	if err != nil {
		return "", "", nil, "stockage temporaire impossible"
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := io.Copy(f, io.LimitReader(body, 4<<30))
	if err != nil {
		return "", "", nil, "paquet interrompu"
	}
	zr, err := zip.NewReader(f, n)
	if err != nil {
		return "", "", nil, "paquet ZIP illisible"
	}
	files := map[string]*zip.File{}
	for _, zf := range zr.File {
		files[zf.Name] = zf
	}
	mf, ok := files["manifest.xml"]
	if !ok {
		return "", "", nil, "manifest.xml absent du paquet"
	}
	rc, err := mf.Open()
	if err != nil {
		return "", "", nil, "manifest.xml illisible"
	}
	msg, err = io.ReadAll(io.LimitReader(rc, 64<<20))
	rc.Close()
	if err != nil {
		return "", "", nil, "manifest.xml illisible"
	}
	if err := seda.Validate(msg); err != nil && !errors.Is(err, seda.ErrNoValidator) {
		return "", "", nil, "message non conforme au SEDA 2.3 : " + firstLine(err.Error())
	}
	id, objects, acts := scanTransfer(msg)
	for uri, digest := range objects {
		zf, ok := files[uri]
		if !ok {
			return id, "", msg, "fichier " + uri + " absent du paquet"
		}
		rc, err := zf.Open()
		if err != nil {
			return id, "", msg, "fichier " + uri + " illisible"
		}
		pdf, err := io.ReadAll(io.LimitReader(rc, maxPDFBytes+1))
		rc.Close()
		sum := sha256.Sum256(pdf)
		if err != nil || len(pdf) > maxPDFBytes || !strings.EqualFold(hex.EncodeToString(sum[:]), digest) {
			return id, "", msg, "empreinte de " + uri + " différente du message"
		}
		// The seal must hold over the whole file. Whether its signer is
		// trusted is the archives' own policy, which the simulator leaves.
		if _, err := seal.Verify(pdf, nil); err != nil && !errors.Is(err, seal.ErrUntrusted) {
			return id, "", msg, "sceau de " + uri + " invalide : " + err.Error()
		}
	}
	sort.Strings(acts)
	return id, strings.Join(acts, ","), msg, ""
}

// scanTransfer pulls the message id, each data object's Uri and digest,
// and the act ids out of an ArchiveTransfer.
func scanTransfer(msg []byte) (id string, objects map[string]string, acts []string) {
	objects = map[string]string{}
	dec := xml.NewDecoder(bytes.NewReader(msg))
	var path []string
	var uri, digest string
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			path = append(path, t.Name.Local)
		case xml.EndElement:
			if t.Name.Local == "BinaryDataObject" && uri != "" {
				objects[uri] = digest
				uri, digest = "", ""
			}
			path = path[:len(path)-1]
		case xml.CharData:
			if len(path) == 0 {
				continue
			}
			text := strings.TrimSpace(string(t))
			switch path[len(path)-1] {
			case "MessageIdentifier":
				if len(path) == 2 {
					id = text
				}
			case "Uri":
				uri = text
			case "MessageDigest":
				digest = text
			case "OriginatingSystemId":
				acts = append(acts, text)
			}
		}
	}
	return id, objects, acts
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
