package pdfcheck

import (
	"fmt"

	pdfmodel "github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"

	"github.com/etatcivil/etatcivil/internal/model"
)

// maxPageTreeDepth bounds how deep the page tree may nest. A balanced tree
// of a million pages is about ten levels deep; a scanner writes two.
const maxPageTreeDepth = 64

// badPageTree is the rejection of a page tree that does not hold up.
func badPageTree(detail string) error {
	return model.Reject(model.ReasonPDFMalformed, "(arbre des pages incohérent : "+detail+")")
}

// countPages walks the page tree of x as the file has it, before pdfcpu's
// relaxed validation gets to repair it (it turns a kid that does not exist
// into a blank page, for one), and returns the number of its leaves. Every
// node must be an indirect reference to a dictionary of /Type /Pages or
// /Page, no object may appear twice (a page listed twice, or a cycle),
// the depth is bounded, and the root's /Count must equal the leaves found.
// The work is bounded by the number of objects: each is visited once.
func countPages(x *pdfmodel.XRefTable) (int, error) {
	root, err := x.Pages()
	if err != nil || root == nil {
		return 0, badPageTree("racine absente")
	}
	rootDict, err := x.DereferenceDict(*root)
	if err != nil || rootDict == nil {
		return 0, badPageTree("racine introuvable")
	}
	if t := rootDict.Type(); t == nil || *t != "Pages" {
		return 0, badPageTree("la racine n'est pas un nœud /Pages")
	}
	countObj, _ := rootDict.Find("Count")
	count, err := x.DereferenceInteger(countObj)
	if err != nil || count == nil {
		return 0, badPageTree("/Count absent")
	}

	type node struct {
		d     types.Dict
		depth int
	}
	visited := map[int]bool{root.ObjectNumber.Value(): true}
	stack := []node{{rootDict, 0}}
	leaves := 0
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.depth >= maxPageTreeDepth {
			return 0, badPageTree("trop profond")
		}
		kidsObj, found := n.d.Find("Kids")
		if !found {
			return 0, badPageTree("/Kids absent")
		}
		kids, err := x.DereferenceArray(kidsObj)
		if err != nil {
			return 0, badPageTree("/Kids n'est pas un tableau")
		}
		// Push in reverse so that pages come off the stack in order
		// (the order does not matter for counting, but it keeps any
		// future use honest).
		for i := len(kids) - 1; i >= 0; i-- {
			ir, ok := kids[i].(types.IndirectRef)
			if !ok {
				return 0, badPageTree("élément de /Kids qui n'est pas une référence")
			}
			num := ir.ObjectNumber.Value()
			if visited[num] {
				return 0, badPageTree(fmt.Sprintf("objet %d présent deux fois", num))
			}
			visited[num] = true
			if e, ok := x.Find(num); !ok || e == nil || e.Free {
				return 0, badPageTree(fmt.Sprintf("objet %d absent", num))
			}
			kd, err := x.DereferenceDict(ir)
			if err != nil || kd == nil {
				return 0, badPageTree(fmt.Sprintf("objet %d absent ou pas un dictionnaire", num))
			}
			t := kd.Type()
			switch {
			case t != nil && *t == "Page":
				leaves++
			case t != nil && *t == "Pages":
				stack = append(stack, node{kd, n.depth + 1})
			default:
				return 0, badPageTree(fmt.Sprintf("objet %d n'est ni /Page ni /Pages", num))
			}
		}
	}
	if leaves != count.Value() {
		return 0, badPageTree(fmt.Sprintf("/Count %d pour %d pages", count.Value(), leaves))
	}
	return leaves, nil
}
