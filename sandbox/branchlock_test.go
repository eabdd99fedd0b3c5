package sandbox

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A create killed while `git worktree add -b` held the new branch's ref
// lock leaves git's refs/heads/<branch>.lock in the main checkout, which no
// git command removes and which refuses the name to every later create
// (found by the e2e TestKillDuringCreateAndDestroy). destroy -force removes
// that one file, and only for a branch its own sandbox was making when a run
// of it was killed.
func TestDestroyForceAndAStaleBranchLock(t *testing.T) {
	for _, tc := range []struct {
		name          string
		branchMade    bool // git made the branch before it was killed (it locks it again to point the worktree's HEAD at it)
		branchCreated bool // the sandbox was making its own branch
		phase         string
		removed       bool // destroy removes the lock
		noFolder      bool
	}{
		{name: "branch made", branchMade: true, branchCreated: true, phase: phaseCreating, removed: true},
		{name: "branch not made yet", branchCreated: true, phase: phaseCreating, removed: true},
		{name: "a destroy killed after it removed the folder", branchMade: true, branchCreated: true, phase: phaseDestroying, removed: true, noFolder: true},
		{name: "an existing branch the sandbox did not make", branchMade: true, phase: phaseCreating},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := lcSetup(t)
			const name = "feat-a"
			id := "ktrdr--" + name
			head := lcGit(t, e.main, "rev-parse", "HEAD")
			_, err := e.m.Registry().Register(t.Context(), id, Instance{Path: e.wt(name), CreatedAt: "2026-03-01T11:00:00Z", IsWorktree: true, ParentRepo: e.main}, 0, nil)
			require.NoError(t, err)
			require.NoError(t, e.m.writeMeta(id, meta{Branch: name, BranchCreated: tc.branchCreated, Head: head, Phase: tc.phase, FolderMade: true}))
			if !tc.noFolder {
				require.NoError(t, os.Mkdir(e.wt(name), 0o755))
			}
			if tc.branchMade {
				lcGit(t, e.main, "branch", name, head)
			}
			lock := filepath.Join(e.main, ".git", "refs", "heads", name+".lock")
			require.NoError(t, os.WriteFile(lock, []byte(head+"\n"), 0o644))

			var events []Event
			e.m.Events = func(ev Event) { events = append(events, ev) }
			_, err = e.m.Destroy(t.Context(), DestroyOptions{Name: name, Force: true})
			require.NoError(t, err)
			assert.NotContains(t, e.registry(t), id)
			if !tc.removed {
				assert.FileExists(t, lock, "not the sandbox's branch: its lock is not the suite's to remove")
				assert.True(t, e.branchExists(t, name), "nor is the branch")
				return
			}
			assert.NoFileExists(t, lock)
			assert.Contains(t, events, Event{Kind: EvRefLockRemoved, Path: lock, Branch: name})
			lcAssertGone(t, e, name)
			// And the name can be used again.
			_, err = e.m.Create(t.Context(), CreateOptions{Name: name, Dir: e.main})
			require.NoError(t, err)
		})
	}
}

// A destroy killed while `git branch -D` held packed-refs.lock leaves it,
// and git then refuses every ref deletion in the repository. destroy -force
// removes it only when it was made after the killed run recorded itself and
// stays unchanged while watched; an older one is git's to name.
func TestDestroyForceAndAStalePackedRefsLock(t *testing.T) {
	defer func(d time.Duration) { packedRefsLockWatch = d }(packedRefsLockWatch)
	packedRefsLockWatch = 100 * time.Millisecond
	for _, tc := range []struct {
		name    string
		older   bool // the lock predates the killed run's record
		removed bool
	}{
		{name: "left by the killed run", removed: true},
		{name: "older than the killed run", older: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := lcSetup(t)
			const name = "feat-a"
			id := "ktrdr--" + name
			c := e.create(t, CreateOptions{Name: name})
			require.NoError(t, e.m.writeMeta(id, meta{Branch: name, BranchCreated: true, Phase: phaseDestroying}))
			lock := filepath.Join(e.main, ".git", "packed-refs.lock")
			newFile := filepath.Join(e.main, ".git", "packed-refs.new") // what git writes under the lock
			for _, f := range []string{lock, newFile} {
				require.NoError(t, os.WriteFile(f, []byte("# pack-refs with: peeled\n"), 0o644))
				at := e.m.metaTime(id).Add(time.Second)
				if tc.older {
					at = e.m.metaTime(id).Add(-time.Hour)
				}
				require.NoError(t, os.Chtimes(f, at, at))
			}

			_, err := e.m.Destroy(t.Context(), DestroyOptions{Name: name, Force: true})
			if tc.removed {
				require.NoError(t, err)
				assert.NoFileExists(t, lock)
				assert.NoFileExists(t, newFile)
				lcAssertGone(t, e, name)
				return
			}
			require.Error(t, err, "git refuses to delete the branch while the lock is there")
			assert.Contains(t, err.Error(), "packed-refs.lock")
			assert.FileExists(t, lock, "not the killed run's: not the suite's to remove")
			assert.Contains(t, e.registry(t), c.ID, "the entry stays for the next destroy")
			assert.FileExists(t, newFile)
			require.NoError(t, os.Remove(lock))
			require.NoError(t, os.Remove(newFile))
			_, err = e.m.Destroy(t.Context(), DestroyOptions{Name: name, Force: true})
			require.NoError(t, err)
			lcAssertGone(t, e, name)
		})
	}
}
