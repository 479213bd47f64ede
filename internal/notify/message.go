package notify

import (
	"fmt"
	"strings"

	"github.com/etatcivil/etatcivil/internal/model"
	"github.com/etatcivil/etatcivil/internal/store"
)

// Kinds of notification events, as the JSON's "kind" says.
const (
	KindRejected = "rejected"
	KindStalled  = "stalled"
	KindRefused  = "refused"
	KindDead     = "dead"
	KindOverdue  = "overdue"
)

// kinds in the order a digest lists them, with their French headings.
var kinds = []struct{ kind, heading string }{
	{KindRejected, "Actes refusés"},
	{KindStalled, "Traitements bloqués"},
	{KindRefused, "Transmissions refusées par un registre"},
	{KindDead, "Transmissions abandonnées"},
	{KindOverdue, "Accusés de réception en retard"},
}

// waitingCauses names in French what a stalled entry waits for.
var waitingCauses = map[string]string{
	"s3_unavailable":         "stockage S3 indisponible",
	"staging_integrity":      "copie de dépôt incohérente",
	"seal_unavailable":       "service de cachet indisponible",
	"seal_error":             "erreur lors du scellement",
	"tsa_unavailable":        "autorité d'horodatage indisponible",
	"revocation_unavailable": "services de révocation (OCSP, CRL) indisponibles",
	"checker_unavailable":    "contrôleur de PDF indisponible",
}

// reason is the event's "reason": the rejection code, what a stalled
// entry waits for, the registry's own words for a refusal or an
// abandonment, "ack_overdue" for a late acknowledgement.
func reason(e store.NotificationEvent) string {
	if e.Kind == KindStalled && e.Reason == "" {
		return e.Detail
	}
	return e.Reason
}

// message is the event's French message for people.
func message(e store.NotificationEvent) string {
	reg := e.Registry
	switch e.Kind {
	case KindRejected:
		if e.Detail != "" {
			return e.Detail
		}
		return model.Reason(e.Reason).Message()
	case KindStalled:
		m := "Traitement bloqué après des échecs répétés"
		if cause := e.Detail; cause != "" {
			if fr, ok := waitingCauses[cause]; ok {
				cause = fr
			}
			m += " (" + cause + ")"
		}
		return m + ". Relancez-le avec « etatcivil acts retry » une fois le service rétabli."
	case KindRefused:
		m := fmt.Sprintf("Le registre « %s » a refusé la transmission", reg)
		if e.Reason != "" {
			return m + " : " + strings.TrimSuffix(e.Reason, ".") + "."
		}
		return m + "."
	case KindDead:
		m := fmt.Sprintf("La transmission au registre « %s » a été abandonnée après des échecs répétés", reg)
		if e.Reason != "" {
			m += " : " + strings.TrimSuffix(e.Reason, ".")
		}
		return m + ". Relancez-la avec « etatcivil transmissions retry »."
	case KindOverdue:
		return fmt.Sprintf("Le registre « %s » n'a pas accusé réception dans le délai prévu : le message lui est renvoyé sous la même clé.", reg)
	}
	return e.Kind
}

// actNames are the French names of the kinds of acts.
var actNames = map[string]string{
	"naissance":      "Acte de naissance",
	"mariage":        "Acte de mariage",
	"deces":          "Acte de décès",
	"reconnaissance": "Acte de reconnaissance",
}

// actLabel names the act of an event for people: "Acte de décès n° 2 de
// 2020, commune 12202 (Rodez), fichier b.pdf", with what is known.
func actLabel(e store.NotificationEvent) string {
	var parts []string
	name := actNames[e.ActKind]
	if name == "" {
		name = "Acte"
	}
	if e.ActNumber > 0 {
		name += fmt.Sprintf(" n° %d", e.ActNumber)
	}
	if e.ActYear > 0 {
		name += fmt.Sprintf(" de %d", e.ActYear)
	}
	parts = append(parts, name)
	if e.Commune != "" {
		c := "commune " + e.Commune
		if e.CommuneName != "" {
			c += " (" + e.CommuneName + ")"
		}
		parts = append(parts, c)
	}
	if e.File != "" {
		parts = append(parts, "fichier "+e.File)
	}
	return strings.Join(parts, ", ")
}

// scopeLabel names a subscription's or a webhook's scope in French.
func scopeLabel(hubID, commune string) string {
	switch {
	case hubID != "" && commune != "":
		return fmt.Sprintf("la commune %s chez l'opérateur « %s »", commune, hubID)
	case hubID != "":
		return fmt.Sprintf("l'opérateur « %s »", hubID)
	default:
		return "la commune " + commune
	}
}
