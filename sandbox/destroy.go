package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// DestroyOptions are the inputs of Destroy.
type DestroyOptions struct {
	Dir          string // a folder inside the sandbox (used when Name is "")
	Name         string // destroy this sandbox by name, from anywhere
	KeepWorktree bool   // keep the worktree folder (the env file is removed)
	Force        bool   // lose uncommitted changes and unshared commits
}

// Destroyed says what Destroy did.
type Destroyed struct {
	ID              string `json:"id"`
	Path            string `json:"path"`
	AlreadyGone     bool   `json:"already_gone"` // nothing was registered: nothing to do
	StackRemoved    bool   `json:"stack_removed"`
	WorktreeRemoved bool   `json:"worktree_removed"`
	BranchDeleted   string `json:"branch_deleted,omitempty"`
	KeptCheckout    bool   `json:"kept_checkout"` // an adopted clone, or -keepWorktree
	// LeftOnEngine is set when -force destroyed a sandbox whose engine did
	// not answer: the commands that remove what stays there.
	LeftOnEngine string `json:"left_on_engine,omitempty"`
}

// WouldLoseError refuses a destroy that would lose work.
type WouldLoseError struct {
	Path string
	WouldLose
}

func (e *WouldLoseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "destroying %s would lose work:", e.Path)
	for _, c := range e.Changes {
		fmt.Fprintf(&b, "\n  uncommitted: %s", c)
	}
	for _, c := range e.Commits {
		fmt.Fprintf(&b, "\n  commit on no other branch or remote: %s", c)
	}
	for _, c := range e.Ignored {
		fmt.Fprintf(&b, "\n  ignored by git, in a mounted or shared-data folder: %s", c)
	}
	return b.String()
}

// NotOwnedError refuses to tear down a compose project whose containers
// do not carry this instance's label.
type NotOwnedError struct {
	Project, Service, Key, Label string
}

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("compose project %s is not this sandbox's: its %s container is labelled %s=%q", e.Project, e.Service, e.Key, e.Label)
}

// NotRegisteredError reports a sandbox that the registry does not know.
type NotRegisteredError struct{ ID, Path string }

func (e *NotRegisteredError) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("%s (%s) is not registered", e.ID, e.Path)
	}
	return fmt.Sprintf("%s is not registered", e.ID)
}

// Destroy stops the sandbox's stack with its volumes, removes its worktree
// (never an adopted clone, never a folder that is not a registered
// worktree) and unregisters it. It acts on the registry's record, works
// when the worktree is already gone, and is harmless when run twice.
func (m *Manager) Destroy(ctx context.Context, o DestroyOptions) (*Destroyed, error) {
	p := m.Profile
	reg := m.Registry()
	var id string
	if o.Name != "" {
		if err := ValidateName(o.Name); err != nil {
			return nil, err
		}
		id = p.InstanceID(o.Name)
	} else {
		l, err := m.locate(o.Dir)
		if err != nil {
			return nil, err
		}
		id = l.Env.InstanceID
	}
	work, err := m.lockWork(ctx, id)
	if err != nil {
		return nil, err
	}
	defer work.unlock()
	instances, err := reg.Instances()
	if err != nil {
		return nil, err
	}
	in, ok := instances[id]
	if !ok {
		if o.Name != "" {
			// A destroy killed after it removed the entry may have left the
			// teardown copy: it is this suite's own folder, keyed by the name.
			m.removeInstanceDir(id)
			return &Destroyed{ID: id, AlreadyGone: true}, nil
		}
		return nil, &NotRegisteredError{ID: id}
	}
	res := &Destroyed{ID: id, Path: in.Path}
	mt := m.readMeta(id)
	exists := dirExists(in.Path)
	removeTree := in.IsWorktree && !o.KeepWorktree

	// What git knows of the folder, and the proof that it is this
	// instance's: a worktree of the registered repository that holds this
	// instance's env file, or one that a create or destroy of this instance,
	// killed half-way, recorded before git acted.
	var wt worktreeEntry
	listed, dropped := false, false
	if removeTree && dirExists(in.ParentRepo) {
		wt, listed, err = m.worktreeAt(ctx, in.ParentRepo, in.Path)
		if err != nil && mt.Phase == phaseCreating {
			// git cannot even list worktrees when `git worktree add` was
			// killed while it wrote the record (an empty commondir): drop
			// that record of this create's folder, then ask again.
			var derr error
			if dropped, derr = m.dropHalfAddedRecord(ctx, in.ParentRepo, in.Path); derr != nil {
				return nil, derr
			} else if dropped {
				wt, listed, err = m.worktreeAt(ctx, in.ParentRepo, in.Path)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	unfinished := mt.Phase == phaseCreating || mt.Phase == phaseDestroying
	if removeTree && exists {
		switch {
		case listed && (m.holdsInstance(in.Path, id) || unfinished):
			// Git knows it as this repository's worktree, and it holds this
			// instance's env file, or a run of this instance was killed while
			// making or removing it.
		case mt.Phase == phaseCreating && dropped:
			// git's record of it, which this instance's killed create was
			// writing, named it (and is now removed).
		case mt.Phase == phaseCreating && (mt.FolderMade || madeByGitAdd(in.Path)):
			// A create killed after it made the folder itself, or one whose
			// folder holds nothing but what git writes first.
		default:
			return nil, &NotProvenError{ID: id, Path: in.Path, Repo: in.ParentRepo, Listed: listed}
		}
	}

	if removeTree && !o.Force {
		var lose WouldLose
		if exists {
			if lose, err = m.wouldLose(ctx, in.Path, mt.Branch); err != nil {
				return nil, err
			}
			if !mt.BranchCreated {
				lose.Commits = nil // the branch stays: its commits are not lost
			}
			if lose.Ignored, err = m.ignoredInMounts(ctx, in.Path); err != nil {
				return nil, err
			}
		}
		if mt.BranchCreated && mt.Branch != "" {
			// The branch is deleted too: whatever only it holds is lost, also
			// when the folder is gone or HEAD moved to another branch.
			commits, err := m.unsharedCommits(ctx, in.ParentRepo, "refs/heads/"+mt.Branch, mt.Branch)
			if err != nil {
				return nil, err
			}
			lose.Commits = mergeLines(lose.Commits, commits)
		}
		if !lose.Empty() {
			return nil, &WouldLoseError{Path: in.Path, WouldLose: lose}
		}
	}
	// 1. The stack, after proving it is ours, on the engine it runs on; on
	// another engine also the volumes its folders were synced to.
	em := m.on(in.Engine)
	err = em.teardown(ctx, id, in)
	if err == nil && in.Engine.Remote() {
		err = em.removeSyncVolumes(ctx, id)
	}
	var unreachable *EngineUnreachableError
	switch {
	case err != nil && o.Force && in.Engine.Context != "" && errors.As(err, &unreachable):
		// The engine is gone for good (a decommissioned host): forget the
		// sandbox here, and say what stays there.
		res.LeftOnEngine = fmt.Sprintf("docker --context %s compose -p %s down --volumes; docker --context %s volume rm $(docker --context %s volume ls -q --filter label=%s=%s)",
			in.Engine.Context, id, in.Engine.Context, in.Engine.Context, m.Profile.InstanceLabel, id)
		m.emit(Event{Kind: EvEngineUnreachable, ID: id, Engine: in.Engine.Name(), Err: unreachable.Err.Error()})
	case err != nil:
		return nil, err
	default:
		res.StackRemoved = true
		m.emit(Event{Kind: EvStackRemoved, ID: id})
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("destroy %s: %w", id, err)
	}

	// 2. The checkout. From here on a killed run is finished by the next
	// destroy (a record of a killed create keeps its own phase).
	if removeTree && (exists || listed) && mt.Phase == "" {
		mt.Phase = phaseDestroying
		if err := m.writeMeta(id, mt); err != nil {
			return nil, err
		}
	}
	envPath := filepath.Join(in.Path, p.EnvFile)
	if removeTree && dirExists(in.ParentRepo) {
		unlock, err := m.lockRepo(ctx, in.ParentRepo)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	switch {
	case removeTree && (exists || listed):
		if err := m.removeProvenWorktree(ctx, in, wt, listed, o.Force, mt.Phase == phaseCreating); err != nil {
			return nil, err
		}
		res.WorktreeRemoved = exists
		m.emit(Event{Kind: EvWorktreeRemoved, Path: in.Path})
		if mt.Phase == phaseCreating {
			// A record git began but had not given a path yet names no
			// folder: prune keeps it (it is locked). It bears the folder's
			// name: drop it too.
			if _, err := m.dropHalfAddedRecord(ctx, in.ParentRepo, in.Path); err != nil {
				return nil, err
			}
		}
	case removeTree:
		m.git(ctx, in.ParentRepo, "worktree", "prune")
		m.emit(Event{Kind: EvWorktreeAlreadyGone, Path: in.Path})
	default:
		res.KeptCheckout = true
		if e, err := p.ReadEnv(envPath); err == nil && e.InstanceID == id {
			if err := os.Remove(envPath); err != nil {
				return nil, fmt.Errorf("remove %s: %w", envPath, err)
			}
		}
		m.emit(Event{Kind: EvCheckoutKept, Path: in.Path, Source: p.EnvFile})
	}
	if removeTree && mt.BranchCreated && mt.Branch != "" && dirExists(in.ParentRepo) && unfinished {
		// A git killed while it wrote the branch leaves the ref's lock file,
		// which would refuse this name to every later create; one killed
		// while it deleted the branch may leave packed-refs.lock, which
		// refuses every ref deletion in the repository.
		if err := m.clearRefLock(ctx, in.ParentRepo, mt.Branch); err != nil {
			return nil, err
		}
		if err := m.clearPackedRefsLock(ctx, in.ParentRepo, m.metaTime(id)); err != nil {
			return nil, err
		}
	}
	if removeTree && mt.BranchCreated && mt.Branch != "" && dirExists(in.ParentRepo) && mt.Phase == phaseCreating && mt.Head != "" {
		// A create killed before it finished may not have made the branch:
		// only one still at the commit it would have been made from is its.
		// A branch git still cannot delete ends the run here, naming git's
		// reason, so that the entry and the record that make the next
		// destroy delete the branch stay.
		if err := m.deleteBranchAt(ctx, in.ParentRepo, mt.Branch, mt.Head); err != nil {
			return nil, fmt.Errorf("delete branch %s, which the interrupted create made: %w", mt.Branch, err)
		}
		if ok, _ := m.branchExists(ctx, in.ParentRepo, mt.Branch); !ok {
			res.BranchDeleted = mt.Branch
		}
	} else if removeTree && mt.BranchCreated && mt.Branch != "" && dirExists(in.ParentRepo) {
		if ok, err := m.branchExists(ctx, in.ParentRepo, mt.Branch); err == nil && ok {
			if _, err := m.git(ctx, in.ParentRepo, "branch", "-D", mt.Branch); err != nil {
				return nil, fmt.Errorf("delete branch %s, which this sandbox created: %w", mt.Branch, err)
			}
			res.BranchDeleted = mt.Branch
			m.emit(Event{Kind: EvBranchDeleted, Branch: mt.Branch})
		}
	}

	// 3. The records: the teardown copy, then the entry, so that a run
	// killed in between leaves an entry that the next destroy removes.
	if err := m.removeInstanceDir(id); err != nil {
		return nil, fmt.Errorf("remove %s: %w", m.instanceDir(id), err)
	}
	if _, err := reg.Unregister(ctx, id); err != nil {
		return nil, err
	}
	return res, nil
}

// removeProvenWorktree removes the worktree folder of in and git's record
// of it. Git removes what it lists; a folder git can no longer remove is
// deleted here, since Destroy proved it is this instance's before it began:
// one without its .git file (a destroy killed while git deleted it, or a
// create killed before git wrote it), or one whose record `git worktree add`
// had not finished when its create was killed (git then cannot read the
// folder's .git file). Git's record goes last: prune keeps a locked one, so
// that is removed by name once its folder is gone.
func (m *Manager) removeProvenWorktree(ctx context.Context, in Instance, wt worktreeEntry, listed, force, creating bool) error {
	var gitErr error
	if listed {
		if gitErr = m.removeWorktree(ctx, in.ParentRepo, wt, force); gitErr == nil {
			return nil
		}
	}
	if dirExists(in.Path) {
		halfAdded := creating && wt.Locked && wt.Reason == "initializing"
		if listed && dirExists(filepath.Join(in.Path, ".git")) && !halfAdded {
			// Git refused a worktree it can still read: its reason stands.
			return fmt.Errorf("remove worktree %s: %w", in.Path, gitErr)
		}
		if err := os.RemoveAll(in.Path); err != nil {
			return fmt.Errorf("remove the rest of worktree %s: %w", in.Path, err)
		}
	}
	if listed && wt.Locked {
		if err := m.removeWorktree(ctx, in.ParentRepo, wt, true); err != nil {
			return fmt.Errorf("let git forget worktree %s: %w", in.Path, err)
		}
	}
	if _, err := m.git(ctx, in.ParentRepo, "worktree", "prune"); err != nil {
		return fmt.Errorf("let git forget worktree %s: %w", in.Path, err)
	}
	return nil
}

// dropHalfAddedRecord removes git's record of the worktree at path (its
// folder below the common git dir's worktrees/) when `git worktree add` was
// killed before it finished writing it: the record is still locked with
// git's "initializing" marker, and it names path, or (killed before it wrote
// the path) it bears path's folder name and names nothing. Git itself would
// delete the same folder on `git worktree remove --force --force`, but
// cannot read the record to do so. Destroy calls it only for a create of
// this instance that was killed, holding its work lock and the repository
// lock. It reports whether it removed a record.
func (m *Manager) dropHalfAddedRecord(ctx context.Context, repo, path string) (bool, error) {
	common, err := m.git(ctx, repo, "rev-parse", "--path-format=absolute", "--git-common-dir")
	if err != nil {
		return false, fmt.Errorf("find the git folder of %s: %w", repo, err)
	}
	records := filepath.Join(common, "worktrees")
	ents, err := os.ReadDir(records)
	if err != nil {
		return false, nil
	}
	want := filepath.Join(path, ".git")
	for _, e := range ents {
		dir := filepath.Join(records, e.Name())
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			continue
		}
		lock, err := os.ReadFile(filepath.Join(dir, "locked"))
		if err != nil || strings.TrimSpace(string(lock)) != "initializing" {
			continue
		}
		gitdir, err := os.ReadFile(filepath.Join(dir, "gitdir"))
		named := strings.TrimSpace(string(gitdir))
		switch {
		case err == nil && named != "" && samePath(named, want):
		case (err != nil || named == "") && e.Name() == filepath.Base(path):
		default:
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return false, fmt.Errorf("remove git's half-written record %s of worktree %s: %w", dir, path, err)
		}
		m.emit(Event{Kind: EvWorktreeRecordRemoved, Path: dir, Source: path})
		return true, nil
	}
	return false, nil
}

// clearRefLock removes the lock file of branch's ref that a git process
// left when it was killed while it created or deleted the branch. Destroy
// calls it only for a branch its sandbox created, after a run of that
// sandbox was killed, holding the sandbox's work lock (so the run that
// started that git is gone) and the repository lock (so no other run of
// this suite is changing worktrees or branches there).
func (m *Manager) clearRefLock(ctx context.Context, repo, branch string) error {
	path, err := m.git(ctx, repo, "rev-parse", "--path-format=absolute", "--git-path", "refs/heads/"+branch+".lock")
	if err != nil {
		return fmt.Errorf("find the lock file of branch %s: %w", branch, err)
	}
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove the lock file %s that a killed git left on branch %s: %w", path, branch, err)
	}
	m.emit(Event{Kind: EvRefLockRemoved, Path: path, Branch: branch})
	return nil
}

// packedRefsLockWatch is how long clearPackedRefsLock watches git's
// packed-refs transaction files before it calls them stale: a live git
// holds them for milliseconds (and itself waits one second for the lock,
// core.packedRefsTimeout).
var packedRefsLockWatch = 2 * time.Second

// clearPackedRefsLock removes the repository's packed-refs.lock and
// packed-refs.new (the lock, and the new file git writes under it) when a
// git of this sandbox's killed run left them: each was made after that run
// recorded itself (since), and stays the same file, unchanged, while watched
// for packedRefsLockWatch. Any other is left for git to name.
func (m *Manager) clearPackedRefsLock(ctx context.Context, repo string, since time.Time) error {
	if since.IsZero() {
		return nil
	}
	type seen struct {
		path string
		fi   os.FileInfo
	}
	var files []seen
	for _, name := range []string{"packed-refs.lock", "packed-refs.new"} {
		path, err := m.git(ctx, repo, "rev-parse", "--path-format=absolute", "--git-path", name)
		if err != nil {
			return fmt.Errorf("find %s of %s: %w", name, repo, err)
		}
		if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && !fi.ModTime().Before(since) {
			files = append(files, seen{path, fi})
		}
	}
	if len(files) == 0 {
		return nil
	}
	unchanged := func(f seen) bool {
		now, err := os.Lstat(f.path)
		return err == nil && os.SameFile(f.fi, now) && now.ModTime().Equal(f.fi.ModTime()) && now.Size() == f.fi.Size()
	}
	watch := time.NewTimer(packedRefsLockWatch)
	defer watch.Stop()
	tick := time.NewTicker(packedRefsLockWatch / 20)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return fmt.Errorf("watch %s: %w", files[0].path, ctx.Err())
		case <-watch.C:
			done = true
		case <-tick.C:
		}
		for _, f := range files {
			if !unchanged(f) {
				return nil // gone or in use: a live git has the transaction
			}
		}
	}
	for _, f := range files {
		if err := os.Remove(f.path); err != nil {
			return fmt.Errorf("remove the stale %s: %w", f.path, err)
		}
		m.emit(Event{Kind: EvRefLockRemoved, Path: f.path})
	}
	return nil
}

// madeByGitAdd reports whether dir holds nothing but what `git worktree
// add` writes first: nothing at all, or only the .git link file.
func madeByGitAdd(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.Name() != ".git" || !e.Type().IsRegular() {
			return false
		}
	}
	return true
}

// NotProvenError refuses to delete a registered folder that cannot be shown
// to be this instance's worktree.
type NotProvenError struct {
	ID, Path, Repo string
	Listed         bool // git lists Path as a worktree of Repo
}

func (e *NotProvenError) Error() string {
	if !e.Listed {
		return fmt.Sprintf("%s is registered for %s, which is not a worktree of %s: not deleting it", e.ID, e.Path, e.Repo)
	}
	return fmt.Sprintf("%s is registered for %s, which holds no .env.sandbox of that instance: not deleting it", e.ID, e.Path)
}

// EngineUnreachableError reports a Docker engine that did not answer when
// asked for the stacks it runs.
type EngineUnreachableError struct {
	Engine Engine
	Err    error
}

func (e *EngineUnreachableError) Error() string {
	return fmt.Sprintf("ask engine %s for its stacks: %v", e.Engine.Name(), e.Err)
}
func (e *EngineUnreachableError) Unwrap() error { return e.Err }

// teardown stops the instance's stack with its volumes, after checking that
// every container of the compose project carries this instance's label.
func (m *Manager) teardown(ctx context.Context, id string, in Instance) error {
	states, err := m.ownedStates(ctx, id)
	if err != nil {
		return err
	}
	c, err := m.Compose(ctx)
	if err != nil {
		return err
	}
	stack, ok := m.teardownStack(id, in)
	if !ok {
		if states[id] == nil {
			return nil // nothing runs and nothing describes it: nothing to stop
		}
		return errors.New("cannot stop the stack of " + id + ": neither its checkout nor the kept copy has its env and compose files")
	}
	return c.Down(ctx, stack, true, nil)
}

// ownedStates returns every stack's state after checking that each
// container of project id carries this instance's label.
func (m *Manager) ownedStates(ctx context.Context, id string) (map[string]*driver.StackState, error) {
	states, err := driver.StackStates(ctx, m.Runner, m.Profile.InstanceLabel)
	if err != nil {
		return nil, &EngineUnreachableError{Engine: m.engine, Err: err}
	}
	if st := states[id]; st != nil {
		for _, s := range st.Services {
			if s.Instance != id {
				return nil, &NotOwnedError{Project: id, Service: s.Service, Key: m.Profile.InstanceLabel, Label: s.Instance}
			}
		}
	}
	return states, nil
}

// checkOwned is ownedStates for callers that need only the verdict.
func (m *Manager) checkOwned(ctx context.Context, id string) error {
	_, err := m.ownedStates(ctx, id)
	return err
}
