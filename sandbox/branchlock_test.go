package sandbox

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A create killed while `git worktree add -b` held the new branch's ref
// lock leaves git's refs/heads/<branch>.lock in the main checkout, which no
// git command removes and the suite does not delete (it deletes nothing in
// the main checkout's .git). Found by the e2e TestKillDuringCreateAndDestroy.
func TestDestroyForceAndAStaleBranchLock(t *testing.T) {
	for _, tc := range []struct {
		name       string
		branchMade bool // git made the branch before it was killed (it locks it again to point the worktree's HEAD at it)
	}{
		{name: "branch made", branchMade: true},
		{name: "branch not made yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := lcSetup(t)
			const name = "feat-a"
			id := "ktrdr--" + name
			head := lcGit(t, e.main, "rev-parse", "HEAD")
			_, err := e.m.Registry().Register(t.Context(), id, Instance{Path: e.wt(name), CreatedAt: "2026-03-01T11:00:00Z", IsWorktree: true, ParentRepo: e.main}, 0, nil)
			require.NoError(t, err)
			require.NoError(t, e.m.writeMeta(id, meta{Branch: name, BranchCreated: true, Head: head, Phase: phaseCreating, FolderMade: true}))
			require.NoError(t, os.Mkdir(e.wt(name), 0o755))
			if tc.branchMade {
				lcGit(t, e.main, "branch", name, head)
			}
			lock := filepath.Join(e.main, ".git", "refs", "heads", name+".lock")
			require.NoError(t, os.WriteFile(lock, []byte(head+"\n"), 0o644))

			_, err = e.m.Destroy(t.Context(), DestroyOptions{Name: name, Force: true})
			if tc.branchMade {
				// The branch cannot be deleted: destroy says why, naming the
				// lock, and keeps the entry and the record that make the next
				// destroy delete the branch (before, it reported success and
				// forgot the branch).
				require.Error(t, err)
				assert.Contains(t, err.Error(), "delete branch "+name)
				assert.Contains(t, err.Error(), lock)
				assert.Contains(t, e.registry(t), id)
				assert.Equal(t, phaseCreating, e.m.readMeta(id).Phase)
				assert.True(t, e.branchExists(t, name))
				assert.NoDirExists(t, e.wt(name), "the folder is removed before the branch")

				// A person removes the lock, as git's message says; destroy finishes.
				require.NoError(t, os.Remove(lock))
				_, err = e.m.Destroy(t.Context(), DestroyOptions{Name: name, Force: true})
				require.NoError(t, err)
				lcAssertGone(t, e, name)
				return
			}
			// Nothing of the suite's is left; git's lock stays, and the next
			// create of that name fails with git's message, naming it.
			require.NoError(t, err)
			lcAssertGone(t, e, name)
			assert.FileExists(t, lock, "the suite deletes nothing in the main checkout's .git")
			_, err = e.m.Create(t.Context(), CreateOptions{Name: name, Dir: e.main})
			require.Error(t, err)
			assert.Contains(t, err.Error(), lock)
			lcAssertGone(t, e, name)
		})
	}
}
