// Package seda builds the SEDA 2.3 messages (ISO 20614) that etatcivil
// exchanges with departmental archives: one ArchiveTransfer per register
// (commune, year, kind), packed in a ZIP with the sealed PDFs
// (Transfer.Message, Transfer.WriteZip), and the ArchiveTransferReply the
// archives answer with (BuildReply for the simulator, ParseReply for the
// connector).
//
// Every message must validate against the official SEDA 2.3 schemas
// embedded as schemas.SEDA; Validate runs xmllint on them.
//
// Modelling choices (see docs/transmissions.md):
//   - DataObjectPackage holds one BinaryDataObject per act PDF, directly
//     (no DataObjectGroup), with Uri = the file's name in the ZIP, a
//     SHA-256 MessageDigest in lowercase hexadecimal, Size, MIME type
//     application/pdf and DataObjectVersion "BinaryMaster_1".
//   - DescriptiveMetadata holds one ArchiveUnit for the register
//     (RecordGrp) containing one ArchiveUnit per act (Item) that points to
//     its PDF with DataObjectReference. The act's persons are Agent
//     elements (BirthName = surname, FirstName = given names, Role).
//   - ManagementMetadata carries the default AppraisalRule (Keep: civil
//     status registers are never destroyed); each act carries its own
//     AccessRule (Code du patrimoine L213-2, see AccessRule).
package seda

import (
	"time"
)

// Namespace is the target namespace of the SEDA 2.3 schemas
// (seda-2.3-main.xsd).
const Namespace = "fr:gouv:culture:archivesdefrance:seda:v2.3"

// ExtNamespace is the namespace of etatcivil's own elements, placed where
// SEDA allows elements of another namespace (OrganizationDescriptiveMetadata).
const ExtNamespace = "urn:etatcivil:seda:1"

// Rule identifiers sent in ManagementMetadata and in each act's
// Management. The receiving archives' rule referential must define them.
const (
	// AccessRule75 is the 75-year communicability delay (births,
	// recognitions, marriages), counted from the register's closure.
	AccessRule75 = "ACC-75"
	// AccessRuleFree is immediate communicability (0 years, deaths).
	AccessRuleFree = "ACC-00"
	// AppraisalRuleKeep is the appraisal rule of civil-status registers:
	// kept for ever (FinalAction Keep).
	AppraisalRuleKeep = "APP-ETATCIVIL"
)

// Reply codes used in ArchiveTransferReply/ReplyCode.
const (
	ReplyOK = "OK"
	ReplyKO = "KO"
)

// DigestAlgorithm is the MessageDigest algorithm attribute of every
// BinaryDataObject (SEDA digest code list).
const DigestAlgorithm = "SHA-256"

// Identifier names an organisation: ArchivalAgency, TransferringAgency.
type Identifier struct {
	ID   string // Identifier (required)
	Name string // human name, optional
}

// Person is one person named in an act.
type Person struct {
	Role       string // model.Role: titulaire, pere, mere, epoux, ...
	Surname    string
	GivenNames []string
}

// Act is one archived version of an act, as transferred to the archives.
type Act struct {
	ActID        string
	Commune      string // INSEE COG code written on the register
	CommuneName  string
	Year         int
	Kind         string // naissance|mariage|deces|reconnaissance
	SansVie      bool   // stillbirth (enfant sans vie), in the death register
	Number       int    // number in the yearly register, from 1
	Version      int    // version of the act, from 1
	ActDate      string // YYYY-MM-DD, optional
	SealedSHA256 string // hex SHA-256 of the sealed PDF
	Size         int64  // size of the sealed PDF in bytes
	FileName     string // name inside the ZIP, e.g. "acts/00042-v1.pdf"
	Persons      []Person
}

// Transfer is one ArchiveTransfer: one register (commune, year, kind)
// sent to one archival agency.
type Transfer struct {
	// MessageID is the lot id, the idempotency key: a transfer sent
	// again keeps it.
	MessageID          string
	Date               time.Time
	ArchivalAgency     Identifier
	TransferringAgency Identifier
	ArchivalAgreement  string // optional
	Commune            string
	CommuneName        string
	Year               int
	Kind               string
	Acts               []Act
}

// kindLabels gives the French names of a kind's register and acts.
var kindLabels = map[string]struct{ register, act string }{
	"naissance":      {"Registre des naissances", "Acte de naissance"},
	"mariage":        {"Registre des mariages", "Acte de mariage"},
	"deces":          {"Registre des décès", "Acte de décès"},
	"reconnaissance": {"Registre des reconnaissances", "Acte de reconnaissance"},
}

// roleLabels gives the French label of a person's role (model.Role).
var roleLabels = map[string]string{
	"titulaire": "titulaire",
	"pere":      "père",
	"mere":      "mère",
	"epoux":     "époux",
	"epouse":    "épouse",
	"defunt":    "défunt",
	"declarant": "déclarant",
	"temoin":    "témoin",
	"auteur":    "auteur de la reconnaissance",
}
