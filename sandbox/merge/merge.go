// Package merge puts the sandbox parameters into the main docker-compose.yml
// (milestone 6) with a safety net: an automated checklist and a rollback that
// restores the old file byte for byte in well under a second.
//
// The model:
//
//   - Apply tags HEAD as the rollback point (sandbox-merge/pre-<UTC time>),
//     backs up the current docker-compose.yml into .ktrdr-merge/ with its
//     SHA-256, writes the merged file atomically, runs Verify, and rolls back
//     by itself if any checklist item fails.
//   - Verify loads the compose files with compose-go and an explicit variable
//     map (never the process environment) and checks that the merged file with
//     no variables is the standard slot-0 stack, that nothing the old file
//     offered disappeared, that every host port follows the slot rules, that
//     no service pins a container_name, and that the services match
//     docker-compose.sandbox.yml.
//   - Rollback restores the backup (or, if the backup is gone, the file at the
//     rollback tag), checks the SHA-256, and records that it rolled back. It
//     runs no compose and no docker, deletes nothing, and keeps the tag.
//
// Backup layout, in the checkout root (ignored by git through its own
// .gitignore, and by the repository's /.ktrdr-merge/ entry):
//
//	.ktrdr-merge/.gitignore                   "*"
//	.ktrdr-merge/docker-compose.yml.pre-merge the pre-merge file, byte for byte
//	.ktrdr-merge/state.json                   {"version":1,"tag":…,"sha256":…,"created_at":…,…}
package merge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// Names of the backup folder and its files, relative to the checkout root.
const (
	StateDir   = ".ktrdr-merge"
	BackupName = "docker-compose.yml.pre-merge"
	StateName  = "state.json"
	TagPrefix  = "sandbox-merge/pre-"
)

// ErrMergeApplied means a merge is in place and has not been rolled back.
var ErrMergeApplied = errors.New("a merge is already applied")

// Options are shared by Apply, Verify and Rollback. The zero value works in
// the current directory with the ktrdr profile and the real git.
type Options struct {
	Dir     string           // checkout root; "" means the current directory
	Profile *sandbox.Profile // nil means sandbox.KTRDR()
	Runner  sandbox.Runner   // runs git; nil means sandbox.ExecRunner{}
	From    string           // Apply: the merged source; "" means <Dir>/<Profile.SandboxCompose>
	// Live, if set, is one more Verify item: the caller brings the main stack
	// up on the standard ports, checks it and brings it down.
	Live func(ctx context.Context) error
	Now  func() time.Time // nil means time.Now
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return o, fmt.Errorf("find the checkout root: %w", err)
		}
		o.Dir = wd
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return o, fmt.Errorf("resolve %s: %w", o.Dir, err)
	}
	o.Dir = abs
	if o.Profile == nil {
		o.Profile = sandbox.KTRDR()
	}
	if o.Runner == nil {
		o.Runner = sandbox.ExecRunner{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

func (o Options) mainPath() string    { return filepath.Join(o.Dir, o.Profile.MainCompose) }
func (o Options) sandboxPath() string { return filepath.Join(o.Dir, o.Profile.SandboxCompose) }
func (o Options) stateDir() string    { return filepath.Join(o.Dir, StateDir) }
func (o Options) backupPath() string  { return filepath.Join(o.Dir, StateDir, BackupName) }
func (o Options) statePath() string   { return filepath.Join(o.Dir, StateDir, StateName) }

// State is the content of .ktrdr-merge/state.json.
type State struct {
	Version      int    `json:"version"`
	Tag          string `json:"tag"`                      // the rollback point
	SHA256       string `json:"sha256"`                   // of the pre-merge docker-compose.yml
	CreatedAt    string `json:"created_at"`               // RFC 3339 UTC, when Apply ran
	Source       string `json:"source"`                   // the merged source file
	MergedSHA256 string `json:"merged_sha256,omitempty"`  // of the file Apply wrote
	RolledBackAt string `json:"rolled_back_at,omitempty"` // set by Rollback
}

// readState returns the state, or nil if there is none.
func readState(o Options) (*State, error) {
	b, err := os.ReadFile(o.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read merge state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("merge state %s does not parse (fix or move it by hand): %w", o.statePath(), err)
	}
	if s.SHA256 == "" {
		return nil, fmt.Errorf("merge state %s has no sha256", o.statePath())
	}
	return &s, nil
}

func writeState(o Options, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode merge state: %w", err)
	}
	return writeFileAtomic(o.statePath(), append(b, '\n'), 0o644)
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// writeFileAtomic writes data to path through a temporary file in the same
// folder: write, fsync, rename, fsync the folder. A reader sees the old file
// or the new one, never a part.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// fileMode returns the permission bits of path, or def if it does not exist.
func fileMode(path string, def fs.FileMode) fs.FileMode {
	if fi, err := os.Stat(path); err == nil {
		return fi.Mode().Perm()
	}
	return def
}
