package pdfcheck

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// sysProcAttr makes the child die with its parent, so a crashed server
// leaves no checker behind.
func sysProcAttr() *syscall.SysProcAttr {
	// Its own process group: a Ctrl-C or a SIGTERM sent to the server's
	// group must not kill a check half-way (that would read as a resource
	// limit); the server cancels its checks itself when it stops, and
	// Pdeathsig kills a child whose server died.
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// residentBytes returns the resident set size of process pid.
func residentBytes(pid int) (int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}

// limitAddressSpace caps the growth of this process's address space at
// mem bytes with RLIMIT_AS. The cap is relative to what the Go runtime has
// already reserved at startup, which is mostly address space, not memory.
// The race detector maps terabytes of shadow memory, so race-enabled
// builds (tests) rely on the parent's resident-size watch instead.
func limitAddressSpace(mem int64) {
	if raceEnabled {
		return
	}
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return
	}
	f := bytes.Fields(b)
	if len(f) < 1 {
		return
	}
	pages, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return
	}
	limit := uint64(pages*int64(os.Getpagesize()) + mem)
	_ = syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: limit, Max: limit})
}
