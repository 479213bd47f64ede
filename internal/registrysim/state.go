package registrysim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// snapshot is what a registry remembers across a restart: what it
// accepted under which key (so that a resend after the restart is still
// a resend, and a duplicate still a double acceptance), its replies, its
// counters and messages. Faults are not kept: a restarted simulator takes
// those of its flags.
type snapshot struct {
	Stats    Stats             `json:"stats"`
	Per      map[string]*Stats `json:"per"`
	Keys     map[string]string `json:"keys"`
	Content  map[string]string `json:"content"`
	Replies  map[string][]byte `json:"replies"`
	Seq      int               `json:"seq"`
	Messages []Message         `json:"messages"`
}

// Save writes the simulator's memory to path, atomically (a temporary
// file renamed over it): a crash mid-write leaves the previous state.
func (s *Sim) Save(path string) error {
	s.mu.Lock()
	data, err := json.Marshal(snapshot{Stats: s.stats, Per: s.per, Keys: s.keys, Content: s.content, Replies: s.replies,
		Seq: s.seq, Messages: s.messages})
	s.mu.Unlock()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".registry-sim-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Load returns a simulator with the memory saved at path, or a new one if
// there is no such file.
func Load(path string) (*Sim, error) {
	s := New()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return nil, fmt.Errorf("état du simulateur %s illisible : %w", path, err)
	}
	s.stats, s.seq, s.messages = snap.Stats, snap.Seq, snap.Messages
	if snap.Per != nil {
		s.per = snap.Per
	}
	if snap.Keys != nil {
		s.keys = snap.Keys
	}
	if snap.Content != nil {
		s.content = snap.Content
	}
	if snap.Replies != nil {
		s.replies = snap.Replies
	}
	return s, nil
}

// SetFaults puts faults in force, as POST /_sim/faults does.
func (s *Sim) SetFaults(f Faults) error {
	if f.ErrorRate < 0 || f.ErrorRate > 1 || f.DropRate < 0 || f.DropRate > 1 || f.LostAckRate < 0 || f.LostAckRate > 1 ||
		f.RefuseRate < 0 || f.RefuseRate > 1 || f.LatencyMsMax < 0 {
		return errors.New("taux entre 0 et 1, latence positive")
	}
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
	return nil
}
