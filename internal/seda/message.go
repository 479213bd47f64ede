package seda

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Code list versions declared in CodeListVersions. The lists of rules and
// reply codes are etatcivil's; the archival agreement may name others.
const (
	codeListReply      = "etatcivil-reply-1"
	codeListDigest     = "IANA-hash-function-textual-names"
	codeListMimeType   = "IANA-media-types"
	codeListObjVersion = "SEDA-2.3-DataObjectVersion"
	codeListRules      = "etatcivil-rules-1"
)

const (
	dateLayout     = "2006-01-02"
	dateTimeLayout = "2006-01-02T15:04:05Z07:00"
	manifestName   = "manifest.xml"
)

// Message returns the transfer as a SEDA 2.3 ArchiveTransfer message
// (UTF-8 XML). It checks the transfer first: one register only (every act
// of the transfer's commune, year and kind), a digest and size for every
// act, unique safe file names and (number, version) pairs. Acts are
// described in register order (number, then version), whatever the order
// of t.Acts, so the same transfer always gives the same bytes.
func (t Transfer) Message() ([]byte, error) {
	acts, err := t.check()
	if err != nil {
		return nil, err
	}
	labels := kindLabels[t.Kind]
	closure := time.Date(t.Year+1, time.January, 1, 0, 0, 0, 0, time.UTC)
	place := t.Commune
	if t.CommuneName != "" {
		place = t.CommuneName + " (" + t.Commune + ")"
	}
	registerTitle := fmt.Sprintf("%s %d — %s", labels.register, t.Year, place)

	pkg := &xmlDataObjectPackage{
		ManagementMetadata: xmlManagementMetadata{
			LegalStatus:                 "Public Archive",
			OriginatingAgencyIdentifier: t.Commune,
			SubmissionAgencyIdentifier:  t.TransferringAgency.ID,
			AppraisalRule: &xmlRule{
				Rule:        AppraisalRuleKeep,
				StartDate:   closure.Format(dateLayout),
				FinalAction: "Keep",
			},
		},
	}
	register := xmlArchiveUnit{
		ID: "AU-REGISTRE",
		Content: xmlContent{
			DescriptionLevel:                       "RecordGrp",
			Title:                                  registerTitle,
			OriginatingAgencyArchiveUnitIdentifier: fmt.Sprintf("%s/%d/%s", t.Commune, t.Year, t.Kind),
			DocumentType:                           labels.register,
			Language:                               "fr",
			Keywords: []xmlKeyword{{
				KeywordContent:   place,
				KeywordReference: &xmlKeywordReference{SchemeName: "COG INSEE", Value: t.Commune},
				KeywordType:      "geogname",
			}},
			OriginatingAgency: &xmlOrganization{Identifier: t.Commune},
			Source:            "Copie numérique du registre papier : " + registerTitle,
			StartDate:         fmt.Sprintf("%04d-01-01", t.Year),
			EndDate:           fmt.Sprintf("%04d-12-31", t.Year),
		},
	}
	rule, start, _ := AccessRule(t.Kind, t.Year)
	for i, a := range acts {
		doID := "DO-" + strconv.Itoa(i+1)
		pkg.BinaryDataObjects = append(pkg.BinaryDataObjects, xmlBinaryDataObject{
			ID:                   doID,
			DataObjectVersion:    "BinaryMaster_1",
			URI:                  a.FileName,
			MessageDigest:        xmlDigest{Algorithm: DigestAlgorithm, Value: a.SealedSHA256},
			Size:                 a.Size,
			FormatIdentification: &xmlFormat{FormatLitteral: "Portable Document Format", MimeType: "application/pdf"},
			FileInfo:             &xmlFileInfo{Filename: path.Base(a.FileName)},
		})
		actLabel := labels.act
		if a.SansVie {
			actLabel = "Acte d'enfant sans vie"
		}
		title := fmt.Sprintf("%s n° %d (%d)", actLabel, a.Number, t.Year)
		if a.Version > 1 {
			title += fmt.Sprintf(", version %d", a.Version)
		}
		unit := xmlArchiveUnit{
			ID: "AU-" + strconv.Itoa(i+1),
			Management: &xmlManagement{
				AccessRule: &xmlRule{Rule: rule, StartDate: start.Format(dateLayout)},
			},
			Content: xmlContent{
				DescriptionLevel:                       "Item",
				Title:                                  title,
				OriginatingSystemID:                    a.ActID,
				OriginatingAgencyArchiveUnitIdentifier: fmt.Sprintf("%s/%d/%s/%d", t.Commune, t.Year, t.Kind, a.Number),
				DocumentType:                           actLabel,
				Language:                               "fr",
				Version:                                strconv.Itoa(a.Version),
				CreatedDate:                            a.ActDate,
			},
			DataObjectReferences: []xmlDataObjectRef{{DataObjectReferenceID: doID}},
		}
		for _, p := range a.Persons {
			ag := xmlAgent{
				BirthName: strings.TrimSpace(p.Surname),
				FirstName: strings.Join(trimAll(p.GivenNames), " "),
				Role:      roleLabel(p.Role),
			}
			if ag.BirthName == "" && ag.FirstName == "" {
				continue
			}
			unit.Content.Agents = append(unit.Content.Agents, ag)
		}
		register.ArchiveUnits = append(register.ArchiveUnits, unit)
	}
	pkg.DescriptiveMetadata.ArchiveUnits = []xmlArchiveUnit{register}

	msg := xmlArchiveTransfer{
		Date:              t.Date.Format(dateTimeLayout),
		MessageIdentifier: t.MessageID,
		ArchivalAgreement: t.ArchivalAgreement,
		CodeListVersions: xmlCodeListVersions{
			ReplyCodeListVersion:                  codeListReply,
			MessageDigestAlgorithmCodeListVersion: codeListDigest,
			MimeTypeCodeListVersion:               codeListMimeType,
			DataObjectVersionCodeListVersion:      codeListObjVersion,
			AppraisalRuleCodeListVersion:          codeListRules,
			AccessRuleCodeListVersion:             codeListRules,
		},
		DataObjectPackage:  pkg,
		ArchivalAgency:     organization(t.ArchivalAgency),
		TransferringAgency: organization(t.TransferringAgency),
	}
	return marshal(msg)
}

func roleLabel(role string) string {
	if l, ok := roleLabels[role]; ok {
		return l
	}
	return strings.TrimSpace(role)
}

func trimAll(s []string) []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// check verifies the transfer and returns its acts in register order, with
// the register's commune, year and kind filled in and digests in lowercase.
func (t Transfer) check() ([]Act, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if !nonEmptyToken(t.MessageID) {
		bad("identifiant du message (lot) manquant")
	}
	if t.Date.IsZero() {
		bad("date du message manquante")
	}
	if !nonEmptyToken(t.ArchivalAgency.ID) {
		bad("identifiant du service d'archives manquant")
	}
	if !nonEmptyToken(t.TransferringAgency.ID) {
		bad("identifiant du service versant manquant")
	}
	if !validCommune(t.Commune) {
		bad("code commune %q invalide (code INSEE de 5 caractères attendu)", t.Commune)
	}
	if t.Year < 1 || t.Year > 9999 {
		bad("année %d invalide", t.Year)
	}
	if _, ok := kindLabels[t.Kind]; !ok {
		bad("nature de registre %q inconnue (naissance, mariage, deces ou reconnaissance)", t.Kind)
	}
	if len(t.Acts) == 0 {
		bad("aucun acte à transférer")
	}
	acts := slices.Clone(t.Acts)
	names := map[string]string{}
	type key struct{ number, version int }
	seen := map[key]string{}
	for i := range acts {
		a := &acts[i]
		who := fmt.Sprintf("acte %q", a.ActID)
		if !nonEmptyToken(a.ActID) {
			who = fmt.Sprintf("acte n° %d de la liste", i+1)
			bad("%s : identifiant manquant", who)
		}
		if a.Commune == "" {
			a.Commune = t.Commune
		} else if a.Commune != t.Commune {
			bad("%s : commune %s, le registre est celui de %s", who, a.Commune, t.Commune)
		}
		if a.Year == 0 {
			a.Year = t.Year
		} else if a.Year != t.Year {
			bad("%s : année %d, le registre est celui de %d", who, a.Year, t.Year)
		}
		if a.Kind == "" {
			a.Kind = t.Kind
		} else if a.Kind != t.Kind {
			bad("%s : nature %q, le registre est %q", who, a.Kind, t.Kind)
		}
		if a.SansVie && a.Kind != "deces" {
			bad("%s : un acte d'enfant sans vie appartient au registre des décès", who)
		}
		if a.Number < 1 {
			bad("%s : numéro %d invalide", who, a.Number)
		}
		if a.Version < 1 {
			bad("%s : version %d invalide", who, a.Version)
		}
		if prev, dup := seen[key{a.Number, a.Version}]; dup && a.Number >= 1 {
			bad("%s : numéro %d version %d déjà transféré par l'acte %q", who, a.Number, a.Version, prev)
		}
		seen[key{a.Number, a.Version}] = a.ActID
		if a.ActDate != "" {
			if _, err := time.Parse(dateLayout, a.ActDate); err != nil {
				bad("%s : date de l'acte %q invalide (AAAA-MM-JJ attendu)", who, a.ActDate)
			}
		}
		a.SealedSHA256 = strings.ToLower(a.SealedSHA256)
		if b, err := hex.DecodeString(a.SealedSHA256); err != nil || len(b) != 32 {
			bad("%s : empreinte SHA-256 %q invalide (64 caractères hexadécimaux attendus)", who, a.SealedSHA256)
		}
		if a.Size <= 0 {
			bad("%s : taille %d invalide", who, a.Size)
		}
		if err := checkFileName(a.FileName); err != nil {
			bad("%s : nom de fichier %q invalide : %v", who, a.FileName, err)
		} else if prev, dup := names[a.FileName]; dup {
			bad("%s : nom de fichier %q déjà utilisé par l'acte %q", who, a.FileName, prev)
		}
		names[a.FileName] = a.ActID
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("seda: transfert %q invalide : %w", t.MessageID, errors.Join(errs...))
	}
	slices.SortStableFunc(acts, func(a, b Act) int {
		return cmp.Or(cmp.Compare(a.Number, b.Number), cmp.Compare(a.Version, b.Version))
	})
	return acts, nil
}

// checkFileName accepts relative slash-separated paths made of ASCII
// letters, digits, '.', '_' and '-', so that the name is at once a safe ZIP
// entry and a URI needing no escaping.
func checkFileName(name string) error {
	if name == "" {
		return errors.New("vide")
	}
	if len(name) > 255 {
		return errors.New("plus de 255 octets")
	}
	if name == manifestName {
		return errors.New("réservé au bordereau")
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-', r == '/':
		default:
			return fmt.Errorf("caractère %q interdit", r)
		}
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("chemin absolu, segment vide, « . » ou « .. »")
		}
	}
	return nil
}

// nonEmptyToken reports whether s is a valid SEDA NonEmptyTokenType once
// whitespace is collapsed, and has no leading or trailing space (which the
// receiver would silently drop).
func nonEmptyToken(s string) bool {
	return s != "" && strings.TrimSpace(s) == s && utf8.ValidString(s)
}

// validCommune reports whether code looks like an INSEE COG code: 5
// characters, digits, or 2A/2B followed by 3 digits (Corsica).
func validCommune(code string) bool {
	if len(code) != 5 {
		return false
	}
	for i, c := range []byte(code) {
		if c >= '0' && c <= '9' {
			continue
		}
		if i == 1 && code[0] == '2' && (c == 'A' || c == 'B') {
			continue
		}
		return false
	}
	return true
}
