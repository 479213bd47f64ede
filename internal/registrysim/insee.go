package registrysim

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/etatcivil/etatcivil/internal/inseelot"
)

// maxLotBytes bounds one lot's body; a bigger one is refused with 413.
const maxLotBytes = 16 << 20

// simLot is what the simulator reads of a lot (urn:etatcivil:lot:1).
type simLot struct {
	XMLName     xml.Name      `xml:"urn:etatcivil:lot:1 lot"`
	Identifiant string        `xml:"identifiant"`
	Commune     string        `xml:"commune"`
	Nature      string        `xml:"nature"`
	Debut       string        `xml:"periode>debut"`
	Premier     int           `xml:"numerosActes>sequence>premier"`
	Dernier     int           `xml:"numerosActes>sequence>dernier"`
	Nombre      int           `xml:"numerosActes>sequence>nombre"`
	Bulletins   []simBulletin `xml:"bulletins>bulletin"`
}

type simBulletin struct {
	NumeroActe  int    `xml:"numeroActe"`
	VersionActe int    `xml:"versionActe"`
	DateActe    string `xml:"dateActe"`
}

// refusedBulletin is one bulletin named in a refusal.
type refusedBulletin struct {
	Numero int    `json:"numero"`
	Reason string `json:"reason"`
}

// handleINSEE is INSEE's lot endpoint: one lot XML per request, under an
// Idempotency-Key equal to the lot's identifiant. The lot is validated
// against the schema (xmllint, outside the lock) and its sequence summary
// against its bulletins; a refusal is a 422 with a French reason. An
// accepted lot is answered {"ack_id"}; a resend under a known key gets
// the original acknowledgement. A bulletin (commune, nature, register year, act
// number and version) already accepted under another key makes the lot
// a double acceptance.
func (s *Sim) handleINSEE(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("registry")
	key := r.Header.Get("Idempotency-Key")
	k := id + "\x00" + key
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLotBytes))

	s.mu.Lock()
	s.count(id, func(st *Stats) { st.Received++ })
	var problem string
	status := http.StatusUnprocessableEntity
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		problem, status = fmt.Sprintf("lot trop volumineux : %d octets au plus", maxLotBytes), http.StatusRequestEntityTooLarge
	case err != nil:
		problem, status = "lot interrompu : "+err.Error(), http.StatusBadRequest
	case key == "":
		problem = "Idempotency-Key manquante"
	}
	if problem == "" {
		if ack, ok := s.keys[k]; ok {
			s.count(id, func(st *Stats) { st.Resends++; st.Acks++ })
			s.mu.Unlock()
			writeJSON(w, map[string]string{"ack_id": ack})
			return
		}
	} else {
		s.count(id, func(st *Stats) { st.Refused++ })
	}
	s.mu.Unlock()
	if problem != "" {
		writeStatusJSON(w, status, map[string]string{"reason": problem})
		return
	}

	// xmllint runs outside the lock.
	lot, problem, internal := checkLot(body, key)
	if internal != nil {
		http.Error(w, "validation du lot impossible : "+internal.Error(), http.StatusInternalServerError)
		return
	}

	s.mu.Lock()
	if problem != "" {
		s.count(id, func(st *Stats) { st.Refused++ })
		s.mu.Unlock()
		writeStatusJSON(w, http.StatusUnprocessableEntity, map[string]string{"reason": problem})
		return
	}
	if ack, ok := s.keys[k]; ok {
		// Accepted by a concurrent request under the same key meanwhile.
		s.count(id, func(st *Stats) { st.Resends++; st.Acks++ })
		s.mu.Unlock()
		writeJSON(w, map[string]string{"ack_id": ack})
		return
	}
	if s.randFloat() < s.faults.RefuseRate {
		s.count(id, func(st *Stats) { st.Refused++ })
		s.mu.Unlock()
		n := lot.Bulletins[0].NumeroActe
		writeStatusJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"reason":  fmt.Sprintf("refus simulé : bulletin n° %d non conforme", n),
			"refused": []refusedBulletin{{Numero: n, Reason: "refus simulé : bulletin non conforme"}},
		})
		return
	}
	contents := make([]string, len(lot.Bulletins))
	double := false
	for i, b := range lot.Bulletins {
		// The register's year is the act's (numbers restart each year),
		// not the period's: a 2025 act may be sent in a 2026 lot.
		year := lot.Debut[:4]
		if len(b.DateActe) >= 4 {
			year = b.DateActe[:4]
		}
		contents[i] = id + "\x00" + lot.Commune + "\x00" + lot.Nature + "\x00" + year + "\x00" +
			strconv.Itoa(b.NumeroActe) + "\x00" + strconv.Itoa(b.VersionActe)
		if prev, ok := s.content[contents[i]]; ok && prev != key {
			double = true
		}
	}
	if double {
		s.count(id, func(st *Stats) { st.DoubleAccepted++ })
	} else {
		s.count(id, func(st *Stats) { st.Unique++ })
	}
	for _, c := range contents {
		s.content[c] = key
	}
	s.seq++
	ack := fmt.Sprintf("%s-ack-%06d", id, s.seq)
	s.keys[k] = ack
	s.record(id, key, body)
	lost := s.randFloat() < s.faults.LostAckRate
	if !lost {
		s.count(id, func(st *Stats) { st.Acks++ })
	}
	s.mu.Unlock()
	if lost {
		// Accepted, acknowledgement lost for this attempt: a resend gets it.
		w.WriteHeader(http.StatusAccepted)
		return
	}
	writeJSON(w, map[string]string{"ack_id": ack})
}

// checkLot validates a lot against the schema (skipped when xmllint is
// missing), reads it and checks its identifiant against key and its
// sequence summary against its bulletins. problem is the French reason of
// a refusal; internal is a failure of the validator itself.
func checkLot(body []byte, key string) (lot simLot, problem string, internal error) {
	if err := inseelot.ValidateEmbedded(body); err != nil && !errors.Is(err, inseelot.ErrNoValidator) {
		var invalid *inseelot.ValidationError
		if !errors.As(err, &invalid) {
			return lot, "", err
		}
		first := ""
		if len(invalid.Problems) > 0 {
			first = firstLine(invalid.Problems[0])
		}
		return lot, fmt.Sprintf("lot non conforme au schéma %s : %s", inseelot.Namespace, first), nil
	}
	if err := xml.Unmarshal(body, &lot); err != nil {
		return lot, "lot illisible : " + err.Error(), nil
	}
	if lot.Identifiant != key {
		return lot, fmt.Sprintf("identifiant du lot « %s » différent de l'Idempotency-Key « %s »", lot.Identifiant, key), nil
	}
	if _, err := time.Parse(time.DateOnly, lot.Debut); err != nil {
		return lot, fmt.Sprintf("période illisible : début « %s » (AAAA-MM-JJ attendu)", lot.Debut), nil
	}
	bs := lot.Bulletins
	if len(bs) == 0 {
		return lot, "lot sans bulletin", nil
	}
	if lot.Nombre != len(bs) {
		return lot, fmt.Sprintf("séquence incohérente : nombre annoncé %d, %d bulletins reçus", lot.Nombre, len(bs)), nil
	}
	for i := 1; i < len(bs); i++ {
		if bs[i].NumeroActe <= bs[i-1].NumeroActe {
			return lot, fmt.Sprintf("séquence incohérente : bulletin n° %d après le n° %d (numéros d'acte strictement croissants attendus)",
				bs[i].NumeroActe, bs[i-1].NumeroActe), nil
		}
	}
	if lot.Premier != bs[0].NumeroActe {
		return lot, fmt.Sprintf("séquence incohérente : premier annoncé n° %d, premier bulletin n° %d", lot.Premier, bs[0].NumeroActe), nil
	}
	if last := bs[len(bs)-1].NumeroActe; lot.Dernier != last {
		return lot, fmt.Sprintf("séquence incohérente : dernier annoncé n° %d, dernier bulletin n° %d", lot.Dernier, last), nil
	}
	return lot, "", nil
}

func writeStatusJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
