package merkle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
)

func leaves(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = LeafHash([]byte(fmt.Sprintf("event %d", i)))
	}
	return out
}

// The tree heads of RFC 6962's reference test vectors (the same tree as
// RFC 9162): leaves "", 0x00, 0x10, 0x2021, 0x3031, 0x40414243,
// 0x5051525354555657, 0x606162636465666768696a6b6c6d6e6f.
func TestRootReferenceVectors(t *testing.T) {
	data := []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}
	roots := []string{
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	var ls [][]byte
	for i, d := range data {
		raw, _ := hex.DecodeString(d)
		ls = append(ls, LeafHash(raw))
		if got := hex.EncodeToString(Root(ls)); got != roots[i] {
			t.Fatalf("root of %d leaves = %s, want %s", i+1, got, roots[i])
		}
	}
}

func TestEmptyRoot(t *testing.T) {
	want := sha256.Sum256(nil)
	if !bytes.Equal(Root(nil), want[:]) {
		t.Fatal("empty tree head is not SHA-256 of nothing")
	}
}

func TestInclusionEveryLeafEverySize(t *testing.T) {
	for n := 1; n <= 33; n++ {
		ls := leaves(n)
		root := Root(ls)
		for i := range n {
			p, err := InclusionProof(ls, i)
			if err != nil {
				t.Fatal(err)
			}
			tree := NewTree(ls)
			tp, err := tree.Proof(i)
			if err != nil || !bytes.Equal(tree.Root(), root) || len(tp) != len(p) {
				t.Fatalf("size %d leaf %d: Tree differs from InclusionProof: %v", n, i, err)
			}
			for j := range p {
				if !bytes.Equal(tp[j], p[j]) {
					t.Fatalf("size %d leaf %d: Tree proof step %d differs", n, i, j)
				}
			}
			if err := VerifyInclusion(ls[i], i, n, p, root); err != nil {
				t.Fatalf("size %d leaf %d: %v", n, i, err)
			}
			// Another leaf, another index, a altered proof: refused.
			if err := VerifyInclusion(ls[(i+1)%n], i, n, p, root); n > 1 && err == nil {
				t.Fatalf("size %d leaf %d: a wrong leaf verifies", n, i)
			}
			if n > 1 {
				if err := VerifyInclusion(ls[i], (i+1)%n, n, p, root); err == nil && (i+1)%n != i {
					t.Fatalf("size %d leaf %d: a wrong index verifies", n, i)
				}
				bad := append([][]byte{}, p...)
				bad[0] = LeafHash([]byte("forged"))
				if err := VerifyInclusion(ls[i], i, n, bad, root); err == nil {
					t.Fatalf("size %d leaf %d: an altered proof verifies", n, i)
				}
				if err := VerifyInclusion(ls[i], i, n, p[:len(p)-1], root); err == nil {
					t.Fatalf("size %d leaf %d: a truncated proof verifies", n, i)
				}
			}
		}
	}
}

func TestInclusionProofOutOfRange(t *testing.T) {
	if _, err := InclusionProof(leaves(3), 3); err == nil {
		t.Fatal("leaf 3 of 3 has a proof")
	}
	if err := VerifyInclusion(leaves(1)[0], 1, 1, nil, Root(leaves(1))); err == nil {
		t.Fatal("index outside the tree verifies")
	}
}
