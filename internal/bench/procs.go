package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on every
// Linux this runs on).
const clockTicks = 100

// procSample is one process as /proc shows it.
type procSample struct {
	name string // etatcivil, versitygw, postgres, registry-sim
	cmd  string
	cpu  float64 // seconds: utime+stime+cutime+cstime
	rss  int64   // bytes
}

// classify names the stack process a command line belongs to, "" if none.
func classify(cmdline []byte) string {
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	if len(args) == 0 {
		return ""
	}
	base := filepath.Base(string(args[0]))
	switch {
	case base == "etatcivil":
		return "etatcivil"
	case base == "versitygw", base == "registry-sim":
		return base
	case strings.HasPrefix(base, "postgres"), strings.HasPrefix(string(args[0]), "postgres:"):
		return "postgres"
	}
	return ""
}

// scan reads every stack process.
func scan() map[int]procSample {
	out := map[int]procSample{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		name := classify(cmdline)
		if name == "" {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name "(…)": state is field 3; utime,
		// stime, cutime, cstime are 14–17; rss (pages) is 24.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 22 {
			continue
		}
		num := func(k int) float64 { v, _ := strconv.ParseFloat(f[k-3], 64); return v }
		s := procSample{name: name, cmd: strings.ReplaceAll(string(bytes.TrimRight(cmdline, "\x00")), "\x00", " "),
			cpu: (num(14) + num(15) + num(16) + num(17)) / clockTicks, rss: int64(num(24)) * int64(os.Getpagesize())}
		out[pid] = s
	}
	return out
}

// watcher samples the stack's processes: peak RSS per process, CPU
// seconds spent between start and stop (processes that appear count from
// zero).
type watcher struct {
	mu    sync.Mutex
	start map[int]procSample
	last  map[int]procSample
	peak  map[int]procSample
	stop  chan struct{}
	done  chan struct{}
}

func watch(every time.Duration) *watcher {
	w := &watcher{start: scan(), last: map[int]procSample{}, peak: map[int]procSample{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s := scan()
			w.mu.Lock()
			for pid, p := range s {
				if p.rss > w.peak[pid].rss {
					w.peak[pid] = p
				}
				w.last[pid] = p
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// usage is what a watcher measured.
type usage struct {
	CPU     map[string]float64 // seconds per process name
	PeakRSS map[string]int64   // largest single process per name
	PeakCmd map[string]string
}

func (w *watcher) finish() usage {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	u := usage{CPU: map[string]float64{}, PeakRSS: map[string]int64{}, PeakCmd: map[string]string{}}
	for pid, p := range w.last {
		u.CPU[p.name] += p.cpu - w.start[pid].cpu
	}
	for _, p := range w.peak {
		if p.rss > u.PeakRSS[p.name] {
			u.PeakRSS[p.name], u.PeakCmd[p.name] = p.rss, p.cmd
		}
	}
	return u
}
