// Package receipt writes a batch's deposit receipt: a PDF listing every
// file of the batch with its SHA-256 as received, the SHA-256 of the
// sealed object archived, its state and archiving time (or its rejection).
// The API seals it with the hub's seal: the hub's proof of deposit.
package receipt

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"golang.org/x/text/encoding/charmap"

	"github.com/etatcivil/etatcivil/internal/pdfgen"
)

// Line is one file of the batch.
type Line struct {
	Index        int
	File         string
	SHA256       string
	SealedSHA256 string
	State        string
	Reason       string
	ArchivedAt   *time.Time
	ObjectKey    string
}

// Receipt is a batch's outcome.
type Receipt struct {
	BatchID     string
	Hub         string
	HubName     string
	CreatedAt   time.Time
	SubmittedAt time.Time
	Issued      time.Time
	Manifest    string // SHA-256 of the manifest bytes
	Lines       []Line
}

const (
	pageW, pageH = 595, 842
	margin       = 40
	lead         = 10.5
)

// PDF renders the receipt (unsealed): A4 pages of text in the standard
// Helvetica and Courier fonts.
func (r Receipt) PDF() []byte {
	var lines []textLine
	add := func(font string, size float64, s string) { lines = append(lines, textLine{font, size, s}) }
	add("F2", 13, "Récépissé de dépôt — etatcivil")
	add("F1", 9, fmt.Sprintf("Opérateur : %s (%s)", r.HubName, r.Hub))
	add("F1", 9, "Lot : "+r.BatchID)
	add("F1", 9, "Manifeste (SHA-256) : "+r.Manifest)
	add("F1", 9, fmt.Sprintf("Déposé le %s, soumis le %s, récépissé émis le %s (UTC)",
		r.CreatedAt.UTC().Format("2006-01-02 15:04:05"), r.SubmittedAt.UTC().Format("2006-01-02 15:04:05"), r.Issued.UTC().Format("2006-01-02 15:04:05")))
	archived, rejected := 0, 0
	for _, l := range r.Lines {
		switch l.State {
		case "archived":
			archived++
		case "rejected":
			rejected++
		}
	}
	add("F1", 9, fmt.Sprintf("%d fichiers : %d archivés, %d refusés, %d autres.", len(r.Lines), archived, rejected, len(r.Lines)-archived-rejected))
	add("F1", 9, "")
	for _, l := range r.Lines {
		add("F2", 8.5, fmt.Sprintf("%d. %s — %s", l.Index+1, l.File, l.State))
		if l.SHA256 != "" {
			add("F3", 7.5, "   reçu    sha256 "+l.SHA256)
		}
		if l.SealedSHA256 != "" {
			add("F3", 7.5, "   archivé sha256 "+l.SealedSHA256)
		}
		switch {
		case l.ArchivedAt != nil:
			add("F1", 7.5, fmt.Sprintf("   archivé le %s : %s", l.ArchivedAt.UTC().Format("2006-01-02 15:04:05"), l.ObjectKey))
		case l.Reason != "":
			add("F1", 7.5, "   motif : "+l.Reason)
		}
	}
	add("F1", 9, "")
	add("F1", 8, "Ce récépissé est scellé avec le cachet électronique de l'opérateur : toute modification invalide le cachet.")
	return render(lines)
}

type textLine struct {
	font string
	size float64
	text string
}

// render lays lines out on as many pages as needed.
func render(lines []textLine) []byte {
	d := pdfgen.New("1.7")
	cat, pages := d.Reserve(), d.Reserve()
	fonts := d.Add(`<< /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>
/F2 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>
/F3 << /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >> >>`)
	var kids []string
	perPage := (pageH - 2*margin) * 10 / 105 // lines of lead 10.5 pt
	for start := 0; start < len(lines) || start == 0; start += perPage {
		end := min(start+perPage, len(lines))
		var c bytes.Buffer
		y := float64(pageH - margin)
		for _, l := range lines[start:end] {
			fmt.Fprintf(&c, "BT /%s %.1f Tf %d %.1f Td (%s) Tj ET\n", l.font, l.size, margin, y, escape(l.text))
			y -= lead
		}
		fmt.Fprintf(&c, "BT /F1 7 Tf %d 20 Td (page %d) Tj ET\n", pageW-margin-40, len(kids)+1)
		content := d.AddStream("/Filter /FlateDecode", pdfgen.Deflate(c.Bytes()))
		page := d.Add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Resources << /Font %d 0 R >> /Contents %d 0 R >>",
			pages, pageW, pageH, fonts, content))
		kids = append(kids, fmt.Sprintf("%d 0 R", page))
		if end >= len(lines) {
			break
		}
	}
	d.Set(pages, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(kids)))
	d.Set(cat, fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R >>", pages))
	d.Trailer(fmt.Sprintf("/Root %d 0 R", cat))
	return d.Bytes()
}

// escape encodes s in WinAnsi (the accents of French) as a PDF literal.
func escape(s string) string {
	enc, err := charmap.Windows1252.NewEncoder().String(s)
	if err != nil {
		var b strings.Builder
		for _, r := range s {
			if e, err := charmap.Windows1252.NewEncoder().String(string(r)); err == nil {
				b.WriteString(e)
			} else {
				b.WriteByte('?')
			}
		}
		enc = b.String()
	}
	r := strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`)
	return r.Replace(enc)
}
