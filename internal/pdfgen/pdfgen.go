// Package pdfgen is a tiny, exact PDF writer used to build test and sample
// documents: numbered indirect objects, streams, a classic cross-reference
// table and a trailer. Doc knows nothing of pages or fonts; callers write
// the object bodies themselves. ScanPDF builds on it to simulate scanned
// civil-status acts (bitonal or greyscale page images).
package pdfgen

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"strings"
)

// Doc is a PDF under construction. Object numbers start at 1 and are
// handed out in order by Add, AddStream and Reserve.
type Doc struct {
	version string
	objs    [][]byte // objs[i] is the full "N 0 obj ... endobj\n" of object i+1, nil if reserved and unset
	trailer string
}

// New starts a document whose header declares PDF version (e.g. "1.7").
func New(version string) *Doc {
	return &Doc{version: version}
}

// Reserve allocates an object number to be filled later with Set or SetStream.
func (d *Doc) Reserve() int {
	d.objs = append(d.objs, nil)
	return len(d.objs)
}

// Add appends an indirect object whose body is body and returns its number.
func (d *Doc) Add(body string) int {
	n := d.Reserve()
	d.Set(n, body)
	return n
}

// Set fills object num (from Reserve) with body, replacing any previous body.
func (d *Doc) Set(num int, body string) {
	d.check(num)
	d.objs[num-1] = []byte(fmt.Sprintf("%d 0 obj\n%s\nendobj\n", num, body))
}

// AddStream appends a stream object. dict holds the dictionary entries
// without the outer << >>; /Length is appended. It returns the number.
func (d *Doc) AddStream(dict string, data []byte) int {
	n := d.Reserve()
	d.SetStream(n, dict, data)
	return n
}

// SetStream fills object num (from Reserve) with a stream; see AddStream.
func (d *Doc) SetStream(num int, dict string, data []byte) {
	d.check(num)
	var b bytes.Buffer
	b.Grow(len(data) + len(dict) + 64)
	fmt.Fprintf(&b, "%d 0 obj\n<< ", num)
	if dict = strings.TrimSpace(dict); dict != "" {
		b.WriteString(dict)
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "/Length %d >>\nstream\n", len(data))
	b.Write(data)
	b.WriteString("\nendstream\nendobj\n")
	d.objs[num-1] = b.Bytes()
}

func (d *Doc) check(num int) {
	if num < 1 || num > len(d.objs) {
		panic(fmt.Sprintf("pdfgen: object %d not allocated (have %d)", num, len(d.objs)))
	}
}

// Trailer sets extra trailer entries, e.g. "/Root 1 0 R /Info 2 0 R".
// /Size is computed by Bytes and must not be given.
func (d *Doc) Trailer(extra string) { d.trailer = extra }

// Bytes serialises the document: header, objects in number order, a
// classic xref table, trailer, startxref and %%EOF. An object reserved
// but never set is written as a free entry in the xref table.
func (d *Doc) Bytes() []byte {
	size := 0
	for _, o := range d.objs {
		size += len(o)
	}
	var b bytes.Buffer
	b.Grow(size + 20*len(d.objs) + 256)
	fmt.Fprintf(&b, "%%PDF-%s\n%%\xe2\xe3\xcf\xd3\n", d.version)
	offs := make([]int, len(d.objs))
	for i, o := range d.objs {
		if o == nil {
			offs[i] = -1
			continue
		}
		offs[i] = b.Len()
		b.Write(o)
	}
	// Free entries form a linked list starting at entry 0: each names the
	// next free object number, the last names 0.
	nextFree := func(after int) int {
		for j := after; j < len(offs); j++ {
			if offs[j] < 0 {
				return j + 1
			}
		}
		return 0
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n", len(d.objs)+1)
	fmt.Fprintf(&b, "%010d 65535 f\r\n", nextFree(0))
	for i, off := range offs {
		if off < 0 {
			fmt.Fprintf(&b, "%010d 00001 f\r\n", nextFree(i+1))
			continue
		}
		fmt.Fprintf(&b, "%010d 00000 n\r\n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d", len(d.objs)+1)
	if t := strings.TrimSpace(d.trailer); t != "" {
		b.WriteByte(' ')
		b.WriteString(t)
	}
	fmt.Fprintf(&b, " >>\nstartxref\n%d\n%%%%EOF\n", xref)
	return b.Bytes()
}

// Deflate compresses b with zlib (the PDF FlateDecode filter).
func Deflate(b []byte) []byte {
	var out bytes.Buffer
	w, _ := zlib.NewWriterLevel(&out, zlib.DefaultCompression)
	w.Write(b)
	w.Close()
	return out.Bytes()
}
