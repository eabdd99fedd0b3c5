package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/gofrs/flock"
)

// Checkout is a git checkout of the project, as git describes it.
type Checkout struct {
	Root       string // top-level folder of the checkout
	IsWorktree bool   // a linked worktree, not the main checkout
	MainRoot   string // the main checkout (== Root for the main checkout)
}

// NotProjectError reports a folder that is not a git checkout of the project.
type NotProjectError struct {
	Dir    string
	Reason string
}

func (e *NotProjectError) Error() string {
	return fmt.Sprintf("%s is not a git checkout of this project: %s", e.Dir, e.Reason)
}

func (m *Manager) git(ctx context.Context, dir string, args ...string) (string, error) {
	out, err := m.Runner.Run(ctx, driver.Cmd{Name: "git", Args: append([]string{"-C", dir}, args...)})
	return strings.TrimSpace(string(out)), err
}

// FindCheckout describes the git checkout that holds dir and checks that it
// is this project's (its root has the profile's sandbox compose file).
func (m *Manager) FindCheckout(ctx context.Context, dir string) (Checkout, error) {
	top, err := m.git(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		var ee *driver.ExitError
		if errors.As(err, &ee) {
			return Checkout{}, &NotProjectError{Dir: dir, Reason: "git does not see a repository here"}
		}
		return Checkout{}, fmt.Errorf("find the git checkout of %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(top, m.Profile.SandboxCompose)); err != nil {
		return Checkout{}, &NotProjectError{Dir: top, Reason: "it has no " + m.Profile.SandboxCompose}
	}
	common, err := m.git(ctx, top, "rev-parse", "--path-format=absolute", "--git-common-dir")
	if err != nil {
		return Checkout{}, fmt.Errorf("find the main checkout of %s: %w", top, err)
	}
	gitDir, err := m.git(ctx, top, "rev-parse", "--path-format=absolute", "--git-dir")
	if err != nil {
		return Checkout{}, fmt.Errorf("find the git folder of %s: %w", top, err)
	}
	c := Checkout{Root: top, MainRoot: top}
	if filepath.Clean(common) != filepath.Clean(gitDir) {
		c.IsWorktree = true
		c.MainRoot = filepath.Dir(filepath.Clean(common))
	}
	return c, nil
}

// worktreeOfBranch returns the worktree that has branch checked out, or "".
func (m *Manager) worktreeOfBranch(ctx context.Context, repo, branch string) (string, error) {
	list, err := m.worktrees(ctx, repo)
	if err != nil {
		return "", err
	}
	for _, w := range list {
		if w.Branch == "refs/heads/"+branch {
			return w.Path, nil
		}
	}
	return "", nil
}

func (m *Manager) branchExists(ctx context.Context, repo, branch string) (bool, error) {
	_, err := m.git(ctx, repo, "show-ref", "--verify", "--quiet", "refs/heads/"+branch)
	if err == nil {
		return true, nil
	}
	var ee *driver.ExitError
	if errors.As(err, &ee) && ee.Code == 1 {
		return false, nil
	}
	return false, fmt.Errorf("look up branch %s in %s: %w", branch, repo, err)
}

// WouldLose lists what removing a worktree (and the branch the sandbox
// created) would lose: uncommitted changes and commits that no other
// branch or remote holds.
type WouldLose struct {
	Changes []string // `git status --porcelain` lines
	Commits []string // `git log --oneline` lines
	Ignored []string // files git ignores in the folders the stack mounts or the shared folders' places (data a container wrote, say)
}

// Empty reports whether nothing would be lost.
func (w WouldLose) Empty() bool {
	return len(w.Changes) == 0 && len(w.Commits) == 0 && len(w.Ignored) == 0
}

func (m *Manager) wouldLose(ctx context.Context, path, branch string) (WouldLose, error) {
	var w WouldLose
	// Not m.git: its TrimSpace would eat the first line's leading status column (" M" → "M").
	status, err := m.Runner.Run(ctx, driver.Cmd{Name: "git", Args: []string{"-C", path, "status", "--porcelain", "--untracked-files=all"}})
	if err != nil {
		return w, fmt.Errorf("check %s for uncommitted changes: %w", path, err)
	}
	for _, l := range strings.Split(strings.TrimRight(string(status), "\n"), "\n") {
		if l != "" && !strings.HasSuffix(l, " "+m.Profile.EnvFile) {
			w.Changes = append(w.Changes, l)
		}
	}
	commits, err := m.unsharedCommits(ctx, path, "HEAD", branch)
	if err != nil {
		return w, err
	}
	w.Commits = commits
	return w, nil
}

// unsharedCommits lists the commits reachable from rev that no remote and
// no branch other than branch holds. A branch that does not exist holds none.
func (m *Manager) unsharedCommits(ctx context.Context, repo, rev, branch string) ([]string, error) {
	if !dirExists(repo) {
		return nil, nil // no repository, no branch to delete
	}
	if _, err := m.git(ctx, repo, "rev-parse", "--verify", "--quiet", rev); err != nil {
		var ee *driver.ExitError
		if errors.As(err, &ee) && ee.Code == 1 {
			return nil, nil // --verify --quiet: exit 1 means rev does not exist
		}
		return nil, fmt.Errorf("check whether %s exists in %s: %w", rev, repo, err)
	}
	args := []string{"log", "--oneline", rev, "--not", "--remotes"}
	if branch != "" {
		args = append(args, "--exclude="+branch) // patterns for --branches are relative to refs/heads
	}
	args = append(args, "--branches")
	out, err := m.git(ctx, repo, args...)
	if err != nil {
		return nil, fmt.Errorf("check %s in %s for commits on no other branch: %w", rev, repo, err)
	}
	var commits []string
	for _, l := range strings.Split(out, "\n") {
		if l != "" {
			commits = append(commits, l)
		}
	}
	return commits, nil
}

// mergeLines appends the lines of b that a lacks.
func mergeLines(a, b []string) []string {
	for _, l := range b {
		if !slices.Contains(a, l) {
			a = append(a, l)
		}
	}
	return a
}

// worktreeEntry is one worktree as `git worktree list --porcelain` lists it.
type worktreeEntry struct {
	Path   string
	Branch string // refs/heads/…, "" when detached or unborn
	Locked bool
	Reason string // the lock's reason ("initializing" while git worktree add runs)
}

// worktrees lists the worktrees git knows in repo (the main checkout first).
// A worktree that another git process is adding has an incomplete record
// for a moment, which makes git fail; the listing is tried again then.
func (m *Manager) worktrees(ctx context.Context, repo string) ([]worktreeEntry, error) {
	var out string
	var err error
	for try := 0; ; try++ {
		out, err = m.git(ctx, repo, "worktree", "list", "--porcelain")
		var ee *driver.ExitError
		if err == nil || try == 40 || ctx.Err() != nil || !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "worktrees/") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("list worktrees of %s: %w", repo, err)
	}
	var list []worktreeEntry
	for _, line := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(line, "worktree "); ok {
			list = append(list, worktreeEntry{Path: p})
			continue
		}
		if len(list) == 0 {
			continue
		}
		w := &list[len(list)-1]
		switch {
		case strings.HasPrefix(line, "branch "):
			w.Branch = strings.TrimPrefix(line, "branch ")
		case line == "locked" || strings.HasPrefix(line, "locked "):
			w.Locked, w.Reason = true, strings.TrimPrefix(strings.TrimPrefix(line, "locked"), " ")
		}
	}
	return list, nil
}

// lockRepo serialises this suite's worktree changes in one repository
// (git worktree add, remove, prune and the listings that decide them):
// git itself does not, and a listing taken while another process adds a
// worktree fails. The lock lives in the suite's state folder, keyed by the
// repository's path; the kernel releases it when the process dies.
func (m *Manager) lockRepo(ctx context.Context, repo string) (unlock func(), err error) {
	sum := sha256.Sum256([]byte(filepath.Clean(repo)))
	path := filepath.Join(m.Profile.StateDir(m.Home), "locks", "repo-"+hex.EncodeToString(sum[:6])+".lock")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create lock folder %s: %w", filepath.Dir(path), err)
	}
	fl := flock.New(path)
	wctx, cancel := context.WithTimeout(ctx, LockWait)
	defer cancel()
	if ok, err := fl.TryLockContext(wctx, 20*time.Millisecond); err != nil || !ok {
		return nil, fmt.Errorf("lock the worktrees of %s (%s): another sandbox command holds it: %w", repo, path, errors.Join(err, wctx.Err()))
	}
	return func() { fl.Unlock() }, nil
}

// worktreeAt returns git's entry for the worktree at path in repo.
func (m *Manager) worktreeAt(ctx context.Context, repo, path string) (worktreeEntry, bool, error) {
	list, err := m.worktrees(ctx, repo)
	if err != nil {
		return worktreeEntry{}, false, err
	}
	for _, w := range list {
		if samePath(w.Path, path) {
			return w, true, nil
		}
	}
	return worktreeEntry{}, false, nil
}

// removeWorktree removes the worktree at path that git lists in repo: its
// folder and git's record. A worktree that `git worktree add` left locked
// ("initializing", after a kill) is removed too; another lock only with
// force. It never deletes a folder git does not list as a worktree of repo.
func (m *Manager) removeWorktree(ctx context.Context, repo string, w worktreeEntry, force bool) error {
	args := []string{"worktree", "remove", "--force", w.Path}
	if w.Locked && (force || w.Reason == "initializing") {
		args = []string{"worktree", "remove", "--force", "--force", w.Path}
	}
	_, err := m.git(ctx, repo, args...)
	return err
}
