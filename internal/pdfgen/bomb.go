package pdfgen

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
)

// ZeroFlate returns a zlib stream that inflates to n zero bytes: the
// decompression bomb of the tests (1 MB of it inflates to 1 GB). Past a
// few MiB it repeats one sync-flushed deflate segment instead of
// compressing n bytes, so a gigabyte bomb costs milliseconds to build.
func ZeroFlate(n int64) []byte {
	const chunk = 1 << 20
	zeros := make([]byte, chunk)
	if n < 4*chunk {
		var out bytes.Buffer
		w, _ := zlib.NewWriterLevel(&out, zlib.BestCompression)
		for n > 0 {
			k := min(n, chunk)
			w.Write(zeros[:k])
			n -= k
		}
		w.Close()
		return out.Bytes()
	}
	chunks := (n + chunk - 1) / chunk
	out := bytes.NewBuffer([]byte{0x78, 0xda}) // zlib header, best compression
	fw, _ := flate.NewWriter(out, flate.BestCompression)
	fw.Write(zeros)
	fw.Flush()
	mark := out.Len()
	// After a sync flush the window holds only zeros, so the segment that
	// encodes the next MiB encodes every later MiB too.
	fw.Write(zeros)
	fw.Flush()
	seg := bytes.Clone(out.Bytes()[mark:])
	for i := int64(2); i < chunks; i++ {
		out.Write(seg)
	}
	out.Write([]byte{0x01, 0x00, 0x00, 0xff, 0xff}) // final empty stored block
	// Adler-32 of zeros: s1 stays 1, s2 grows by 1 per byte.
	s2 := uint32((chunks * chunk) % 65521)
	out.Write(binary.BigEndian.AppendUint32(nil, s2<<16|1))
	return out.Bytes()
}
