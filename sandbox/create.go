package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CreateOptions are the inputs of Create.
type CreateOptions struct {
	Name    string // the sandbox name; the instance id is ktrdr--<name>
	Branch  string // "" means Name: checked out if it exists, else created from HEAD
	Slot    int    // 0 means the lowest free slot
	Standin bool   // run the bundled stand-in images
	Dir     string // a folder inside a checkout of the project (main or worktree)
	Context string // the Docker context of the engine to run on ("": the local engine)
}

// Created describes a new sandbox.
type Created struct {
	ID            string         `json:"id"`
	Name          string         `json:"name"`
	Slot          int            `json:"slot"`
	Path          string         `json:"path"`
	Branch        string         `json:"branch"`
	BranchCreated bool           `json:"branch_created"`
	IsWorktree    bool           `json:"is_worktree"`
	ParentRepo    string         `json:"parent_repo"`
	Engine        string         `json:"engine"` // "local", or the Docker context it runs on
	Host          string         `json:"host"`   // where its ports are reached
	Ports         map[string]int `json:"ports"`
	Skipped       map[int]string `json:"skipped_slots,omitempty"` // slots passed over, and why
	Reregistered  bool           `json:"reregistered,omitempty"`  // Init found the checkout's env file and registered it again
	MovedFrom     string         `json:"moved_from,omitempty"`    // the registered folder, gone, that this checkout replaced
}

// DirExistsError reports that the new worktree's folder already exists.
type DirExistsError struct{ Path string }

func (e *DirExistsError) Error() string {
	return fmt.Sprintf("folder %s already exists", e.Path)
}

// BranchInUseError reports a branch checked out in another worktree.
type BranchInUseError struct{ Branch, Worktree string }

func (e *BranchInUseError) Error() string {
	return fmt.Sprintf("branch %s is already checked out in %s", e.Branch, e.Worktree)
}

// WorktreeError reports that git could not make the worktree.
type WorktreeError struct {
	Path string
	Err  error
}

func (e *WorktreeError) Error() string {
	return fmt.Sprintf("create worktree %s: %v", e.Path, e.Err)
}
func (e *WorktreeError) Unwrap() error { return e.Err }

// AlreadySandboxError reports a checkout that is a sandbox already.
type AlreadySandboxError struct {
	Path string
	ID   string
}

func (e *AlreadySandboxError) Error() string {
	return fmt.Sprintf("%s is already sandbox %s", e.Path, e.ID)
}

// undo collects compensating steps and runs them, newest first, with a
// context that survives the cancellation of the original one.
type undo []func(ctx context.Context)

func (u *undo) add(f func(ctx context.Context)) { *u = append(*u, f) }

func (u undo) run(ctx context.Context) {
	c, cancel := cleanupContext(ctx)
	defer cancel()
	for i := len(u) - 1; i >= 0; i-- {
		u[i](c)
	}
}

// newSandboxStack is what a new sandbox of the checkout at root is made
// from: the stack its own file describes (with the file's defaults), the
// engine of Docker context contextName (checked to answer), and a manager
// whose docker calls go there.
func (m *Manager) newSandboxStack(ctx context.Context, root, contextName string) (*Profile, Engine, *Manager, error) {
	sp, sf, err := m.stackOf(ctx, root, nil)
	if err != nil {
		return nil, Engine{}, nil, err
	}
	m.warnStack(sf)
	eng, err := ResolveEngine(ctx, m.Runner, contextName)
	if err != nil {
		return nil, Engine{}, nil, err
	}
	return sp, eng, m.on(eng), nil
}

// usableSlot is the allocator's port test: a slot whose ports strangers
// hold is refused, naming the holder.
func (m *Manager) usableSlot(ctx context.Context, sp *Profile, id string) func(slot int) error {
	return func(slot int) error {
		if m.engine.Remote() {
			return m.preflight(ctx, sp, slot, sp.PortsFor(slot), id)
		}
		if ok, _ := PortsFree(sp, slot); ok {
			return nil
		}
		return Preflight(ctx, m.Runner, sp, slot, id)
	}
}

// Create makes a new sandbox: a git worktree beside the main checkout named
// <app>--<name>, a slot, its .env.sandbox and its registry entry. A failed
// or interrupted Create leaves nothing behind.
func (m *Manager) Create(ctx context.Context, o CreateOptions) (res *Created, err error) {
	p := m.Profile
	if err := ValidateName(o.Name); err != nil {
		return nil, err
	}
	branch := o.Branch
	if branch == "" {
		branch = o.Name
	}
	co, err := m.FindCheckout(ctx, o.Dir)
	if err != nil {
		return nil, err
	}
	sp, eng, m, err := m.newSandboxStack(ctx, co.Root, o.Context)
	if err != nil {
		return nil, err
	}
	if err := m.checkBranchName(ctx, co.Root, branch); err != nil {
		return nil, err
	}
	id := p.InstanceID(o.Name)
	// Nobody else creates or destroys this instance until the run ends, its
	// undo included (the unlock is deferred before the undo, so it runs
	// after it), or the process dies.
	work, err := m.lockWork(ctx, id)
	if err != nil {
		return nil, err
	}
	defer work.unlock()
	path := filepath.Join(filepath.Dir(co.MainRoot), id)
	if dirExists(path) {
		return nil, &DirExistsError{Path: path}
	}
	if _, ok, err := m.worktreeAt(ctx, co.MainRoot, path); err != nil {
		return nil, err
	} else if ok {
		return nil, &WorktreeError{Path: path, Err: errors.New("git still lists a worktree at that path, whose folder is gone (git worktree prune forgets it)")}
	}
	if wt, err := m.worktreeOfBranch(ctx, co.MainRoot, branch); err != nil {
		return nil, err
	} else if wt != "" {
		return nil, &BranchInUseError{Branch: branch, Worktree: wt}
	}
	exists, err := m.branchExists(ctx, co.MainRoot, branch)
	if err != nil {
		return nil, err
	}

	var u undo
	defer func() {
		if err != nil {
			u.run(ctx)
		}
	}()

	slot, skipped, err := m.reserveSlot(ctx, sp, id, Instance{Path: path, IsWorktree: true, ParentRepo: co.MainRoot, Engine: eng}, o.Slot, &u)
	if err != nil {
		return nil, err
	}

	// Registering may have waited for the lock: look again right before git
	// acts, so that the undo below only ever removes what this run made.
	if dirExists(path) {
		return nil, &DirExistsError{Path: path}
	}
	if now, err := m.branchExists(ctx, co.MainRoot, branch); err != nil {
		return nil, err
	} else if now != exists {
		return nil, &WorktreeError{Path: path, Err: fmt.Errorf("branch %s was created or deleted by someone else meanwhile; run create again", branch)}
	}
	head := ""
	if !exists {
		if head, err = m.git(ctx, co.Root, "rev-parse", "--verify", "HEAD"); err != nil {
			return nil, &WorktreeError{Path: path, Err: fmt.Errorf("the checkout %s has no commit to branch from: %w", co.Root, err)}
		}
	}
	// Record what this run is about to make before git acts: a run killed
	// from here on leaves a record that destroy -force finishes from. The
	// record goes last, after the undo steps added below have run.
	if err := m.writeMeta(id, meta{Branch: branch, BranchCreated: !exists, Head: head, Phase: phaseCreating}); err != nil {
		return nil, err
	}
	u.add(func(context.Context) { m.removeInstanceDir(id) })
	// The folder is made here, atomically: if anything else made it first,
	// mkdir fails and nothing of it is touched; if it succeeds, the folder
	// is this run's, and git fills it (git accepts an empty folder).
	if err := os.Mkdir(path, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, &DirExistsError{Path: path}
		}
		return nil, &WorktreeError{Path: path, Err: err}
	}
	u.add(func(context.Context) { os.RemoveAll(path) })
	if err := m.writeMeta(id, meta{Branch: branch, BranchCreated: !exists, Head: head, Phase: phaseCreating, FolderMade: true}); err != nil {
		return nil, err
	}
	args := []string{"worktree", "add", path, branch}
	if !exists {
		args = []string{"worktree", "add", "-b", branch, path, head}
		// Only the branch this run made: it still points where it was made.
		u.add(func(ctx context.Context) { _ = m.deleteBranchAt(ctx, co.MainRoot, branch, head) })
	}
	// Added after the branch's undo so that it runs first: git refuses to
	// delete a branch that a worktree still has checked out.
	u.add(func(ctx context.Context) {
		if unlock, err := m.lockRepo(ctx, co.MainRoot); err == nil {
			defer unlock()
		}
		if w, ok, err := m.worktreeAt(ctx, co.MainRoot, path); err == nil && ok {
			m.removeWorktree(ctx, co.MainRoot, w, true)
		}
		m.git(ctx, co.MainRoot, "worktree", "prune")
	})
	unlock, err := m.lockRepo(ctx, co.MainRoot)
	if err != nil {
		return nil, err
	}
	_, err = m.git(ctx, co.MainRoot, args...)
	unlock()
	if err != nil {
		return nil, &WorktreeError{Path: path, Err: err}
	}
	if exists {
		m.emit(Event{Kind: EvWorktreeCreated, Path: path, Branch: branch})
	} else {
		m.emit(Event{Kind: EvWorktreeCreated, Path: path, Branch: branch, NewBranch: true})
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create %s: %w", id, err)
	}

	env := sp.NewEnv(o.Name, slot, m.sharedRoot(), m.Now(), o.Standin)
	env.Engine = eng
	if err := sp.WriteEnv(filepath.Join(path, p.EnvFile), env); err != nil {
		return nil, err
	}
	if err := m.saveTeardownCopy(id, path, meta{Branch: branch, BranchCreated: !exists}); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create %s: %w", id, err)
	}
	return &Created{ID: id, Name: o.Name, Slot: slot, Path: path, Branch: branch, BranchCreated: !exists,
		IsWorktree: true, ParentRepo: co.MainRoot, Engine: eng.Name(), Host: strings.Trim(eng.URLHost(), "[]"), Ports: env.Ports, Skipped: skipped}, nil
}

// BranchNameError refuses a branch name that git would not take as written.
type BranchNameError struct {
	Branch string
	Reason string
}

func (e *BranchNameError) Error() string {
	return fmt.Sprintf("invalid branch name %q: %s", e.Branch, e.Reason)
}

// checkBranchName asks git whether branch is a valid branch name that
// means exactly what it says: git expands some spellings (@{-1} is the
// previous branch) and some names shadow git's own (refs/heads/x, a tag or
// a remote-tracking branch of the same name).
func (m *Manager) checkBranchName(ctx context.Context, dir, branch string) error {
	if strings.HasPrefix(branch, "-") {
		return &BranchNameError{Branch: branch, Reason: "it starts with a hyphen"}
	}
	resolved, err := m.git(ctx, dir, "check-ref-format", "--branch", branch)
	if err != nil {
		return &BranchNameError{Branch: branch, Reason: "git check-ref-format --branch refuses it"}
	}
	if resolved != branch {
		return &BranchNameError{Branch: branch, Reason: fmt.Sprintf("git reads it as %q; write the branch name itself", resolved)}
	}
	for _, p := range []string{"refs/", "heads/", "remotes/", "tags/"} {
		if strings.HasPrefix(branch, p) {
			return &BranchNameError{Branch: branch, Reason: fmt.Sprintf("names starting with %q are ambiguous with git's own ref names; for refs/heads/x write x", p)}
		}
	}
	others, err := m.git(ctx, dir, "for-each-ref", "--format=%(refname)", "refs/tags/"+branch, "refs/remotes/"+branch)
	if err != nil {
		return fmt.Errorf("look for refs named like branch %s in %s: %w", branch, dir, err)
	}
	if others != "" {
		return &BranchNameError{Branch: branch, Reason: "it would be ambiguous with " + strings.ReplaceAll(others, "\n", ", ")}
	}
	return nil
}

// deleteBranchAt deletes branch in repo only while it still points at tip
// (the commit it was made from), so that nothing committed on it since, and
// no branch of the same name made by someone else, is lost. The error is
// git's refusal to delete it (e.g. its ref lock, left by a killed git).
func (m *Manager) deleteBranchAt(ctx context.Context, repo, branch, tip string) error {
	if cur, err := m.git(ctx, repo, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch); err == nil && cur == tip {
		_, err := m.git(ctx, repo, "branch", "-D", branch)
		return err
	}
	return nil
}

// reserveSlot registers id with entry (stamped now) in slot want, or in
// the lowest usable slot when want is 0, skipping slots whose ports are
// taken. It returns the slot and why each skipped slot was skipped, and
// adds the registration's undo to u.
func (m *Manager) reserveSlot(ctx context.Context, sp *Profile, id string, entry Instance, want int, u *undo) (int, map[int]string, error) {
	skipped := map[int]string{}
	usable := m.usableSlot(ctx, sp, id)
	entry.CreatedAt = FormatTime(m.Now())
	slot, err := m.Registry().Register(ctx, id, entry, want, func(s int) error {
		err := usable(s)
		if err != nil {
			var pe *PortInUseError
			if errors.As(err, &pe) {
				skipped[s] = pe.Summary()
			} else {
				skipped[s] = err.Error()
			}
		}
		return err
	})
	if err != nil {
		return 0, skipped, err
	}
	u.add(func(ctx context.Context) { m.Registry().Unregister(ctx, id) })
	m.emit(Event{Kind: EvSlotReserved, ID: id, Slot: slot})
	return slot, skipped, nil
}

// sharedRoot is the shared-data root written to new env files: the
// default root when it exists, else "" (the ./data-style fallbacks).
func (m *Manager) sharedRoot() string {
	root := m.Profile.SharedRoot(m.Home)
	if fi, err := os.Stat(root); err == nil && fi.IsDir() {
		return root
	}
	return ""
}

// InitOptions are the inputs of Init.
type InitOptions struct {
	Name    string // "" derives it from the folder name
	Slot    int
	Standin bool
	Dir     string
	Context string // the Docker context of the engine to run on ("": the local engine)
}

// Init adopts an existing clone or worktree as a sandbox. It never moves or
// creates a checkout; it writes .env.sandbox and registers the instance.
// A checkout that keeps an intact .env.sandbox but lost its registry entry
// (the registry was moved aside or deleted) is registered again under the
// name and slot its file holds; the file is not touched.
func (m *Manager) Init(ctx context.Context, o InitOptions) (res *Created, err error) {
	p := m.Profile
	co, err := m.FindCheckout(ctx, o.Dir)
	if err != nil {
		return nil, err
	}
	envPath := filepath.Join(co.Root, p.EnvFile)
	if id, _, ok, err := m.Registry().Lookup(co.Root); err != nil {
		return nil, err
	} else if ok {
		return nil, &AlreadySandboxError{Path: co.Root, ID: id}
	}
	if fileExists(envPath) {
		return m.reregister(ctx, co, envPath, o)
	}
	name := o.Name
	if name == "" {
		name = strings.TrimPrefix(strings.ToLower(filepath.Base(co.Root)), p.App+"--")
		if err := ValidateName(name); err != nil {
			return nil, fmt.Errorf("cannot name the sandbox after its folder %q (%v); pass a name", filepath.Base(co.Root), err)
		}
	} else if err := ValidateName(name); err != nil {
		return nil, err
	}
	id := p.InstanceID(name)
	parent := ""
	if co.IsWorktree {
		parent = co.MainRoot
	}
	var u undo
	defer func() {
		if err != nil {
			u.run(ctx)
		}
	}()
	sp, eng, m, err := m.newSandboxStack(ctx, co.Root, o.Context)
	if err != nil {
		return nil, err
	}
	slot, skipped, err := m.reserveSlot(ctx, sp, id, Instance{Path: co.Root, IsWorktree: co.IsWorktree, ParentRepo: parent, Engine: eng}, o.Slot, &u)
	if err != nil {
		return nil, err
	}
	env := sp.NewEnv(name, slot, m.sharedRoot(), m.Now(), o.Standin)
	env.Engine = eng
	if err := sp.WriteEnv(envPath, env); err != nil {
		return nil, err
	}
	u.add(func(context.Context) { os.Remove(envPath) })
	u.add(func(context.Context) { m.removeInstanceDir(id) })
	if err := m.saveTeardownCopy(id, co.Root, meta{Branch: readBranch(co.Root)}); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("init %s: %w", id, err)
	}
	return &Created{ID: id, Name: name, Slot: slot, Path: co.Root, Branch: readBranch(co.Root),
		IsWorktree: co.IsWorktree, ParentRepo: parent, Engine: eng.Name(), Host: strings.Trim(eng.URLHost(), "[]"), Ports: env.Ports, Skipped: skipped}, nil
}
