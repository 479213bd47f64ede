package seda

import (
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Event type codes of the reply's events.
const (
	// eventTransfer is the package-level event in Operation: its outcome
	// is the reply code, its OutcomeDetailMessage the reason.
	eventTransfer = "ARCHIVE_TRANSFER"
	// eventAct is the event of a refused act, inside the act's ArchiveUnit
	// in the reply's DataObjectPackage.
	eventAct = "ACT_CHECK"
)

// DefaultRefusal is the reason ParseReply gives a KO reply that states
// none.
const DefaultRefusal = "transfert refusé par le service d'archives, sans motif"

// Reply is an ArchiveTransferReply: the archives' answer to a Transfer.
//
// OK acknowledges the whole transfer, every act. KO refuses the whole
// transfer with Reason; Refused may name the acts that caused the refusal
// (act id → reason). SEDA has no partial acceptance of a transfer: a KO
// reply refuses every act of it, listed in Refused or not.
//
// On the wire: ReplyCode; an Operation holding one event
// (EventTypeCode ARCHIVE_TRANSFER, Outcome = the code,
// OutcomeDetailMessage = Reason); for each refused act, an ArchiveUnit of
// the reply's DataObjectPackage with OriginatingSystemId = the act id (as
// in the transfer) and an event (EventTypeCode ACT_CHECK, Outcome KO,
// OutcomeDetailMessage = the act's reason).
type Reply struct {
	MessageID          string            // the reply's own MessageIdentifier
	RequestID          string            // MessageRequestIdentifier: the Transfer's MessageID (lot id)
	Date               time.Time         // date of the reply
	ReplyCode          string            // ReplyOK or ReplyKO
	Reason             string            // why the transfer is refused (required for KO)
	Refused            map[string]string // act id → reason, KO only
	GrantDate          time.Time         // OK: when the archives took charge; zero if unknown
	ArchivalAgreement  string            // optional, as in the transfer
	ArchivalAgency     Identifier        // required
	TransferringAgency Identifier        // required
}

// BuildReply returns r as a SEDA 2.3 ArchiveTransferReply message. It is
// the registry simulator's answer; real archives build their own.
func BuildReply(r Reply) ([]byte, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !nonEmptyToken(r.MessageID) {
		bad("identifiant de la réponse manquant")
	}
	if !nonEmptyToken(r.RequestID) {
		bad("identifiant du transfert auquel on répond manquant")
	}
	if r.Date.IsZero() {
		bad("date de la réponse manquante")
	}
	if !nonEmptyToken(r.ArchivalAgency.ID) {
		bad("identifiant du service d'archives manquant")
	}
	if !nonEmptyToken(r.TransferringAgency.ID) {
		bad("identifiant du service versant manquant")
	}
	reason := collapse(r.Reason)
	switch r.ReplyCode {
	case ReplyOK:
		if len(r.Refused) > 0 {
			bad("une réponse OK ne peut refuser d'acte")
		}
	case ReplyKO:
		if reason == "" {
			bad("motif du refus manquant")
		}
		if !r.GrantDate.IsZero() {
			bad("une réponse KO n'a pas de date de prise en charge")
		}
	default:
		bad("code de réponse %q inconnu (OK ou KO)", r.ReplyCode)
	}
	ids := make([]string, 0, len(r.Refused))
	for id, why := range r.Refused {
		if !nonEmptyToken(id) {
			bad("identifiant d'acte refusé %q invalide", id)
		}
		if collapse(why) == "" {
			bad("acte %q : motif du refus manquant", id)
		}
		ids = append(ids, id)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("seda: réponse invalide : %w", errors.Join(errs...))
	}
	slices.Sort(ids)

	date := r.Date.Format(dateTimeLayout)
	ev := xmlEvent{
		EventTypeCode:        eventTransfer,
		EventType:            "Transfert d'archives",
		EventDateTime:        date,
		Outcome:              r.ReplyCode,
		OutcomeDetail:        eventTransfer + "." + r.ReplyCode,
		OutcomeDetailMessage: reason,
	}
	msg := xmlArchiveTransferReply{
		Date:                     date,
		MessageIdentifier:        r.MessageID,
		ArchivalAgreement:        r.ArchivalAgreement,
		CodeListVersions:         xmlCodeListVersions{ReplyCodeListVersion: codeListReply},
		ReplyCode:                r.ReplyCode,
		Operation:                &xmlOperation{Events: []xmlEvent{ev}},
		MessageRequestIdentifier: r.RequestID,
		ArchivalAgency:           organization(r.ArchivalAgency),
		TransferringAgency:       organization(r.TransferringAgency),
	}
	if !r.GrantDate.IsZero() {
		msg.GrantDate = r.GrantDate.Format(dateTimeLayout)
	}
	if len(ids) > 0 {
		pkg := &xmlDataObjectPackage{}
		for i, id := range ids {
			pkg.DescriptiveMetadata.ArchiveUnits = append(pkg.DescriptiveMetadata.ArchiveUnits, xmlArchiveUnit{
				ID: "REFUSED-" + strconv.Itoa(i+1),
				Content: xmlContent{
					DescriptionLevel:    "Item",
					OriginatingSystemID: id,
					Events: []xmlEvent{{
						EventTypeCode:        eventAct,
						EventType:            "Contrôle de l'acte",
						EventDateTime:        date,
						Outcome:              ReplyKO,
						OutcomeDetail:        eventAct + "." + ReplyKO,
						OutcomeDetailMessage: collapse(r.Refused[id]),
					}},
				},
			})
		}
		msg.DataObjectPackage = pkg
	}
	return marshal(msg)
}

// ParseReply reads an ArchiveTransferReply (the connector's side). It
// checks the root element and namespace, the reply code (OK or KO) and
// the identifiers it needs, but not the whole schema: call Validate for
// that. A KO reply always gets a Reason (DefaultRefusal if it states
// none); acts it names as refused are in Refused.
func ParseReply(doc []byte) (Reply, error) {
	var m xmlArchiveTransferReply
	if err := xml.Unmarshal(doc, &m); err != nil {
		return Reply{}, fmt.Errorf("seda: réponse illisible : %w", err)
	}
	r := Reply{
		MessageID:          strings.TrimSpace(m.MessageIdentifier),
		RequestID:          strings.TrimSpace(m.MessageRequestIdentifier),
		ReplyCode:          strings.TrimSpace(m.ReplyCode),
		ArchivalAgreement:  strings.TrimSpace(m.ArchivalAgreement),
		ArchivalAgency:     identifier(m.ArchivalAgency),
		TransferringAgency: identifier(m.TransferringAgency),
	}
	var errs []error
	if r.RequestID == "" {
		errs = append(errs, errors.New("MessageRequestIdentifier manquant"))
	}
	if r.MessageID == "" {
		errs = append(errs, errors.New("MessageIdentifier manquant"))
	}
	var err error
	if r.Date, err = time.Parse(time.RFC3339, strings.TrimSpace(m.Date)); err != nil {
		errs = append(errs, fmt.Errorf("date %q invalide", m.Date))
	}
	if g := strings.TrimSpace(m.GrantDate); g != "" {
		if r.GrantDate, err = time.Parse(time.RFC3339, g); err != nil {
			errs = append(errs, fmt.Errorf("GrantDate %q invalide", g))
		}
	}
	if r.ReplyCode != ReplyOK && r.ReplyCode != ReplyKO {
		errs = append(errs, fmt.Errorf("code de réponse %q inconnu (OK ou KO attendu)", r.ReplyCode))
	}
	if len(errs) > 0 {
		return Reply{}, fmt.Errorf("seda: réponse invalide : %w", errors.Join(errs...))
	}
	if m.Operation != nil {
		for _, ev := range m.Operation.Events {
			if ev.EventTypeCode == eventTransfer || r.Reason == "" {
				if msg := strings.TrimSpace(ev.OutcomeDetailMessage); msg != "" {
					r.Reason = msg
				}
			}
		}
	}
	if r.Reason == "" {
		r.Reason = strings.TrimSpace(m.Comment)
	}
	if r.ReplyCode == ReplyKO && r.Reason == "" {
		r.Reason = DefaultRefusal
	}
	if m.DataObjectPackage != nil {
		collectRefused(m.DataObjectPackage.DescriptiveMetadata.ArchiveUnits, &r)
	}
	if r.ReplyCode == ReplyOK && len(r.Refused) > 0 {
		return Reply{}, fmt.Errorf("seda: réponse invalide : code OK mais %d acte(s) refusé(s)", len(r.Refused))
	}
	return r, nil
}

// collectRefused records the units (at any depth) that name an act and
// carry a KO event.
func collectRefused(units []xmlArchiveUnit, r *Reply) {
	for _, u := range units {
		id := strings.TrimSpace(u.Content.OriginatingSystemID)
		for _, ev := range u.Content.Events {
			if id == "" || strings.TrimSpace(ev.Outcome) != ReplyKO {
				continue
			}
			if r.Refused == nil {
				r.Refused = map[string]string{}
			}
			why := strings.TrimSpace(ev.OutcomeDetailMessage)
			if why == "" {
				why = r.Reason
			}
			r.Refused[id] = why
		}
		collectRefused(u.ArchiveUnits, r)
	}
}

// collapse trims s and replaces every run of whitespace with one space, as
// an xsd:token receiver would.
func collapse(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
