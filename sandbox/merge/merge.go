// Package merge puts the sandbox parameters into the main docker-compose.yml
// (milestone 6) with a safety net: an automated checklist that refuses a
// merged file which would change how the main stack runs, and a rollback
// that restores the old file byte for byte in well under a second.
//
// The model:
//
//   - Apply builds the merged file (a header, then Options.From, by default
//     docker-compose.sandbox.yml) and runs the checklist on it before it
//     changes anything. A refused merge leaves nothing behind: no tag, no
//     backup, no state, the main file as it was. Only a merged file that
//     passes is written: Apply tags HEAD as the rollback point
//     (sandbox-merge/pre-<UTC time>), backs up the current file with its
//     SHA-256, records the merge state and writes the merged file atomically.
//   - Backward compatible means the same main stack as the main checkout
//     runs it: both files are loaded with every profile active (a service
//     behind a profile runs as soon as someone enables it), interpolated
//     with the checkout's .env overridden by the environment Apply runs in
//     (Options.Environ), as docker compose gives the environment precedence,
//     and the project name compose derives from the folder (unless the file
//     sets name:). The merged file must resolve to the same services, every
//     one and field by field (image, build, command, entrypoint,
//     environment, env_file, healthcheck, depends_on, profiles, ports,
//     mounts, networks, restart, user, working_dir, extra_hosts, labels
//     other than the suite's own instance label, and every other key of the
//     service), the same project name, and the same top-level volumes,
//     networks, secrets and configs as the pre-merge file. A change is
//     allowed only if it is accepted by name (Options.Accept:
//     <service>.<field>, *.<field>, or a top-level key); the merge state
//     records what was accepted. The report lists every variable the merged
//     file reads that the pre-merge file did not, and whether .env or the
//     environment sets it (Report.NewVariables).
//   - The other items: with no variables the file publishes the slot-0 ports
//     of the checkout's own stack model (Profile.ForStack of its sandbox
//     compose file, else of the merged file: its port variables and their
//     defaults, not a compiled-in list of services) and mounts ./data,
//     ./models, ./strategies; every host port and shared mount follows the
//     slot variables; no container_name; the same services as the merge
//     source. These loads use an explicit variable map (never the process
//     environment). Every compose file goes through one function, load.
//   - Rollback restores the backup (or, if that is gone or damaged, the file
//     at the rollback tag), checks the SHA-256, records that it rolled back
//     and removes the backup, which it no longer needs. It runs no compose
//     and no docker, keeps the tag and the state, and does nothing the
//     second time.
//
// The merge state of a checkout lives outside it, where no branch can
// redirect it (a committed .ktrdr-merge link once could):
//
//	~/.ktrdr/sandbox/merge/<folder>-<12 hex of sha256 of the git dir>/
//	    state.json                        {"version":2,"tag":…,"sha256":…,"accept":[…],"accepted":[…],…}
//	    docker-compose.yml.pre-merge      the pre-merge file, byte for byte (until rolled back)
//	    docker-compose.yml.post-merge-<t> edits made to the merged file, saved by a rollback
//	~/.ktrdr/sandbox/merge/<folder>-<hex>.lock
//
// The git dir is the repository's common dir for the main checkout and the
// worktree's own for a worktree, so each checkout has its own state. Older
// versions kept the state in <checkout>/.ktrdr-merge/; Rollback and Verify
// still read it there (only a real folder, never a link) and never write
// into it.
//
// If docker-compose.yml is a symbolic link to a file inside the checkout,
// the merged content goes to that file and the link stays a link; a link
// that leaves the checkout is refused.
package merge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// Names of the state files, and of the folder in the checkout where older
// versions kept them.
const (
	StateDir   = ".ktrdr-merge" // <checkout>/.ktrdr-merge: read, never written
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
	Runner  driver.Runner    // runs git; nil means sandbox.ExecRunner{}
	Home    string           // holds the merge state (see the package doc); "" means the user's home
	From    string           // the merge source; "" means <Dir>/<Profile.SandboxCompose> (Verify: the one the merge state names)
	// Accept lists the differences to the pre-merge stack that are intended
	// (see ParseAccept). Each entry must match a difference.
	Accept []string
	// Live, if set, is one more Verify item: the caller brings the main stack
	// up on the standard ports, checks it and brings it down.
	Live func(ctx context.Context) error
	Now  func() time.Time // nil means time.Now
	// Environ is the environment docker compose in the main checkout would
	// run in ("KEY=value" entries, as os.Environ): with the checkout's .env
	// under it, it interpolates both files the compatibility item compares.
	// nil means os.Environ().
	Environ []string
}

func (opts Options) withDefaults() (Options, error) {
	o := opts
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
	if o.From != "" {
		if o.From, err = filepath.Abs(o.From); err != nil {
			return o, fmt.Errorf("resolve the merge source %s: %w", opts.From, err)
		}
	}
	if o.Home == "" {
		if o.Home, err = os.UserHomeDir(); err != nil {
			return o, fmt.Errorf("find the home folder, which holds the merge state: %w", err)
		}
	}
	if o.Profile == nil {
		o.Profile = sandbox.KTRDR()
	}
	if o.Runner == nil {
		o.Runner = driver.ExecRunner{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Environ == nil {
		o.Environ = os.Environ()
	}
	return o, nil
}

func (o Options) mainPath() string    { return filepath.Join(o.Dir, o.Profile.MainCompose) }
func (o Options) sandboxPath() string { return filepath.Join(o.Dir, o.Profile.SandboxCompose) }

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
