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
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
)

// State is the content of state.json.
type State struct {
	Version      int      `json:"version"`
	Tag          string   `json:"tag"`                      // the rollback point
	SHA256       string   `json:"sha256"`                   // of the pre-merge main compose file
	CreatedAt    string   `json:"created_at"`               // RFC 3339 UTC, when Apply ran
	Source       string   `json:"source"`                   // the merged source file
	MergedSHA256 string   `json:"merged_sha256,omitempty"`  // of the file Apply wrote
	RolledBackAt string   `json:"rolled_back_at,omitempty"` // set by Rollback
	Checkout     string   `json:"checkout,omitempty"`       // the checkout root the merge is for
	File         string   `json:"file,omitempty"`           // the file written, relative to the checkout (the link's target if the main file is a link)
	Accept       []string `json:"accept,omitempty"`         // the -accept entries given to Apply
	Accepted     []string `json:"accepted,omitempty"`       // the differences they accepted, old → new
}

// StateVersion is the version Apply writes; Rollback also reads version 1,
// the format of .ktrdr-merge/state.json in the checkout.
const StateVersion = 2

// store is where the merge state of one checkout lives.
type store struct {
	Dir    string // <home>/.ktrdr/sandbox/merge/<key>: written only by this package
	Legacy string // <checkout>/.ktrdr-merge: where older versions kept it; only read
}

func (s store) statePath() string  { return filepath.Join(s.Dir, StateName) }
func (s store) backupPath() string { return filepath.Join(s.Dir, BackupName) }

// locateStore finds the state folder of the checkout: under the suite's
// state folder in HOME, named after the checkout's git dir (the
// repository's common dir for the main checkout, its own for a worktree),
// so that nothing a branch commits can move it.
func locateStore(ctx context.Context, o Options) (store, error) {
	s := store{Legacy: filepath.Join(o.Dir, StateDir)}
	out, err := git(ctx, o, "rev-parse", "--absolute-git-dir")
	if err != nil {
		return s, fmt.Errorf("find the git dir of %s (the merge state is named after it): %w", o.Dir, err)
	}
	gitDir := strings.TrimSpace(string(out))
	if real, err := filepath.EvalSymlinks(gitDir); err == nil {
		gitDir = real
	}
	h := sha256.Sum256([]byte(gitDir))
	name := strings.Trim(filepath.Base(o.Dir), ".")
	if name == "" {
		name = "checkout"
	}
	s.Dir = filepath.Join(o.Profile.StateDir(o.Home), "merge", name+"-"+hex.EncodeToString(h[:6]))
	return s, nil
}

// loaded is a state and where it was read from.
type loaded struct {
	*State
	Path   string // the state file
	Backup string // the backup beside it
	Legacy bool   // read from <checkout>/.ktrdr-merge
}

// readState returns the checkout's merge state, or nil if there is none: the
// one under HOME, else one an older version left in <checkout>/.ktrdr-merge.
// That folder is read only if it is a real folder (a branch can commit a
// link by that name), and nothing is ever written there.
func readState(s store) (*loaded, error) {
	st, err := readStateFile(s.statePath())
	if err != nil {
		return nil, err
	}
	if st != nil {
		return &loaded{State: st, Path: s.statePath(), Backup: s.backupPath()}, nil
	}
	fi, err := os.Lstat(s.Legacy)
	if err != nil || !fi.IsDir() {
		return nil, nil // absent, or a link or a file: not ours
	}
	path := filepath.Join(s.Legacy, StateName)
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		return nil, nil
	}
	st, err = readStateFile(path)
	if err != nil || st == nil {
		return nil, err
	}
	return &loaded{State: st, Path: path, Backup: filepath.Join(s.Legacy, BackupName), Legacy: true}, nil
}

func readStateFile(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read merge state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("merge state %s does not parse (fix or move it by hand): %w", path, err)
	}
	if st.SHA256 == "" {
		return nil, fmt.Errorf("merge state %s has no sha256", path)
	}
	return &st, nil
}

// active reports whether l is a merge that is in place.
func (l *loaded) active() bool { return l != nil && l.State != nil && l.RolledBackAt == "" }

// prepare creates the state folder if needed and checks that it and its
// parent are real folders owned by this user that nobody else can write,
// before anything is written into them.
func (s store) prepare() error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("create the merge state folder %s: %w", s.Dir, err)
	}
	for _, d := range []string{filepath.Dir(s.Dir), s.Dir} {
		if err := ownedFolder(d); err != nil {
			return err
		}
	}
	return nil
}

func ownedFolder(d string) error {
	fi, err := os.Lstat(d)
	if err != nil {
		return fmt.Errorf("check the merge state folder %s: %w", d, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("merge state folder %s is not a folder (mode %s): refusing to write into it", d, fi.Mode())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("merge state folder %s can be written by others (mode %s): refusing to write into it", d, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("merge state folder %s belongs to uid %d, not to you (%d): refusing to write into it", d, st.Uid, os.Geteuid())
	}
	return nil
}

func encodeState(st *State) ([]byte, error) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode merge state: %w", err)
	}
	return append(b, '\n'), nil
}

// write records st as the checkout's merge state.
func (s store) write(st *State) error {
	b, err := encodeState(st)
	if err != nil {
		return err
	}
	if err := s.prepare(); err != nil {
		return err
	}
	return writeFileAtomic(s.statePath(), b, 0o600)
}

// LockWait is how long Apply and Rollback wait for another one's lock on
// the same checkout.
var LockWait = time.Minute

// lock takes the checkout's merge lock (<state folder>.lock), so that two
// merges or rollbacks of one checkout never interleave.
func (s store) lock(ctx context.Context) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(s.Dir), 0o700); err != nil {
		return nil, fmt.Errorf("create the merge state folder %s: %w", filepath.Dir(s.Dir), err)
	}
	if err := ownedFolder(filepath.Dir(s.Dir)); err != nil {
		return nil, err
	}
	fl := flock.New(s.Dir + ".lock")
	wctx, cancel := context.WithTimeout(ctx, LockWait)
	defer cancel()
	ok, err := fl.TryLockContext(wctx, 10*time.Millisecond)
	if err != nil || !ok {
		if ctx.Err() == nil && wctx.Err() != nil {
			return nil, fmt.Errorf("lock %s.lock: another merge or rollback of this checkout has held it for over %s", s.Dir, LockWait)
		}
		return nil, fmt.Errorf("lock %s.lock: %w", s.Dir, errors.Join(err, ctx.Err()))
	}
	return func() { fl.Unlock() }, nil
}
