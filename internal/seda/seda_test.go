package seda

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pdf returns fake PDF bytes for act number n, and their hex SHA-256.
func pdf(n int) ([]byte, string) {
	b := []byte(fmt.Sprintf("%%PDF-1.7\n%% acte %d\n%s\n%%%%EOF\n", n, strings.Repeat("x", 1000+n)))
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

func act(kind string, n int) Act {
	b, sum := pdf(n)
	return Act{
		ActID:        fmt.Sprintf("01J%04d-%s", n, kind),
		Commune:      "12202",
		CommuneName:  "Rodez",
		Year:         2021,
		Kind:         kind,
		Number:       n,
		Version:      1,
		ActDate:      time.Date(2021, 1, n*3, 0, 0, 0, 0, time.UTC).Format("2006-01-02"),
		SealedSHA256: sum,
		Size:         int64(len(b)),
		FileName:     fmt.Sprintf("acts/%05d-v1.pdf", n),
	}
}

func transfer(kind string, acts ...Act) Transfer {
	return Transfer{
		MessageID:          "lot-" + kind + "-12202-2021",
		Date:               time.Date(2026, 5, 4, 10, 30, 0, 0, time.UTC),
		ArchivalAgency:     Identifier{ID: "FRAD012", Name: "Archives départementales de l'Aveyron"},
		TransferringAgency: Identifier{ID: "SMICA", Name: "SMICA — syndicat mixte"},
		ArchivalAgreement:  "AGR-ETATCIVIL-12",
		Commune:            "12202",
		CommuneName:        "Rodez",
		Year:               2021,
		Kind:               kind,
		Acts:               acts,
	}
}

// births is a register of 3 births, given out of order, one act in 2
// versions.
func births() Transfer {
	a1 := act("naissance", 1)
	a1.Persons = []Person{
		{Role: "titulaire", Surname: "DUPONT", GivenNames: []string{"Jean", "Émile"}},
		{Role: "pere", Surname: "DUPONT", GivenNames: []string{"Pierre"}},
		{Role: "mere", Surname: "MARTÍN", GivenNames: []string{"Ana"}},
	}
	a2 := act("naissance", 2)
	a2.Persons = []Person{{Role: "titulaire", Surname: "LÉGER", GivenNames: []string{"Zoé"}}}
	a42 := act("naissance", 42)
	a42v2 := act("naissance", 43)
	a42v2.ActID, a42v2.Number, a42v2.Version, a42v2.FileName = a42.ActID, 42, 2, "acts/00042-v2.pdf"
	return transfer("naissance", a42v2, a2, a1, a42)
}

// deaths is a death register holding a death and a stillbirth.
func deaths() Transfer {
	d := act("deces", 7)
	d.Persons = []Person{{Role: "defunt", Surname: "BERNARD", GivenNames: []string{"Louis"}}, {Role: "declarant", Surname: "BERNARD", GivenNames: []string{"Marie"}}}
	s := act("deces", 8)
	s.SansVie = true
	s.Persons = []Person{{Role: "mere", Surname: "ROUX", GivenNames: []string{"Claire"}}}
	return transfer("deces", d, s)
}

func mustValid(t *testing.T, doc []byte) {
	t.Helper()
	if err := Validate(doc); err != nil {
		if errors.Is(err, ErrNoValidator) {
			t.Fatal("xmllint is required for these tests (apt-get install libxml2-utils): ", err)
		}
		t.Fatalf("%v\n--- document ---\n%s", err, doc)
	}
}

func TestMessageValidates(t *testing.T) {
	mar := act("mariage", 3)
	mar.Persons = []Person{{Role: "epoux", Surname: "A", GivenNames: []string{"B"}}, {Role: "epouse", Surname: "C"}}
	rec := act("reconnaissance", 4)
	for name, tr := range map[string]Transfer{
		"naissance":      births(),
		"deces":          deaths(),
		"mariage":        transfer("mariage", mar),
		"reconnaissance": transfer("reconnaissance", rec),
		"no names": func() Transfer {
			x := births()
			x.ArchivalAgency.Name, x.TransferringAgency.Name, x.CommuneName, x.ArchivalAgreement = "", "", "", ""
			return x
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			doc, err := tr.Message()
			if err != nil {
				t.Fatal(err)
			}
			mustValid(t, doc)
			again, err := tr.Message()
			if err != nil || !bytes.Equal(doc, again) {
				t.Fatalf("Message is not deterministic (err %v)", err)
			}
		})
	}
}

func TestMessageContent(t *testing.T) {
	doc, err := births().Message()
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	for _, want := range []string{
		`<ArchiveTransfer xmlns="fr:gouv:culture:archivesdefrance:seda:v2.3">`,
		`<MessageIdentifier>lot-naissance-12202-2021</MessageIdentifier>`,
		`<Date>2026-05-04T10:30:00Z</Date>`,
		`<Title>Registre des naissances 2021 — Rodez (12202)</Title>`,
		`<DescriptionLevel>RecordGrp</DescriptionLevel>`,
		`<Title>Acte de naissance n° 1 (2021)</Title>`,
		`<Title>Acte de naissance n° 42 (2021), version 2</Title>`,
		`<BirthName>DUPONT</BirthName>`,
		`<FirstName>Jean Émile</FirstName>`,
		`<Role>père</Role>`,
		`<MessageDigest algorithm="SHA-256">` + births().Acts[2].SealedSHA256 + `</MessageDigest>`,
		`<MimeType>application/pdf</MimeType>`,
		`<Uri>acts/00042-v2.pdf</Uri>`,
		`<Rule>ACC-75</Rule>`,
		`<StartDate>2022-01-01</StartDate>`,
		`<FinalAction>Keep</FinalAction>`,
		`<Name xmlns="urn:etatcivil:seda:1">Archives départementales de l&#39;Aveyron</Name>`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("message lacks %s", want)
		}
	}
	// Register order: n° 1, 2, 42 v1, 42 v2.
	i1, i2 := strings.Index(s, "n° 1 (2021)"), strings.Index(s, "n° 2 (2021)")
	i42, i42v2 := strings.Index(s, "n° 42 (2021)<"), strings.Index(s, "n° 42 (2021), version 2")
	if !(i1 < i2 && i2 < i42 && i42 < i42v2) {
		t.Errorf("acts not in register order: %d %d %d %d", i1, i2, i42, i42v2)
	}

	d, err := deaths().Message()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<Title>Registre des décès 2021 — Rodez (12202)</Title>", "<Title>Acte d&#39;enfant sans vie n° 8 (2021)</Title>", "<Rule>ACC-00</Rule>", "<StartDate>2021-01-01</StartDate>"} {
		if !strings.Contains(string(d), want) {
			t.Errorf("death message lacks %s", want)
		}
	}
}

func TestMessageRefusesBadTransfers(t *testing.T) {
	tests := map[string]func(*Transfer){
		"no message id":     func(t *Transfer) { t.MessageID = "" },
		"no date":           func(t *Transfer) { t.Date = time.Time{} },
		"no archival id":    func(t *Transfer) { t.ArchivalAgency.ID = "" },
		"bad commune":       func(t *Transfer) { t.Commune = "1220" },
		"bad kind":          func(t *Transfer) { t.Kind = "divorce" },
		"no acts":           func(t *Transfer) { t.Acts = nil },
		"other register":    func(t *Transfer) { t.Acts[0].Year = 2020 },
		"other kind":        func(t *Transfer) { t.Acts[0].Kind = "deces" },
		"sans vie in birth": func(t *Transfer) { t.Acts[0].SansVie = true },
		"bad digest":        func(t *Transfer) { t.Acts[0].SealedSHA256 = "abc" },
		"zero size":         func(t *Transfer) { t.Acts[0].Size = 0 },
		"dup number":        func(t *Transfer) { t.Acts[1].Number, t.Acts[1].Version = t.Acts[0].Number, t.Acts[0].Version },
		"dup file":          func(t *Transfer) { t.Acts[1].FileName = t.Acts[0].FileName },
		"dotdot file":       func(t *Transfer) { t.Acts[0].FileName = "../x.pdf" },
		"absolute file":     func(t *Transfer) { t.Acts[0].FileName = "/x.pdf" },
		"manifest file":     func(t *Transfer) { t.Acts[0].FileName = "manifest.xml" },
		"bad act date":      func(t *Transfer) { t.Acts[0].ActDate = "2021-02-30" },
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			tr := births()
			change(&tr)
			if _, err := tr.Message(); err == nil {
				t.Fatal("Message accepted an invalid transfer")
			}
			if err := tr.WriteZip(io.Discard, func(Act) (io.ReadCloser, error) { panic("opened") }); err == nil {
				t.Fatal("WriteZip accepted an invalid transfer")
			}
		})
	}
}

// TestValidatorRejects proves Validate is a real validator: broken
// variants of a valid message must fail.
func TestValidatorRejects(t *testing.T) {
	doc, err := births().Message()
	if err != nil {
		t.Fatal(err)
	}
	mustValid(t, doc)
	sum := births().Acts[0].SealedSHA256
	tests := []struct{ name, old, new, want string }{
		{"no MessageIdentifier", "<MessageIdentifier>lot-naissance-12202-2021</MessageIdentifier>", "", "MessageIdentifier"},
		{"no CodeListVersions", string(regexp.MustCompile(`(?s)<CodeListVersions>.*</CodeListVersions>\s*`).Find(doc)), "", "CodeListVersions"},
		{"no DescriptiveMetadata", string(regexp.MustCompile(`(?s)<DescriptiveMetadata>.*</DescriptiveMetadata>\s*`).Find(doc)), "", "DescriptiveMetadata"},
		{"no ArchivalAgency", string(regexp.MustCompile(`(?s)<ArchivalAgency>.*</ArchivalAgency>\s*`).Find(doc)), "", "ArchivalAgency"},
		{"no MessageDigest", `<MessageDigest algorithm="SHA-256">` + sum + `</MessageDigest>`, "", "MessageDigest"},
		{"empty digest algorithm", `algorithm="SHA-256"`, `algorithm=""`, "algorithm"},
		{"no digest algorithm", `algorithm="SHA-256"`, ``, "algorithm"},
		{"digest neither hex nor base64", ">" + sum + "<", ">" + sum[:63] + "!<", "MessageDigest"},
		{"bad DescriptionLevel", "<DescriptionLevel>RecordGrp</DescriptionLevel>", "<DescriptionLevel>Register</DescriptionLevel>", "DescriptionLevel"},
		{"bad FinalAction", "<FinalAction>Keep</FinalAction>", "<FinalAction>Forever</FinalAction>", "FinalAction"},
		{"Date after MessageIdentifier", "<Date>2026-05-04T10:30:00Z</Date>\n  <MessageIdentifier>lot-naissance-12202-2021</MessageIdentifier>", "<MessageIdentifier>lot-naissance-12202-2021</MessageIdentifier>\n  <Date>2026-05-04T10:30:00Z</Date>", "Date"},
		{"dangling DataObjectReferenceId", "<DataObjectReferenceId>DO-1</DataObjectReferenceId>", "<DataObjectReferenceId>DO-99</DataObjectReferenceId>", "DO-99"},
		{"zero Size", "<Size>1026</Size>", "<Size>0</Size>", "Size"},
		{"wrong namespace", "seda:v2.3", "seda:v2.2", "ArchiveTransfer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.old == "" || !bytes.Contains(doc, []byte(tc.old)) {
				t.Fatalf("test bug: %q not in message", tc.old)
			}
			broken := bytes.Replace(doc, []byte(tc.old), []byte(tc.new), 1)
			err := Validate(broken)
			if errors.Is(err, ErrNoValidator) {
				t.Fatal(err)
			}
			if err == nil {
				t.Fatal("broken message validated")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not mention %q:\n%v", tc.want, err)
			}
		})
	}
	if err := Validate([]byte("<not xml")); err == nil {
		t.Error("malformed XML validated")
	}
}

func TestValidateWithoutXmllint(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if err := Validate([]byte("<x/>")); !errors.Is(err, ErrNoValidator) {
		t.Fatalf("Validate without xmllint: %v, want ErrNoValidator", err)
	}
}

func TestAccessRule(t *testing.T) {
	tests := []struct {
		kind  string
		year  int
		rule  string
		start string
		years int
	}{
		{"naissance", 1950, "ACC-75", "1951-01-01", 75},
		{"naissance", 2021, "ACC-75", "2022-01-01", 75},
		{"mariage", 1949, "ACC-75", "1950-01-01", 75},
		{"reconnaissance", 2000, "ACC-75", "2001-01-01", 75},
		{"deces", 1950, "ACC-00", "1950-01-01", 0},
		{"deces", 2024, "ACC-00", "2024-01-01", 0},
		{"inconnu", 2000, "ACC-75", "2001-01-01", 75}, // fails closed
	}
	for _, tc := range tests {
		rule, start, years := AccessRule(tc.kind, tc.year)
		if rule != tc.rule || start.Format("2006-01-02") != tc.start || years != tc.years {
			t.Errorf("AccessRule(%q, %d) = %s, %s, %d; want %s, %s, %d", tc.kind, tc.year,
				rule, start.Format("2006-01-02"), years, tc.rule, tc.start, tc.years)
		}
		// A birth register of 1950 opens to the public on 2026-01-01; a
		// death register at once.
		if tc.kind == "naissance" && tc.year == 1950 {
			if free := start.AddDate(years, 0, 0); free.Format("2006-01-02") != "2026-01-01" {
				t.Errorf("1950 births free on %s, want 2026-01-01", free.Format("2006-01-02"))
			}
		}
		if tc.kind == "deces" {
			if free := start.AddDate(years, 0, 0); free.After(time.Date(tc.year, 1, 1, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("deaths of %d restricted until %s", tc.year, free)
			}
		}
	}
}

func replyOK() Reply {
	return Reply{
		MessageID:          "ATR-1",
		RequestID:          "lot-naissance-12202-2021",
		Date:               time.Date(2026, 5, 4, 11, 0, 0, 0, time.UTC),
		ReplyCode:          ReplyOK,
		GrantDate:          time.Date(2026, 5, 4, 10, 59, 0, 0, time.FixedZone("", 2*3600)),
		ArchivalAgreement:  "AGR-ETATCIVIL-12",
		ArchivalAgency:     Identifier{ID: "FRAD012", Name: "Archives départementales de l'Aveyron"},
		TransferringAgency: Identifier{ID: "SMICA"},
	}
}

func TestReply(t *testing.T) {
	ko := replyOK()
	ko.MessageID, ko.ReplyCode, ko.GrantDate = "ATR-2", ReplyKO, time.Time{}
	ko.Reason = "empreinte SHA-256 différente pour 2 actes"
	ko.Refused = map[string]string{"01J0042-naissance": "empreinte différente", "01J0001-naissance": "PDF illisible"}
	koWhole := ko
	koWhole.Refused = nil
	koWhole.Reason = "accord de versement inconnu"
	for name, r := range map[string]Reply{"OK": replyOK(), "KO per act": ko, "KO whole": koWhole} {
		t.Run(name, func(t *testing.T) {
			doc, err := BuildReply(r)
			if err != nil {
				t.Fatal(err)
			}
			mustValid(t, doc)
			got, err := ParseReply(doc)
			if err != nil {
				t.Fatal(err)
			}
			if !got.GrantDate.Equal(r.GrantDate) {
				t.Errorf("GrantDate %v, want %v", got.GrantDate, r.GrantDate)
			}
			got.GrantDate = r.GrantDate
			if !reflect.DeepEqual(got, r) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
			}
		})
	}
}

func TestBuildReplyRefuses(t *testing.T) {
	for name, change := range map[string]func(*Reply){
		"bad code":      func(r *Reply) { r.ReplyCode = "WARNING" },
		"KO without":    func(r *Reply) { r.ReplyCode = ReplyKO; r.GrantDate = time.Time{} },
		"OK refusing":   func(r *Reply) { r.Refused = map[string]string{"a": "b"} },
		"no request id": func(r *Reply) { r.RequestID = "" },
		"no agency":     func(r *Reply) { r.ArchivalAgency.ID = "" },
		"refused w/o why": func(r *Reply) {
			r.ReplyCode, r.Reason, r.GrantDate, r.Refused = ReplyKO, "x", time.Time{}, map[string]string{"a": " "}
		},
		"KO with grant":    func(r *Reply) { r.ReplyCode, r.Reason = ReplyKO, "x" },
		"no reply date":    func(r *Reply) { r.Date = time.Time{} },
		"no reply message": func(r *Reply) { r.MessageID = "" },
	} {
		r := replyOK()
		change(&r)
		if _, err := BuildReply(r); err == nil {
			t.Errorf("%s: BuildReply accepted %+v", name, r)
		}
	}
}

func TestParseReplyForeign(t *testing.T) {
	// A terse KO from another system: no Operation, no reason.
	doc := `<?xml version="1.0"?>
<ArchiveTransferReply xmlns="fr:gouv:culture:archivesdefrance:seda:v2.3">
  <Date>2026-05-04T11:00:00+02:00</Date>
  <MessageIdentifier>X-1</MessageIdentifier>
  <CodeListVersions/>
  <ReplyCode>KO</ReplyCode>
  <MessageRequestIdentifier>lot-1</MessageRequestIdentifier>
  <ArchivalAgency><Identifier>AD</Identifier></ArchivalAgency>
  <TransferringAgency><Identifier>HUB</Identifier></TransferringAgency>
</ArchiveTransferReply>`
	mustValid(t, []byte(doc))
	r, err := ParseReply([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if r.ReplyCode != ReplyKO || r.Reason != DefaultRefusal || r.RequestID != "lot-1" || r.Refused != nil {
		t.Errorf("ParseReply = %+v", r)
	}
	for name, bad := range map[string]string{
		"other message": strings.ReplaceAll(doc, "ArchiveTransferReply", "ArchiveDeliveryRequestReply"),
		"other version": strings.Replace(doc, "seda:v2.3", "seda:v2.1", 1),
		"unknown code":  strings.Replace(doc, "<ReplyCode>KO", "<ReplyCode>WARNING", 1),
		"no request id": strings.Replace(doc, "lot-1", "", 1),
		"bad date":      strings.Replace(doc, "2026-05-04T11", "2026-05-04 11", 1),
		"not xml":       "<ArchiveTransferReply",
	} {
		if _, err := ParseReply([]byte(bad)); err == nil {
			t.Errorf("%s: ParseReply accepted it", name)
		}
	}
}

func TestWriteZip(t *testing.T) {
	tr := births()
	files := map[string][]byte{}
	for _, a := range tr.Acts {
		n := a.Number
		if a.Version == 2 {
			n = 43
		}
		b, _ := pdf(n)
		files[a.FileName] = b
	}
	var buf bytes.Buffer
	opened := 0
	err := tr.WriteZip(&buf, func(a Act) (io.ReadCloser, error) {
		opened++
		return io.NopCloser(bytes.NewReader(files[a.FileName])), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if opened != len(tr.Acts) {
		t.Errorf("opened %d PDFs, want %d", opened, len(tr.Acts))
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := tr.Message()
	want := map[string][]byte{"manifest.xml": msg}
	for k, v := range files {
		want[k] = v
	}
	if len(zr.File) != len(want) || zr.File[0].Name != "manifest.xml" {
		t.Fatalf("zip entries %v, want manifest.xml first and %d entries", names(zr), len(want))
	}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[f.Name]) {
			t.Errorf("%s differs in the zip", f.Name)
		}
	}
	mf, _ := zr.Open("manifest.xml")
	doc, _ := io.ReadAll(mf)
	mustValid(t, doc)
}

func names(zr *zip.Reader) []string {
	var out []string
	for _, f := range zr.File {
		out = append(out, f.Name)
	}
	return out
}

func TestWriteZipRefusesAlteredPDF(t *testing.T) {
	tr := deaths()
	good := map[string][]byte{}
	for _, a := range tr.Acts {
		good[a.FileName], _ = pdf(a.Number)
	}
	flip := func(b []byte) []byte { c := bytes.Clone(b); c[20] ^= 1; return c }
	tests := map[string]struct {
		file []byte
		want string
	}{
		"same size, other bytes": {flip(good["acts/00008-v1.pdf"]), "SHA-256"},
		"shorter":                {good["acts/00008-v1.pdf"][:100], "octets"},
		"longer":                 {append(bytes.Clone(good["acts/00008-v1.pdf"]), 'x'), "dépasse"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			closed := 0
			err := tr.WriteZip(&buf, func(a Act) (io.ReadCloser, error) {
				b := good[a.FileName]
				if a.Number == 8 {
					b = tc.file
				}
				return closer{bytes.NewReader(b), &closed}, nil
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "01J0008-deces") {
				t.Fatalf("WriteZip error %v, want one naming the act and %q", err, tc.want)
			}
			if closed != 2 {
				t.Errorf("%d PDFs closed, want 2", closed)
			}
			if _, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len())); err == nil {
				t.Error("a failed WriteZip left a readable zip")
			}
		})
	}
	t.Run("open error", func(t *testing.T) {
		boom := errors.New("boom")
		err := tr.WriteZip(io.Discard, func(Act) (io.ReadCloser, error) { return nil, boom })
		if !errors.Is(err, boom) {
			t.Fatalf("WriteZip error %v, want boom", err)
		}
	})
}

type closer struct {
	io.Reader
	n *int
}

func (c closer) Close() error { *c.n++; return nil }
