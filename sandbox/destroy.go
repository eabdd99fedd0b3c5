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
	id, err := m.destroyID(o)
	if err != nil {
		return nil, err
	}
	work, err := m.lockWork(ctx, id)
	if err != nil {
		return nil, err
	}
	defer work.unlock()
	instances, err := m.Registry().Instances()
	if err != nil {
		return nil, err
	}
	in, ok := instances[id]
	if !ok {
		return m.destroyUnregistered(id, o)
	}
	d := m.newDestruction(id, in, o)
	defer d.unlockRepo()
	for _, step := range []func(context.Context) error{
		d.askGitAboutTheFolder,
		d.proveTheFolderIsOurs,
		d.refuseToLoseWork,
		d.removeStack,
		d.markDestroying,
		d.lockRepo,
		d.removeCheckout,
		d.clearLocksOfKilledGit,
		d.deleteBranch,
		d.removeRecords,
	} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	return d.res, nil
}

// destroyID is the instance id that o names: by name, or by the env file
// of the sandbox that holds o.Dir.
func (m *Manager) destroyID(o DestroyOptions) (string, error) {
	if o.Name != "" {
		if err := ValidateName(o.Name); err != nil {
			return "", err
		}
		return m.Profile.InstanceID(o.Name), nil
	}
	l, err := m.locate(o.Dir)
	if err != nil {
		return "", err
	}
	return l.Env.InstanceID, nil
}

// destroyUnregistered answers a destroy of an instance the registry does
// not know: by name it is already gone; from a folder it is an error.
func (m *Manager) destroyUnregistered(id string, o DestroyOptions) (*Destroyed, error) {
	if o.Name == "" {
		return nil, &NotRegisteredError{ID: id}
	}
	// A destroy killed after it removed the entry may have left the
	// teardown copy: it is this suite's own folder, keyed by the name.
	m.removeInstanceDir(id)
	return &Destroyed{ID: id, AlreadyGone: true}, nil
}

// destruction is one run of Destroy of a registered instance: what it read
// before it began, what it learns on the way, and what it did (res). Its
// methods are Destroy's steps, in order.
type destruction struct {
	m          *Manager
	o          DestroyOptions
	id         string
	in         Instance
	mt         meta
	exists     bool // the registered folder exists
	removeTree bool // a worktree to remove (not an adopted clone, not -keepWorktree)
	unfinished bool // a create or destroy of this instance was killed half-way
	// What git knows of the folder.
	wt      worktreeEntry
	listed  bool // git lists the folder as a worktree of the registered repository
	dropped bool // git's half-written record of a killed create was removed
	unlock  func()
	res     *Destroyed
}

func (m *Manager) newDestruction(id string, in Instance, o DestroyOptions) *destruction {
	mt := m.readMeta(id)
	return &destruction{
		m: m, o: o, id: id, in: in, mt: mt,
		exists:     dirExists(in.Path),
		removeTree: in.IsWorktree && !o.KeepWorktree,
		unfinished: mt.Phase == phaseCreating || mt.Phase == phaseDestroying,
		res:        &Destroyed{ID: id, Path: in.Path},
	}
}

// askGitAboutTheFolder finds git's record of the worktree. Git cannot even
// list worktrees when `git worktree add` was killed while it wrote the
// record (an empty commondir): that record of this create's folder is
// dropped, then git is asked again.
func (d *destruction) askGitAboutTheFolder(ctx context.Context) error {
	if !d.removeTree || !dirExists(d.in.ParentRepo) {
		return nil
	}
	var err error
	d.wt, d.listed, err = d.m.worktreeAt(ctx, d.in.ParentRepo, d.in.Path)
	if err != nil && d.mt.Phase == phaseCreating {
		var derr error
		if d.dropped, derr = d.m.dropHalfAddedRecord(ctx, d.in.ParentRepo, d.in.Path); derr != nil {
			return derr
		} else if d.dropped {
			d.wt, d.listed, err = d.m.worktreeAt(ctx, d.in.ParentRepo, d.in.Path)
		}
	}
	return err
}

// proveTheFolderIsOurs refuses a folder that is not shown to be this
// instance's: a worktree of the registered repository that holds this
// instance's env file, or one that a create or destroy of this instance,
// killed half-way, recorded before git acted.
func (d *destruction) proveTheFolderIsOurs(context.Context) error {
	if !d.removeTree || !d.exists {
		return nil
	}
	switch {
	case d.listed && (d.m.holdsInstance(d.in.Path, d.id) || d.unfinished):
		// Git knows it as this repository's worktree, and it holds this
		// instance's env file, or a run of this instance was killed while
		// making or removing it.
	case d.mt.Phase == phaseCreating && d.dropped:
		// git's record of it, which this instance's killed create was
		// writing, named it (and is now removed).
	case d.mt.Phase == phaseCreating && (d.mt.FolderMade || madeByGitAdd(d.in.Path)):
		// A create killed after it made the folder itself, or one whose
		// folder holds nothing but what git writes first.
	default:
		return &NotProvenError{ID: d.id, Path: d.in.Path, Repo: d.in.ParentRepo, Listed: d.listed}
	}
	return nil
}

// refuseToLoseWork refuses, without -force, to delete uncommitted changes,
// files git ignores in the data folders, and commits that only the
// worktree's branch (deleted with it) holds.
func (d *destruction) refuseToLoseWork(ctx context.Context) error {
	if !d.removeTree || d.o.Force {
		return nil
	}
	var lose WouldLose
	var err error
	if d.exists {
		if lose, err = d.m.wouldLose(ctx, d.in.Path, d.mt.Branch); err != nil {
			return err
		}
		if !d.mt.BranchCreated {
			lose.Commits = nil // the branch stays: its commits are not lost
		}
		if lose.Ignored, err = d.m.ignoredInMounts(ctx, d.in.Path); err != nil {
			return err
		}
	}
	if d.mt.BranchCreated && d.mt.Branch != "" {
		// The branch is deleted too: whatever only it holds is lost, also
		// when the folder is gone or HEAD moved to another branch.
		commits, err := d.m.unsharedCommits(ctx, d.in.ParentRepo, "refs/heads/"+d.mt.Branch, d.mt.Branch)
		if err != nil {
			return err
		}
		lose.Commits = mergeLines(lose.Commits, commits)
	}
	if !lose.Empty() {
		return &WouldLoseError{Path: d.in.Path, WouldLose: lose}
	}
	return nil
}

// removeStack tears the stack down, after proving it is ours, on the
// engine it runs on; on another engine also the volumes its folders were
// synced to. With -force, an engine that no longer answers is left, and
// the commands that remove what stays there are recorded.
func (d *destruction) removeStack(ctx context.Context) error {
	m, id, in := d.m, d.id, d.in
	em := m.on(in.Engine)
	err := em.teardown(ctx, id, in)
	if err == nil && in.Engine.Remote() {
		err = em.removeSyncVolumes(ctx, id)
	}
	var unreachable *EngineUnreachableError
	switch {
	case err != nil && d.o.Force && in.Engine.Context != "" && errors.As(err, &unreachable):
		// The engine is gone for good (a decommissioned host): forget the
		// sandbox here, and say what stays there.
		d.res.LeftOnEngine = fmt.Sprintf("docker --context %s compose -p %s down --volumes; docker --context %s volume rm $(docker --context %s volume ls -q --filter label=%s=%s)",
			in.Engine.Context, id, in.Engine.Context, in.Engine.Context, m.Profile.InstanceLabel, id)
		m.emit(Event{Kind: EvEngineUnreachable, ID: id, Engine: in.Engine.Name(), Err: unreachable.Err.Error()})
	case err != nil:
		return err
	default:
		d.res.StackRemoved = true
		m.emit(Event{Kind: EvStackRemoved, ID: id})
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	return nil
}

// markDestroying records the destroy before the checkout goes: from here
// on a killed run is finished by the next destroy (a record of a killed
// create keeps its own phase).
func (d *destruction) markDestroying(context.Context) error {
	if !d.removeTree || !(d.exists || d.listed) || d.mt.Phase != "" {
		return nil
	}
	d.mt.Phase = phaseDestroying
	return d.m.writeMeta(d.id, d.mt)
}

// lockRepo takes the repository lock (released by unlockRepo when Destroy
// returns) before git's worktrees and branches change.
func (d *destruction) lockRepo(ctx context.Context) error {
	if !d.removeTree || !dirExists(d.in.ParentRepo) {
		return nil
	}
	unlock, err := d.m.lockRepo(ctx, d.in.ParentRepo)
	if err != nil {
		return err
	}
	d.unlock = unlock
	return nil
}

func (d *destruction) unlockRepo() {
	if d.unlock != nil {
		d.unlock()
	}
}

// removeCheckout removes the worktree and git's record of it, or lets git
// forget a worktree already gone, or, for a checkout that stays, removes
// only this instance's env file.
func (d *destruction) removeCheckout(ctx context.Context) error {
	m, in := d.m, d.in
	switch {
	case d.removeTree && (d.exists || d.listed):
		if err := m.removeProvenWorktree(ctx, in, d.wt, d.listed, d.o.Force, d.mt.Phase == phaseCreating); err != nil {
			return err
		}
		d.res.WorktreeRemoved = d.exists
		m.emit(Event{Kind: EvWorktreeRemoved, Path: in.Path})
		if d.mt.Phase == phaseCreating {
			// A record git began but had not given a path yet names no
			// folder: prune keeps it (it is locked). It bears the folder's
			// name: drop it too.
			if _, err := m.dropHalfAddedRecord(ctx, in.ParentRepo, in.Path); err != nil {
				return err
			}
		}
	case d.removeTree:
		m.git(ctx, in.ParentRepo, "worktree", "prune")
		m.emit(Event{Kind: EvWorktreeAlreadyGone, Path: in.Path})
	default:
		d.res.KeptCheckout = true
		envPath := filepath.Join(in.Path, m.Profile.EnvFile)
		if e, err := m.Profile.ReadEnv(envPath); err == nil && e.InstanceID == d.id {
			if err := os.Remove(envPath); err != nil {
				return fmt.Errorf("remove %s: %w", envPath, err)
			}
		}
		m.emit(Event{Kind: EvCheckoutKept, Path: in.Path, Source: m.Profile.EnvFile})
	}
	return nil
}

// ownBranch reports whether the sandbox created its branch, which goes
// with its worktree.
func (d *destruction) ownBranch() bool {
	return d.removeTree && d.mt.BranchCreated && d.mt.Branch != "" && dirExists(d.in.ParentRepo)
}

// clearLocksOfKilledGit removes, after a killed run, the lock files its
// git left: a git killed while it wrote the branch leaves the ref's lock
// file, which would refuse this name to every later create; one killed
// while it deleted the branch may leave packed-refs.lock, which refuses
// every ref deletion in the repository.
func (d *destruction) clearLocksOfKilledGit(ctx context.Context) error {
	if !d.ownBranch() || !d.unfinished {
		return nil
	}
	if err := d.m.clearRefLock(ctx, d.in.ParentRepo, d.mt.Branch); err != nil {
		return err
	}
	return d.m.clearPackedRefsLock(ctx, d.in.ParentRepo, d.m.metaTime(d.id))
}

// deleteBranch deletes the branch the sandbox created.
func (d *destruction) deleteBranch(ctx context.Context) error {
	if !d.ownBranch() {
		return nil
	}
	m, repo, branch := d.m, d.in.ParentRepo, d.mt.Branch
	if d.mt.Phase == phaseCreating && d.mt.Head != "" {
		// A create killed before it finished may not have made the branch:
		// only one still at the commit it would have been made from is its.
		// A branch git still cannot delete ends the run here, naming git's
		// reason, so that the entry and the record that make the next
		// destroy delete the branch stay.
		if err := m.deleteBranchAt(ctx, repo, branch, d.mt.Head); err != nil {
			return fmt.Errorf("delete branch %s, which the interrupted create made: %w", branch, err)
		}
		if ok, _ := m.branchExists(ctx, repo, branch); !ok {
			d.res.BranchDeleted = branch
		}
		return nil
	}
	if ok, err := m.branchExists(ctx, repo, branch); err == nil && ok {
		if _, err := m.git(ctx, repo, "branch", "-D", branch); err != nil {
			return fmt.Errorf("delete branch %s, which this sandbox created: %w", branch, err)
		}
		d.res.BranchDeleted = branch
		m.emit(Event{Kind: EvBranchDeleted, Branch: branch})
	}
	return nil
}

// removeRecords removes the teardown copy, then the registry entry, so that
// a run killed in between leaves an entry that the next destroy removes.
func (d *destruction) removeRecords(ctx context.Context) error {
	if err := d.m.removeInstanceDir(d.id); err != nil {
		return fmt.Errorf("remove %s: %w", d.m.instanceDir(d.id), err)
	}
	_, err := d.m.Registry().Unregister(ctx, d.id)
	return err
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
	sec := m.bestEffortSecrets(ctx)
	return sec.MaskError(c.Down(ctx, withSecrets(stack, sec), true, nil))
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
