package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/composefile"
	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/ktrdr/sandboxkit/sandbox/envfile"
)

// Manager carries out the sandbox lifecycle for one user: create, init,
// up, down, destroy, list, status. It holds the seams (Runner, clock) and
// writes one short line per step to Out.
type Manager struct {
	Profile *Profile
	Home    string           // the user's home: the registry lives under it
	Runner  driver.Runner    // docker, compose and git
	Events  func(Event)      // the steps of long operations as they happen; nil: not reported
	Log     io.Writer        // output of the tools it runs for a person to read (image builds); nil: discarded
	Now     func() time.Time // the clock for CREATED_AT
	Subnets SubnetSettings   // the pool the sandboxes' networks get their subnets from (subnets.go)
	// MinFreeMemory is the memory (bytes) up keeps free on an engine: it
	// refuses to start a stack that would leave less (budget.go). 0 turns
	// the check off; NewManager sets DefaultMinFreeMemory.
	MinFreeMemory int64
	// AllowSync lists folders outside the checkout and the shared root that
	// a sandbox on another engine may still send there (outside.go): each
	// exactly, not what lies below it. config.json's allow_sync.
	AllowSync []string
	// Hooks are the user's steps after start (config.json; hooks.go).
	Hooks []HookSpec
	// SecretsCommand is config.json's secrets_command: an argument list,
	// run without a shell, that prints the stack's secrets (secrets.go).
	SecretsCommand []string
	lazySecrets    *lazySecrets // the teardown commands' secrets, shared by on's copies

	engine Engine        // the engine Runner's docker calls go to (see on)
	base   driver.Runner // the runner without a context (nil: Runner)

	startProbe time.Duration // how often a dependency's healthcheck runs during a start (0: startProbeEvery)

	composeOnce sync.Once
	compose     *driver.Compose
	composeErr  error
}

// NewManager returns a Manager for the ktrdr profile with the real runner.
func NewManager(home string) *Manager {
	return &Manager{Profile: KTRDR(), Home: home, Runner: driver.ExecRunner{}, Now: time.Now, MinFreeMemory: DefaultMinFreeMemory, lazySecrets: &lazySecrets{}}
}

// log is where the output of the tools the manager runs goes.
func (m *Manager) log() io.Writer {
	if m.Log == nil {
		return io.Discard
	}
	return m.Log
}

// Registry returns the manager's registry.
func (m *Manager) Registry() *Registry {
	r := m.Profile.OpenRegistry(m.Home)
	r.Now = m.Now
	return r
}

// Compose returns the detected Compose v2 CLI.
func (m *Manager) Compose(ctx context.Context) (*driver.Compose, error) {
	m.composeOnce.Do(func() {
		m.compose, m.composeErr = driver.DetectCompose(ctx, m.Runner)
		if m.compose != nil {
			m.compose.Scrub = m.Profile.EnvPrefix
		}
	})
	return m.compose, m.composeErr
}

// instanceDir keeps what teardown needs outside the checkout:
// <state>/instances/<id>. Only its path: writers use ownInstanceDir, which
// refuses symlinks, and removers removeInstanceDir.
func (m *Manager) instanceDir(id string) string {
	return filepath.Join(m.Profile.StateDir(m.Home), "instances", id)
}

// ownInstanceDir returns instanceDir(id), creating it; it refuses an id that
// is not one folder name and an instances or <id> folder that is a symlink
// or a file (*UnsafePathError), so that nothing is written through them.
func (m *Manager) ownInstanceDir(id string) (string, error) {
	return ownDir(m.Profile.StateDir(m.Home), "instances", id)
}

// removeInstanceDir removes instanceDir(id) and what it holds, never through
// a symlink: an <id> that is a symlink is removed itself, an instances
// folder that is one is refused. A missing folder is not an error.
func (m *Manager) removeInstanceDir(id string) error {
	return removeOwnDir(m.Profile.StateDir(m.Home), "instances", id)
}

// keptDir returns instanceDir(id) when it exists and is a real folder.
func (m *Manager) keptDir(id string) (string, bool) {
	return ownDirExists(m.Profile.StateDir(m.Home), "instances", id)
}

// saveTeardownCopy keeps the env file, the compose file and meta of an
// instance outside its checkout. It reads only the checkout's own files
// (a symlink to outside it, a device or a file over MaxCheckoutFile is a
// *CheckoutFileError) and never gives a copy more permission than its
// source had.
func (m *Manager) saveTeardownCopy(id, root string, mt meta) error {
	type kept struct {
		name string
		data []byte
		perm fs.FileMode
	}
	var files []kept
	for _, name := range []string{m.Profile.EnvFile, m.Profile.SandboxCompose} {
		data, perm, err := readCheckoutFile(root, name, MaxCheckoutFile)
		if err != nil {
			return fmt.Errorf("keep a copy of %s: %w", name, err)
		}
		files = append(files, kept{name, data, perm & 0o644})
	}
	dir, err := m.ownInstanceDir(id)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	return m.writeMeta(id, mt)
}

// NotSandboxError reports a folder that is not inside a sandbox.
type NotSandboxError struct{ Dir string }

func (e *NotSandboxError) Error() string {
	return fmt.Sprintf("%s is not inside a sandbox (no .env.sandbox here or above)", e.Dir)
}

// located is a sandbox found from a folder.
type located struct {
	Root    string
	Env     Env
	Secrets *Secrets // the stack's secrets, when the command needs them (up)
}

// locate finds the sandbox that holds dir: the nearest env file above it.
func (m *Manager) locate(dir string) (located, error) {
	path, err := m.Profile.FindEnvFile(dir)
	if err != nil {
		return located{}, err
	}
	if path == "" {
		return located{}, &NotSandboxError{Dir: dir}
	}
	env, err := m.Profile.ReadEnv(path)
	if err != nil {
		return located{}, err
	}
	root := filepath.Dir(path)
	// Compose will read the compose files and what they name: only the
	// checkout's own.
	if _, err := os.Lstat(filepath.Join(root, m.Profile.SandboxCompose)); err == nil {
		if err := m.checkStackFiles(root, filepath.Join(root, m.Profile.EnvFile)); err != nil {
			return located{}, err
		}
	}
	// The registry decides which checkout an instance is: an env file
	// copied elsewhere must not steer commands to the original's stack.
	instances, err := m.Registry().Instances()
	if err != nil {
		return located{}, err
	}
	if in, ok := instances[env.InstanceID]; ok && !samePath(in.Path, root) {
		return located{}, &ElsewhereError{ID: env.InstanceID, Here: root, Registered: in.Path, Gone: !m.holdsInstance(in.Path, env.InstanceID)}
	}
	return located{Root: root, Env: env}, nil
}

// ElsewhereError reports an env file whose instance is registered for
// another checkout (a copied folder, say). Gone is set when the registered
// folder no longer exists (the sandbox may have been moved here).
type ElsewhereError struct {
	ID, Here, Registered string
	Gone                 bool
}

func (e *ElsewhereError) Error() string {
	if e.Gone {
		return fmt.Sprintf("%s names instance %s, which is registered for %s, a folder that is gone", e.Here, e.ID, e.Registered)
	}
	return fmt.Sprintf("%s names instance %s, which is registered for %s, not this checkout", e.Here, e.ID, e.Registered)
}

// stackOf reads the checkout's sandbox compose file at root, interpolated
// with vals (the env file's values; nil: the file's defaults), and adapts
// the profile to it (ForStack).
func (m *Manager) stackOf(ctx context.Context, root string, vals map[string]string) (*Profile, *StackFile, error) {
	sf, err := LoadStack(ctx, m.stackSource(root, vals))
	if err != nil {
		return nil, nil, err
	}
	sp, err := m.Profile.ForStack(sf)
	if err != nil {
		return nil, nil, err
	}
	return sp, sf, nil
}

// located sandbox's stack: the adapted profile and the file, with every
// port of the file in its env file. A port variable the file gained after
// the sandbox was made gets its rule's port for the slot, appended to the
// env file; no port already there ever moves.
func (m *Manager) locatedStack(ctx context.Context, l *located) (*Profile, *StackFile, error) {
	envPath := filepath.Join(l.Root, m.Profile.EnvFile)
	vals, err := m.Profile.EnvValues(envPath)
	if err != nil {
		return nil, nil, err
	}
	sp, sf, err := m.stackOf(ctx, l.Root, l.Secrets.with(vals))
	if err != nil {
		return nil, nil, err
	}
	added := false
	for _, r := range sp.Ports {
		if _, ok := l.Env.Ports[r.Key]; ok {
			continue
		}
		if v, ok := vals[r.Key]; ok {
			// A variable the file has under a name of its own: the env file's value stands.
			if port, ok := envfile.ParsePort(v); ok {
				l.Env.Ports[r.Key] = port
				continue
			}
			return nil, nil, &EnvFileError{Path: envPath, Key: r.Key, Err: fmt.Errorf("%q is not a port number (1–65535, decimal digits, no sign, no leading zero)", v)}
		}
		l.Env.Ports[r.Key] = r.Port(l.Env.Slot)
		added = true
	}
	if added {
		if err := sp.WriteEnv(envPath, l.Env); err != nil {
			return nil, nil, err
		}
		m.emit(Event{Kind: EvPortsAdded, Source: m.Profile.SandboxCompose, Path: envPath})
		if vals, err = m.Profile.EnvValues(envPath); err != nil {
			return nil, nil, err
		}
		if sp, sf, err = m.stackOf(ctx, l.Root, l.Secrets.with(vals)); err != nil {
			return nil, nil, err
		}
	}
	return sp, sf, nil
}

// stackSource is the checkout's stack as compose reads it: the sandbox
// compose file and the checkout's override, with the env file's values
// (vals; nil for a new sandbox).
func (m *Manager) stackSource(root string, vals map[string]string) composefile.Source {
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	return composefile.Source{Root: root, Files: m.Profile.StackFor("", root).Files, Env: driver.InterpolationEnv(vals, m.Profile.EnvPrefix)}
}

// checkStackFiles proves that compose, given the stack files at root and
// the env file at envPath, reads nothing but the checkout's own regular
// files (composefile.Check).
func (m *Manager) checkStackFiles(root, envPath string) error {
	vals, err := m.Profile.EnvValues(envPath)
	if err != nil {
		return err
	}
	_, err = composefile.Check(context.Background(), m.stackSource(root, vals))
	return err
}

// stack returns the compose stack of a located sandbox (without its
// secrets: the caller that loaded them sets Stack.Secrets).
func (m *Manager) stack(l located) driver.Stack { return m.Profile.StackFor(l.Env.InstanceID, l.Root) }

// teardownStack returns the stack of id from its checkout when the files are
// there, else from the copy kept outside it.
func (m *Manager) teardownStack(id string, in Instance) (driver.Stack, bool) {
	root := in.Path
	if !fileExists(filepath.Join(root, m.Profile.EnvFile)) || !fileExists(filepath.Join(root, m.Profile.SandboxCompose)) {
		dir, ok := m.keptDir(id)
		if !ok {
			return driver.Stack{}, false
		}
		root = dir
		if !regularFile(filepath.Join(root, m.Profile.EnvFile)) || !regularFile(filepath.Join(root, m.Profile.SandboxCompose)) {
			return driver.Stack{}, false
		}
		st := m.Profile.StackFor(id, root)
		st.Files = st.Files[:1]
		return st, true
	}
	if err := m.checkStackFiles(root, filepath.Join(root, m.Profile.EnvFile)); err != nil {
		// Compose must not read what the checkout's files now name: the copy
		// kept at create describes the stack.
		dir, ok := m.keptDir(id)
		if !ok || !regularFile(filepath.Join(dir, m.Profile.EnvFile)) || !regularFile(filepath.Join(dir, m.Profile.SandboxCompose)) ||
			m.checkStackFiles(dir, filepath.Join(dir, m.Profile.EnvFile)) != nil {
			return driver.Stack{}, false
		}
		st := m.Profile.StackFor(id, dir)
		st.Files = st.Files[:1]
		return st, true
	}
	return m.Profile.StackFor(id, root), true
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

func dirExists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// cleanupContext gives undo steps time to finish after ctx was cancelled.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
}

// readBranch reads the branch checked out at root from git's files,
// without running git: "" when unknown, a short hash when detached.
func readBranch(root string) string {
	gitPath := filepath.Join(root, ".git")
	fi, err := os.Stat(gitPath)
	if err != nil {
		return ""
	}
	dir := gitPath
	if !fi.IsDir() {
		data, err := os.ReadFile(gitPath)
		if err != nil {
			return ""
		}
		d, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "gitdir: ")
		if !ok {
			return ""
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(root, d)
		}
		dir = d
	}
	head, err := os.ReadFile(filepath.Join(dir, "HEAD"))
	if err != nil {
		return ""
	}
	h := strings.TrimSpace(string(head))
	if ref, ok := strings.CutPrefix(h, "ref: refs/heads/"); ok {
		return ref
	}
	if len(h) >= 12 {
		return "(detached " + h[:12] + ")"
	}
	return ""
}
