//go:build !linux

package pdfcheck

import "syscall"

// sysProcAttr has nothing to add outside Linux.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// residentBytes is unknown outside Linux: only the timeout and the Go
// runtime's soft limit bound the child there.
func residentBytes(int) (int64, bool) { return 0, false }

// limitAddressSpace is a no-op outside Linux.
func limitAddressSpace(int64) {}
