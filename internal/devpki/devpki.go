// Package devpki holds what the development PKIs (seal.DevCA, tsa.DevTSA)
// share: files written whole or not at all.
package devpki

import (
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to path with mode: into a temporary file of
// the same directory, then renamed over path, so a reader (or a crash)
// never sees a partial file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
