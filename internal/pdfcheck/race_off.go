//go:build !race

package pdfcheck

// raceEnabled reports a race-detector build, whose shadow memory rules
// out RLIMIT_AS.
const raceEnabled = false
