package seda

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// WriteZip writes the transfer package to w: a ZIP holding manifest.xml
// (the ArchiveTransfer message, first) and each act's PDF at its FileName,
// in register order. PDFs are streamed from open, one at a time, never
// held whole in memory; while copying, each PDF's size and SHA-256 are
// checked against the act, and a mismatch is an error.
//
// Entries are deflated (not stored): streamed stored entries need a data
// descriptor, which some Java ZIP readers refuse.
//
// On error the ZIP is left unfinished (no central directory): what was
// written to w is not a readable archive and must be discarded.
func (t Transfer) WriteZip(w io.Writer, open func(a Act) (io.ReadCloser, error)) error {
	msg, err := t.Message()
	if err != nil {
		return err
	}
	acts, err := t.check()
	if err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	// Entries carry the message date, so the same transfer gives the same
	// bytes; ZIP (MS-DOS) dates start in 1980.
	mod := t.Date
	if epoch := time.Date(1980, time.January, 1, 0, 0, 0, 0, time.UTC); mod.Before(epoch) {
		mod = epoch
	}
	hw, err := zw.CreateHeader(&zip.FileHeader{Name: manifestName, Method: zip.Deflate, Modified: mod})
	if err != nil {
		return fmt.Errorf("seda: écriture du bordereau : %w", err)
	}
	if _, err := hw.Write(msg); err != nil {
		return fmt.Errorf("seda: écriture du bordereau : %w", err)
	}
	for _, a := range acts {
		if err := copyAct(zw, a, mod, open); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("seda: fin du ZIP : %w", err)
	}
	return nil
}

func copyAct(zw *zip.Writer, a Act, mod time.Time, open func(Act) (io.ReadCloser, error)) error {
	r, err := open(a)
	if err != nil {
		return fmt.Errorf("seda: acte %q : ouverture du PDF : %w", a.ActID, err)
	}
	defer r.Close()
	fw, err := zw.CreateHeader(&zip.FileHeader{Name: a.FileName, Method: zip.Deflate, Modified: mod})
	if err != nil {
		return fmt.Errorf("seda: acte %q : %w", a.ActID, err)
	}
	h := sha256.New()
	// Read at most one byte past the announced size to detect longer files
	// without copying them whole.
	n, err := io.Copy(io.MultiWriter(fw, h), io.LimitReader(r, a.Size+1))
	if err != nil {
		return fmt.Errorf("seda: acte %q : copie du PDF : %w", a.ActID, err)
	}
	if n != a.Size {
		if n > a.Size {
			return fmt.Errorf("seda: acte %q : le PDF dépasse la taille attendue de %d octets", a.ActID, a.Size)
		}
		return fmt.Errorf("seda: acte %q : le PDF fait %d octets, %d attendus", a.ActID, n, a.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.SealedSHA256 {
		return fmt.Errorf("seda: acte %q : empreinte SHA-256 du PDF %s différente de celle de l'acte scellé %s", a.ActID, got, a.SealedSHA256)
	}
	return nil
}
