// Package model holds the plain types shared by every etatcivil package:
// act kinds, flows, person roles, states and reason codes. It imports
// nothing internal, so any package may import it.
package model

import "fmt"

// Kind is the register an act belongs to.
type Kind string

// The four registers. A stillbirth is KindDeces with SansVie set.
const (
	KindNaissance      Kind = "naissance"
	KindMariage        Kind = "mariage"
	KindDeces          Kind = "deces"
	KindReconnaissance Kind = "reconnaissance"
)

// Kinds lists every valid Kind in a stable order.
var Kinds = []Kind{KindNaissance, KindMariage, KindDeces, KindReconnaissance}

// Valid reports whether k is one of the four registers.
func (k Kind) Valid() bool {
	switch k {
	case KindNaissance, KindMariage, KindDeces, KindReconnaissance:
		return true
	}
	return false
}

// Flow says where an act comes from: the ordinary course or the back-catalogue.
type Flow string

// The two flows. FlowReprise is the default.
const (
	FlowCourant Flow = "courant"
	FlowReprise Flow = "reprise"
)

// Role is a person's part in an act. Roles are not tied to sex.
type Role string

// The person roles a manifest may use.
const (
	RoleTitulaire Role = "titulaire"
	RolePere      Role = "pere"
	RoleMere      Role = "mere"
	RoleEpoux     Role = "epoux"
	RoleEpouse    Role = "epouse"
	RoleDefunt    Role = "defunt"
	RoleDeclarant Role = "declarant"
	RoleTemoin    Role = "temoin"
	RoleAuteur    Role = "auteur"
)

// RevisionReason says why a new version of an act was submitted.
type RevisionReason string

// Revision reasons. RevisionRetimestamp is the system's own and is refused
// in a manifest.
const (
	RevisionMentionMarginale RevisionReason = "mention_marginale"
	RevisionRescan           RevisionReason = "rescan"
	RevisionCorrection       RevisionReason = "correction"
	RevisionCorrectionIndex  RevisionReason = "correction_index"
	RevisionRetimestamp      RevisionReason = "retimestamp"
)

// State is the state of one act version (one manifest entry).
type State string

// Version states. Expected, Received, Validated, Sealed and Stalled are not terminal;
// Archived and Rejected are.
const (
	// StateExpected: the manifest names the file and the server waits for
	// its bytes (an extension of INTERFACE.md's states, before "received").
	StateExpected  State = "expected"
	StateReceived  State = "received"
	StateValidated State = "validated"
	StateSealed    State = "sealed"
	StateArchived  State = "archived"
	StateRejected  State = "rejected"
	StateStalled   State = "stalled"
)

// States lists every version state, in processing order.
var States = []State{StateExpected, StateReceived, StateValidated, StateSealed, StateArchived, StateRejected, StateStalled}

// TransmissionStates lists the states of a transmission (INTERFACE.md,
// "States"), in the order a transmission goes through them.
var TransmissionStates = []string{"pending", "sent", "acknowledged", "refused", "retrying", "overdue", "dead"}

// Terminal reports whether no further processing will change s on its own.
func (s State) Terminal() bool {
	switch s {
	case StateArchived, StateRejected:
		return true
	}
	return false
}

// Reason is a machine-readable rejection code. Codes are never reused for
// another meaning.
type Reason string

// Rejection codes (INTERFACE.md, "Reason codes").
const (
	ReasonNotPDF                Reason = "not_pdf"
	ReasonPDFMalformed          Reason = "pdf_malformed"
	ReasonPDFEncrypted          Reason = "pdf_encrypted"
	ReasonPDFActiveContent      Reason = "pdf_active_content"
	ReasonPDFEmbeddedFiles      Reason = "pdf_embedded_files"
	ReasonPDFTooLarge           Reason = "pdf_too_large"
	ReasonPDFTooManyPages       Reason = "pdf_too_many_pages"
	ReasonPDFDecompressionLimit Reason = "pdf_decompression_limit"
	ReasonPDFResourceLimit      Reason = "pdf_resource_limit"
	ReasonChecksumMismatch      Reason = "checksum_mismatch"
	ReasonManifestInvalid       Reason = "manifest_invalid"
	ReasonFileNameInvalid       Reason = "file_name_invalid"
	ReasonFileMissing           Reason = "file_missing"
	ReasonFileDuplicate         Reason = "file_duplicate"
	ReasonCommuneInvalid        Reason = "commune_invalid"
	ReasonCommuneNotMember      Reason = "commune_not_member"
	ReasonDateInvalid           Reason = "date_invalid"
	ReasonDuplicateAct          Reason = "duplicate_act"
	ReasonIndexConflict         Reason = "index_conflict"
	ReasonRevisionConflict      Reason = "revision_conflict"
	// ReasonPersonsInvalid: the persons do not fit the kind of act (a
	// marriage without exactly two spouses, three parents on a birth…).
	ReasonPersonsInvalid Reason = "persons_invalid"
)

// messages are the French texts shown to hubs and town halls. Each says
// what is wrong and, where it helps, what to do.
var messages = map[Reason]string{
	ReasonNotPDF:                "Le fichier n'est pas un PDF : il est vide ou ne commence pas par « %PDF- ». Renvoyez le fichier produit par le scanner.",
	ReasonPDFMalformed:          "Le PDF est endommagé (table des références, fin de fichier ou arbre des pages illisible). Régénérez le fichier puis renvoyez-le.",
	ReasonPDFEncrypted:          "Le PDF est chiffré ou protégé par mot de passe. Renvoyez une version sans protection.",
	ReasonPDFActiveContent:      "Le PDF contient du contenu actif (JavaScript, actions automatiques, liens, formulaires). Renvoyez un PDF de numérisation simple.",
	ReasonPDFEmbeddedFiles:      "Le PDF contient des fichiers joints. Renvoyez le PDF sans pièces jointes.",
	ReasonPDFTooLarge:           "Le fichier dépasse la taille maximale autorisée.",
	ReasonPDFTooManyPages:       "Le PDF dépasse le nombre maximal de pages autorisé pour un acte.",
	ReasonPDFDecompressionLimit: "Un flux du PDF se décompresse au-delà de la limite autorisée (possible bombe de décompression). Renvoyez le fichier d'origine du scanner.",
	ReasonPDFResourceLimit:      "L'analyse du PDF a dépassé les ressources autorisées (mémoire ou temps). Le fichier ne sera pas réessayé ; renvoyez un PDF plus simple.",
	ReasonChecksumMismatch:      "Le fichier reçu ne correspond pas à la taille ou à l'empreinte SHA-256 indiquées dans le manifeste. Vérifiez le fichier et le manifeste puis renvoyez-les.",
	ReasonManifestInvalid:       "L'entrée du manifeste est invalide.",
	ReasonFileNameInvalid:       "Le nom de fichier est invalide (chemin, « .. » ou caractère interdit).",
	ReasonFileMissing:           "Le fichier annoncé dans le manifeste n'a pas été reçu avant la soumission du lot.",
	ReasonFileDuplicate:         "Le même nom de fichier figure plusieurs fois dans le manifeste.",
	ReasonCommuneInvalid:        "Le code commune n'existe pas dans le Code officiel géographique.",
	ReasonCommuneNotMember:      "La commune ne fait pas partie des communes adhérentes de l'opérateur.",
	ReasonDateInvalid:           "Les dates de l'acte sont impossibles ou incohérentes.",
	ReasonDuplicateAct:          "Un autre fichier est déjà enregistré pour cet acte (même commune, année, registre et numéro). Pour le remplacer, indiquez « replaces » et « revision_reason ».",
	ReasonIndexConflict:         "Ce fichier est déjà enregistré pour cet acte avec des données d'indexation différentes. Pour corriger l'indexation, indiquez « revision_reason » : « correction_index ».",
	ReasonRevisionConflict:      "« replaces » ne désigne pas la version actuelle de l'acte.",
	ReasonPersonsInvalid:        "Les personnes indiquées ne correspondent pas au type d'acte.",
}

// Message returns the French text for r.
func (r Reason) Message() string {
	if m, ok := messages[r]; ok {
		return m
	}
	return "Entrée refusée (" + string(r) + ")."
}

// Known reports whether r is a defined reason code.
func (r Reason) Known() bool { _, ok := messages[r]; return ok }

// Rejection is a permanent refusal of one entry: a code and a French
// message that may carry details (a JSON pointer, a date…).
type Rejection struct {
	Reason  Reason
	Message string
}

// Reject builds a Rejection with r's message, followed by detail if given.
func Reject(r Reason, detail string) *Rejection {
	m := r.Message()
	if detail != "" {
		m += " " + detail
	}
	return &Rejection{Reason: r, Message: m}
}

// Error implements error.
func (r *Rejection) Error() string { return fmt.Sprintf("%s: %s", r.Reason, r.Message) }

// CommuneType is the COG type of a commune code.
type CommuneType string

// COG types, as INSEE names them.
const (
	CommuneActuelle       CommuneType = "COM"  // current commune
	CommuneArrondissement CommuneType = "ARM"  // arrondissement municipal (Paris, Lyon, Marseille)
	CommuneDeleguee       CommuneType = "COMD" // commune déléguée of a commune nouvelle
	CommuneAssociee       CommuneType = "COMA" // commune associée
	CommuneAncienne       CommuneType = "ANC"  // former code, merged away; Parent is its successor
)

// Commune is one entry of the COG snapshot. Parent is empty for a current
// commune, and names the commune that holds this one's registers otherwise.
type Commune struct {
	Code   string      `json:"code"`
	Type   CommuneType `json:"type"`
	Name   string      `json:"name"`
	Parent string      `json:"parent,omitempty"`
}
