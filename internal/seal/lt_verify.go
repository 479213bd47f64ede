package seal

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// subFilterDocTS is a document timestamp's SubFilter (PAdES B-LTA).
const subFilterDocTS = "ETSI.RFC3161"

var objRe = regexp.MustCompile(`(\d+)\s+(\d+)\s+obj\b`)

// tailObject is one object of the updates after a seal.
type tailObject struct {
	nr         int
	dict       types.Dict
	stream     bool
	start, end int // the object's span in the bytes read, "N G obj" to "endobj"
}

// readObjects reads the objects of b in order (streams skipped by their
// /Length), their dictionaries parsed.
func readObjects(b []byte) ([]tailObject, error) {
	var out []tailObject
	pos := 0
	for {
		loc := objRe.FindSubmatchIndex(b[pos:])
		if loc == nil {
			return out, nil
		}
		nr, _ := strconv.Atoi(string(b[pos+loc[2] : pos+loc[3]]))
		start := pos + loc[1]
		rest := b[start:]
		ei := bytes.Index(rest, []byte("endobj"))
		if ei < 0 {
			return nil, fmt.Errorf("objet n° %d sans endobj", nr)
		}
		si := bytes.Index(rest, []byte("stream"))
		isStream := si >= 0 && si < ei
		text := rest[:ei]
		if isStream {
			text = rest[:si]
		}
		line := string(text)
		obj, err := model.ParseObject(&line)
		if err != nil {
			return nil, fmt.Errorf("objet n° %d illisible : %v", nr, err)
		}
		d, ok := obj.(types.Dict)
		if !ok {
			return nil, fmt.Errorf("objet n° %d : pas un dictionnaire", nr)
		}
		out = append(out, tailObject{nr: nr, dict: d, stream: isStream, start: pos + loc[0]})
		if !isStream {
			pos = start + ei + len("endobj")
			out[len(out)-1].end = pos
			continue
		}
		n, ok := d["Length"].(types.Integer)
		if !ok || n < 0 {
			return nil, fmt.Errorf("flux n° %d sans /Length directe", nr)
		}
		data := start + si + len("stream")
		if data < len(b) && b[data] == '\r' {
			data++
		}
		if data < len(b) && b[data] == '\n' {
			data++
		}
		end := data + int(n)
		if end > len(b) {
			return nil, fmt.Errorf("flux n° %d tronqué", nr)
		}
		i := bytes.Index(b[end:], []byte("endobj"))
		if i < 0 {
			return nil, fmt.Errorf("flux n° %d sans endobj", nr)
		}
		pos = end + i + len("endobj")
		out[len(out)-1].end = pos
	}
}

// gapRe matches what may stand between the objects of incremental
// updates: white space, cross-reference tables, trailers, startxref and
// end-of-file markers.
var gapRe = regexp.MustCompile(`^(?s:\s|xref\s+(?:\d+\s+\d+\s+(?:\d{10} \d{5} [nf]\s*)*)+|trailer\s*<<.*?>>\s*startxref\s+\d+|startxref\s+\d+|%%EOF)*$`)

func nameOf(d types.Dict, key string) string {
	if n, ok := d[key].(types.Name); ok {
		return string(n)
	}
	return ""
}

// previousDefinition returns the last definition of object nr in b.
func previousDefinition(b []byte, nr int) (types.Dict, bool) {
	re := regexp.MustCompile(`(?:^|[^0-9])` + strconv.Itoa(nr) + `\s+\d+\s+obj\b`)
	locs := re.FindAllIndex(b, -1)
	if len(locs) == 0 {
		return nil, false
	}
	objs, err := readObjects(b[locs[len(locs)-1][0]:])
	if err != nil || len(objs) == 0 || objs[0].nr != nr {
		return nil, false
	}
	return objs[0].dict, true
}

// sameExcept tells whether a and b are the same dictionary once keys are
// left out.
func sameExcept(a, b types.Dict, keys ...string) bool {
	strip := func(d types.Dict) string {
		c := types.Dict{}
		for k, v := range d {
			c[k] = v
		}
		for _, k := range keys {
			delete(c, k)
		}
		return c.PDFString()
	}
	return strip(a) == strip(b)
}

// checkTail checks what follows a seal's signed bytes (sealed[from:]):
// only validation material (/DSS, /VRI and the streams they reference),
// document timestamps and their signature fields, the catalog with only
// its /DSS and /AcroForm changed, page objects with only their /Annots
// changed, and cross-reference streams. It returns what the last /DSS
// counts.
func checkTail(sealed []byte, from int64) (DSSInfo, error) {
	var info DSSInfo
	objs, err := readObjects(sealed[from:])
	if err != nil {
		return info, fmt.Errorf("%w: after the seal: %v", ErrInvalidSignature, err)
	}
	tail := sealed[from:]
	if len(objs) == 0 || !bytes.HasSuffix(bytes.TrimRight(tail, " \t\r\n"), []byte("%%EOF")) {
		return info, fmt.Errorf("%w: %d bytes after the seal are not an incremental update", ErrInvalidSignature, len(tail))
	}
	at := 0
	for _, o := range append(objs, tailObject{start: len(tail), end: len(tail)}) {
		if gap := tail[at:o.start]; !gapRe.Match(gap) {
			return info, fmt.Errorf("%w: after the seal, unexpected bytes %.40q", ErrInvalidSignature, gap)
		}
		at = o.end
	}
	prev := sealed[:from]
	inDSS := map[int]bool{}
	var plain []int
	modified := func(nr int) error {
		return fmt.Errorf("%w: object %d added or modified after the seal beyond validation material", ErrInvalidSignature, nr)
	}
	for _, o := range objs {
		typ := nameOf(o.dict, "Type")
		switch {
		case typ == "DSS":
			info = DSSInfo{}
			for key, n := range map[string]*int{"Certs": &info.Certs, "OCSPs": &info.OCSPs, "CRLs": &info.CRLs} {
				arr, _ := o.dict[key].(types.Array)
				*n = len(arr)
				for _, it := range arr {
					if ref, ok := it.(types.IndirectRef); ok {
						inDSS[ref.ObjectNumber.Value()] = true
					}
				}
			}
		case typ == "VRI", typ == "XRef", typ == "DocTimeStamp":
		case typ == "Annot" && nameOf(o.dict, "Subtype") == "Widget" && nameOf(o.dict, "FT") == "Sig":
		case typ == "Catalog", typ == "Page":
			old, ok := previousDefinition(prev, o.nr)
			ignored := []string{"DSS", "AcroForm"}
			if typ == "Page" {
				ignored = []string{"Annots"}
			}
			if !ok || !sameExcept(old, o.dict, ignored...) {
				return info, modified(o.nr)
			}
		case o.stream && len(o.dict) == 1:
			plain = append(plain, o.nr)
		default:
			return info, modified(o.nr)
		}
	}
	for _, nr := range plain {
		if !inDSS[nr] {
			return info, modified(nr)
		}
	}
	return info, nil
}
