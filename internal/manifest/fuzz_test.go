package manifest

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse: Parse and Check never panic, and their results keep their
// invariants, whatever the bytes.
func FuzzParse(f *testing.F) {
	f.Add("manifest.json", []byte(strings.Replace(interfaceExample, "SHA", sha(42), 1)))
	f.Add("manifest.json", manifestJSON(f, act(1), 42, map[string]any{"file": "a/../b"}))
	f.Add("manifest.json", []byte(`{"hub":"x","acts":[{"persons":[{"given_names":[null]}]}]}`))
	f.Add("manifest.json", []byte(`{"hub":"x","acts":[{"size":1e400,"number":-0,"year":2021.0}]}`))
	f.Add("manifest.json", []byte(strings.Replace(strings.Replace(interfaceExample, "SHA", sha(42), 1), "2021,", "2.021e3,", 1)))
	f.Add("manifest.csv", []byte("\xef\xbb\xbf"+csvHeader+"\n"+csvRow("a.pdf", "1", sha(1), "1202", "naissance", "2021", "1", "2021-02-30", "", "", "titulaire", "X", "A|B", "", "", "", "", "")+"\n"))
	f.Add("manifest.csv", []byte("file,size\n\"a\n"))
	f.Add("x", []byte("hub;file;size;sha256;commune;kind;year;number;act_date;sans_vie\nh;a;1;;;;;;;peut-être\n"))
	f.Add("x", []byte("\xff\xfe"))
	// The repository's sample manifest (testdata/sample), as JSON and cut short.
	sample, err := os.ReadFile("../../testdata/sample/manifest.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("manifest.json", sample)
	f.Add("manifest.json", sample[:len(sample)/2])
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		m, err := Parse(name, data)
		if err != nil {
			if m != nil {
				t.Fatal("manifest and error both returned")
			}
			if !errors.Is(err, ErrUnparseable) {
				t.Fatalf("error not wrapping ErrUnparseable: %v", err)
			}
			return
		}
		if len(m.Acts) == 0 {
			t.Fatal("accepted a manifest without entries")
		}
		checker().Check(m)
		for i, e := range m.Acts {
			if e.Index != i {
				t.Fatalf("entry %d has index %d", i, e.Index)
			}
			if e.Problem != nil && !e.Problem.Reason.Known() {
				t.Fatalf("unknown reason %q", e.Problem.Reason)
			}
			_ = e.IndexDigest()
			_ = e.Message()
		}
	})
}
