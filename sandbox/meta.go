package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// Phases of an instance whose creation or removal has not finished. They
// are written before git or compose acts, so that a run killed half-way
// (kill -9, a power cut) leaves a record of what it may have made, and a
// later destroy -force can remove exactly that.
const (
	phaseCreating   = "creating"   // create may have made the worktree and the branch
	phaseDestroying = "destroying" // destroy proved the folder is this instance's and began removing it
)

// meta is what the manager remembers about an instance beyond the registry,
// in instances/<id>/meta.json.
type meta struct {
	Branch        string `json:"branch,omitempty"`
	BranchCreated bool   `json:"branch_created,omitempty"`
	Head          string `json:"head,omitempty"`  // the commit a created branch was made at (while creating)
	Phase         string `json:"phase,omitempty"` // "" once create finished; see phaseCreating, phaseDestroying
	// FolderMade is set once create made the worktree's folder itself
	// (an atomic mkdir, before git fills it): the folder is then this
	// instance's to remove if the create never finishes.
	FolderMade bool `json:"folder_made,omitempty"`
	// Services is how many services the stack had when up last started it
	// (list reports "running" or "partial n/Services" without reading the file).
	Services int `json:"services,omitempty"`
}

func (m *Manager) readMeta(id string) meta {
	var mt meta
	dir, ok := m.keptDir(id)
	if !ok {
		return mt
	}
	if data, err := readOwnFile(filepath.Join(dir, "meta.json"), MaxCheckoutFile); err == nil {
		_ = json.Unmarshal(data, &mt)
	}
	return mt
}

// writeMeta records mt for id, creating the instance folder if needed
// (never through a symlink).
// metaTime is when the record of id was last written (zero: no record).
func (m *Manager) metaTime(id string) time.Time {
	fi, err := os.Lstat(filepath.Join(m.instanceDir(id), "meta.json"))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

func (m *Manager) writeMeta(id string, mt meta) error {
	dir, err := m.ownInstanceDir(id)
	if err != nil {
		return err
	}
	data, _ := json.MarshalIndent(mt, "", "  ")
	return WriteFileAtomic(filepath.Join(dir, "meta.json"), append(data, '\n'), 0o644)
}

// workLock is held by a create or destroy of one instance for as long as it
// runs. The kernel releases it when the process dies, so a phase recorded
// in meta.json whose lock is free belongs to a run that was killed.
type workLock struct{ fl *flock.Flock }

func (m *Manager) workLockPath(id string) string {
	return filepath.Join(m.Profile.StateDir(m.Home), "locks", id+".lock")
}

// lockWork takes id's work lock, waiting up to LockWait for another create
// or destroy of the same instance.
func (m *Manager) lockWork(ctx context.Context, id string) (*workLock, error) {
	path := m.workLockPath(id)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create lock folder %s: %w", filepath.Dir(path), err)
	}
	fl := flock.New(path)
	wctx, cancel := context.WithTimeout(ctx, LockWait)
	defer cancel()
	ok, err := fl.TryLockContext(wctx, 20*time.Millisecond)
	if err != nil || !ok {
		if ctx.Err() == nil && wctx.Err() != nil {
			return nil, fmt.Errorf("lock %s: another create or destroy of %s has run for over %s; try again when it ends", path, id, LockWait)
		}
		return nil, fmt.Errorf("lock %s: %w", path, errors.Join(err, ctx.Err()))
	}
	return &workLock{fl: fl}, nil
}

func (l *workLock) unlock() {
	if l != nil {
		l.fl.Unlock()
	}
}

// interrupted returns the phase of a create or destroy of id that was
// killed half-way: one recorded while nobody holds id's work lock.
func (m *Manager) interrupted(id string) string {
	phase := m.readMeta(id).Phase
	if phase == "" {
		return ""
	}
	path := m.workLockPath(id)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return phase // no run ever took it
	}
	fl := flock.New(path)
	if ok, err := fl.TryLock(); err != nil || !ok {
		return "" // still running
	}
	fl.Unlock()
	return phase
}
