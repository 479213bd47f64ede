// Package merkle is the Merkle tree of RFC 9162 (Certificate Transparency
// 2.0), section 2.1: leaf hashes SHA-256(0x00 || data), interior nodes
// SHA-256(0x01 || left || right), the left subtree of n leaves holding the
// largest power of two below n. The audit checkpoints are roots of such
// trees over event digests; an export carries inclusion proofs that an
// auditor checks against a sealed checkpoint without any database.
package merkle

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
)

// LeafHash is the hash of one leaf's data.
func LeafHash(data []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	return h.Sum(nil)
}

func nodeHash(l, r []byte) []byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(l)
	h.Write(r)
	return h.Sum(nil)
}

// split is the largest power of two strictly below n (n > 1).
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// Root is the tree head of the leaves' hashes (LeafHash of each datum);
// the empty tree's is SHA-256 of nothing.
func Root(leaves [][]byte) []byte {
	switch len(leaves) {
	case 0:
		s := sha256.Sum256(nil)
		return s[:]
	case 1:
		return leaves[0]
	}
	k := split(len(leaves))
	return nodeHash(Root(leaves[:k]), Root(leaves[k:]))
}

// InclusionProof is the audit path of leaf index in the tree of leaves
// (RFC 9162, 2.1.3.1), from the leaf's sibling up.
func InclusionProof(leaves [][]byte, index int) ([][]byte, error) {
	if index < 0 || index >= len(leaves) {
		return nil, fmt.Errorf("merkle: leaf %d outside a tree of %d", index, len(leaves))
	}
	return path(leaves, index), nil
}

func path(leaves [][]byte, m int) [][]byte {
	if len(leaves) <= 1 {
		return nil
	}
	k := split(len(leaves))
	if m < k {
		return append(path(leaves[:k], m), Root(leaves[k:]))
	}
	return append(path(leaves[k:], m-k), Root(leaves[:k]))
}

// ErrProof: an inclusion proof does not lead to the expected root.
var ErrProof = errors.New("merkle: inclusion proof does not match the root")

// VerifyInclusion checks that leafHash is leaf index of a tree of size
// leaves whose root is root, by the algorithm of RFC 9162, 2.1.3.2.
func VerifyInclusion(leafHash []byte, index, size int, proof [][]byte, root []byte) error {
	if index < 0 || index >= size {
		return fmt.Errorf("%w: leaf %d outside a tree of %d", ErrProof, index, size)
	}
	fn, sn := index, size-1
	r := leafHash
	for _, p := range proof {
		if sn == 0 {
			return fmt.Errorf("%w: proof too long", ErrProof)
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("%w: proof too short", ErrProof)
	}
	if !bytes.Equal(r, root) {
		return ErrProof
	}
	return nil
}

// Tree gives many inclusion proofs of one tree, each subtree's hash
// computed once (an export proves thousands of events of a checkpoint).
type Tree struct {
	leaves [][]byte
	memo   map[[2]int][]byte
}

// NewTree is the tree of the leaves' hashes.
func NewTree(leaves [][]byte) *Tree { return &Tree{leaves: leaves, memo: map[[2]int][]byte{}} }

// Root is the tree head.
func (t *Tree) Root() []byte { return t.root(0, len(t.leaves)) }

func (t *Tree) root(lo, hi int) []byte {
	switch hi - lo {
	case 0:
		return Root(nil)
	case 1:
		return t.leaves[lo]
	}
	if h, ok := t.memo[[2]int{lo, hi}]; ok {
		return h
	}
	k := split(hi - lo)
	h := nodeHash(t.root(lo, lo+k), t.root(lo+k, hi))
	t.memo[[2]int{lo, hi}] = h
	return h
}

// Proof is InclusionProof(leaves, index).
func (t *Tree) Proof(index int) ([][]byte, error) {
	if index < 0 || index >= len(t.leaves) {
		return nil, fmt.Errorf("merkle: leaf %d outside a tree of %d", index, len(t.leaves))
	}
	var proof [][]byte
	lo, hi := 0, len(t.leaves)
	for hi-lo > 1 {
		k := split(hi - lo)
		if index < lo+k {
			proof = append(proof, t.root(lo+k, hi))
			hi = lo + k
		} else {
			proof = append(proof, t.root(lo, lo+k))
			lo += k
		}
	}
	// Collected from the root down; the audit path goes up.
	for i, j := 0, len(proof)-1; i < j; i, j = i+1, j-1 {
		proof[i], proof[j] = proof[j], proof[i]
	}
	return proof, nil
}
