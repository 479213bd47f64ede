package pdfgen

import (
	"crypto/md5"
	"crypto/rc4"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// passwordPad is the padding string of the standard security handler.
var passwordPad = []byte{
	0x28, 0xBF, 0x4E, 0x5E, 0x4E, 0x75, 0x8A, 0x41, 0x64, 0x00, 0x4E, 0x56, 0xFF, 0xFA, 0x01, 0x08,
	0x2E, 0x2E, 0x00, 0xB6, 0xD0, 0x68, 0x3E, 0x80, 0x2F, 0x0C, 0xA9, 0xFE, 0x64, 0x53, 0x69, 0x7A,
}

func padPassword(p string) []byte {
	b := append([]byte(p), passwordPad...)
	return b[:32]
}

func rc4Crypt(key, data []byte) []byte {
	c, _ := rc4.NewCipher(key)
	out := make([]byte, len(data))
	c.XORKeyStream(out, data)
	return out
}

// rc4Encrypter implements the standard security handler, revision 3,
// 128-bit RC4 (PDF 1.4; ISO 32000-1 algorithms 2, 3 and 5).
type rc4Encrypter struct {
	key  []byte
	o, u []byte
	p    int32
}

func newRC4Encrypter(user, owner string, perms int32, id []byte) *rc4Encrypter {
	if owner == "" {
		owner = user
	}
	// Algorithm 3: the O entry.
	h := md5.Sum(padPassword(owner))
	for i := 0; i < 50; i++ {
		h = md5.Sum(h[:])
	}
	o := padPassword(user)
	for i := 0; i < 20; i++ {
		k := make([]byte, 16)
		for j := range k {
			k[j] = h[j] ^ byte(i)
		}
		o = rc4Crypt(k, o)
	}
	// Algorithm 2: the file key.
	in := append(padPassword(user), o...)
	in = binary.LittleEndian.AppendUint32(in, uint32(perms))
	in = append(in, id...)
	k := md5.Sum(in)
	for i := 0; i < 50; i++ {
		k = md5.Sum(k[:])
	}
	key := k[:]
	// Algorithm 5: the U entry.
	uh := md5.Sum(append(append([]byte{}, passwordPad...), id...))
	u := uh[:]
	for i := 0; i < 20; i++ {
		kk := make([]byte, 16)
		for j := range kk {
			kk[j] = key[j] ^ byte(i)
		}
		u = rc4Crypt(kk, u)
	}
	u = append(u, make([]byte, 16)...)
	return &rc4Encrypter{key: key, o: o, u: u, p: perms}
}

// crypt encrypts (or decrypts) data belonging to object num, generation 0.
func (e *rc4Encrypter) crypt(num int, data []byte) []byte {
	in := append(append([]byte{}, e.key...), byte(num), byte(num>>8), byte(num>>16), 0, 0)
	k := md5.Sum(in)
	return rc4Crypt(k[:], data)
}

// dict is the body of the /Encrypt dictionary.
func (e *rc4Encrypter) dict() string {
	return fmt.Sprintf("<< /Filter /Standard /V 2 /R 3 /Length 128 /P %d /O <%s> /U <%s> >>",
		e.p, hex.EncodeToString(e.o), hex.EncodeToString(e.u))
}

// text returns s encrypted for object num as a hex string object.
func (e *rc4Encrypter) text(num int, s string) string {
	return "<" + hex.EncodeToString(e.crypt(num, []byte(s))) + ">"
}
