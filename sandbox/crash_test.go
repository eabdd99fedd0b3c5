package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lcAssertGone checks that nothing of sandbox name is left: folder, git's
// record, branch, registry entry, teardown copy.
func lcAssertGone(t *testing.T, e *lcEnv, name string) {
	t.Helper()
	id := "ktrdr--" + name
	assert.NoDirExists(t, e.wt(name))
	assert.NotContains(t, lcGit(t, e.main, "worktree", "list", "--porcelain"), e.wt(name), "git forgot the worktree")
	assert.False(t, e.branchExists(t, name), "the branch the sandbox created is deleted")
	assert.NotContains(t, e.registry(t), id)
	assert.NoDirExists(t, e.instDir(id))
}

// killedCreate leaves what a create killed at the given step leaves: the
// registry entry and the record written before git acted, then git's part.
func killedCreate(t *testing.T, e *lcEnv, name string, step string) {
	t.Helper()
	id := "ktrdr--" + name
	_, err := e.m.Registry().Register(t.Context(), id, Instance{Path: e.wt(name), CreatedAt: "2026-03-01T11:00:00Z", IsWorktree: true, ParentRepo: e.main}, 0, nil)
	require.NoError(t, err)
	if step == "registered" {
		return
	}
	require.NoError(t, e.m.writeMeta(id, meta{Branch: name, BranchCreated: true, Phase: phaseCreating}))
	switch step {
	case "recorded":
	case "folder made": // git worktree add makes the folder before its record
		lcGit(t, e.main, "branch", name)
		require.NoError(t, os.MkdirAll(e.wt(name), 0o755))
	case "git link written":
		lcGit(t, e.main, "branch", name)
		lcWrite(t, filepath.Join(e.wt(name), ".git"), "gitdir: "+filepath.Join(e.main, ".git", "worktrees", "ktrdr--"+name)+"\n")
	case "branch made": // git worktree add -b runs git branch first
		lcGit(t, e.main, "branch", name)
	case "ref locked": // killed while git wrote the new branch's ref
		lcWrite(t, filepath.Join(e.main, ".git", "refs", "heads", name+".lock"), "")
	case "worktree locked": // git worktree add holds the worktree locked until its checkout is done
		lcGit(t, e.main, "worktree", "add", "-q", "-b", name, e.wt(name))
		lcGit(t, e.main, "worktree", "lock", "--reason", "initializing", e.wt(name))
	case "locked, no folder yet":
		lcGit(t, e.main, "worktree", "add", "-q", "-b", name, e.wt(name))
		lcGit(t, e.main, "worktree", "lock", "--reason", "initializing", e.wt(name))
		require.NoError(t, os.RemoveAll(e.wt(name)))
	case "record half-written": // killed before git wrote the record's commondir: git can no longer read the folder's .git file
		lcGit(t, e.main, "worktree", "add", "-q", "-b", name, e.wt(name))
		lcGit(t, e.main, "worktree", "lock", "--reason", "initializing", e.wt(name))
		require.NoError(t, os.Remove(filepath.Join(e.main, ".git", "worktrees", filepath.Base(e.wt(name)), "commondir")))
	case "record written, commondir empty": // git cannot even list worktrees now
		lcGit(t, e.main, "worktree", "add", "-q", "-b", name, e.wt(name))
		lcGit(t, e.main, "worktree", "lock", "--reason", "initializing", e.wt(name))
		require.NoError(t, os.WriteFile(filepath.Join(e.main, ".git", "worktrees", filepath.Base(e.wt(name)), "commondir"), nil, 0o644))
	case "record begun, no path yet":
		lcGit(t, e.main, "branch", name)
		rec := filepath.Join(e.main, ".git", "worktrees", filepath.Base(e.wt(name)))
		require.NoError(t, os.MkdirAll(rec, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(rec, "locked"), []byte("initializing"), 0o644))
		require.NoError(t, os.Mkdir(e.wt(name), 0o755))
	case "locked, no link yet": // killed after git recorded the worktree, before it wrote the folder's .git file
		lcGit(t, e.main, "worktree", "add", "-q", "-b", name, e.wt(name))
		lcGit(t, e.main, "worktree", "lock", "--reason", "initializing", e.wt(name))
		require.NoError(t, os.RemoveAll(e.wt(name)))
		require.NoError(t, os.Mkdir(e.wt(name), 0o755))
	case "worktree made":
		lcGit(t, e.main, "worktree", "add", "-q", "-b", name, e.wt(name))
	case "env written":
		lcGit(t, e.main, "worktree", "add", "-q", "-b", name, e.wt(name))
		require.NoError(t, e.m.Profile.WriteEnv(filepath.Join(e.wt(name), ".env.sandbox"), e.m.Profile.NewEnv(name, 1, "", lcNow(), false)))
	default:
		t.Fatalf("unknown step %q", step)
	}
}

func TestDestroyForceFinishesACreateKilledAtAnyStep(t *testing.T) {
	for _, step := range []string{"registered", "recorded", "folder made", "git link written", "ref locked", "branch made", "worktree locked", "locked, no folder yet", "record half-written", "record written, commondir empty", "record begun, no path yet", "locked, no link yet", "worktree made", "env written"} {
		t.Run(step, func(t *testing.T) {
			e := lcSetup(t)
			killedCreate(t, e, "feat-a", step)

			// Every command reads the state without error.
			_, err := e.m.List(t.Context())
			require.NoError(t, err)
			_, err = e.m.Status(t.Context(), StatusOptions{Dir: e.main})
			var ns *NotSandboxError
			require.ErrorAs(t, err, &ns, "the main checkout is not a sandbox")

			d, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a", Force: true})
			require.NoError(t, err)
			assert.Equal(t, "ktrdr--feat-a", d.ID)
			lcAssertGone(t, e, "feat-a")
			assert.NoDirExists(t, filepath.Join(e.main, ".git", "worktrees", "ktrdr--feat-a"), "no record of git's is left")

			// And the name can be used again.
			c := e.create(t, CreateOptions{Name: "feat-a"})
			assert.Equal(t, lcWantSlot(t, c.Skipped, 1), c.Slot, "its slot is free again")
		})
	}
}

// killedDestroy leaves what a destroy killed while git deleted the worktree
// leaves: the record of the proof, and a folder without its .git file.
func TestDestroyForceFinishesADestroyKilledHalfWay(t *testing.T) {
	for _, step := range []string{"recorded", "git deleting files", "folder gone", "entry left"} {
		t.Run(step, func(t *testing.T) {
			e := lcSetup(t)
			c := e.create(t, CreateOptions{Name: "feat-a"})
			id := c.ID
			mt := e.m.readMeta(id)
			mt.Phase = phaseDestroying
			require.NoError(t, e.m.writeMeta(id, mt))
			switch step {
			case "git deleting files":
				require.NoError(t, os.Remove(filepath.Join(c.Path, ".env.sandbox")))
				require.NoError(t, os.Remove(filepath.Join(c.Path, ".git")))
			case "folder gone":
				lcGit(t, e.main, "worktree", "remove", "--force", c.Path)
			case "entry left":
				lcGit(t, e.main, "worktree", "remove", "--force", c.Path)
				lcGit(t, e.main, "branch", "-D", "feat-a")
				require.NoError(t, os.RemoveAll(e.instDir(id)))
			}
			_, err := e.m.List(t.Context())
			require.NoError(t, err)

			_, err = e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a", Force: true})
			require.NoError(t, err)
			lcAssertGone(t, e, "feat-a")
		})
	}
}

func TestDestroyForceKeepsAFolderACreateDidNotMake(t *testing.T) {
	e := lcSetup(t)
	killedCreate(t, e, "feat-a", "recorded")
	lcWrite(t, filepath.Join(e.wt("feat-a"), "mine.txt"), "precious\n")
	_, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a", Force: true})
	var np *NotProvenError
	require.ErrorAs(t, err, &np)
	assert.Equal(t, map[string]string{"mine.txt": "precious\n"}, lcFiles(t, e.wt("feat-a")))
}

func TestDestroyByNameRemovesALeftTeardownCopy(t *testing.T) {
	e := lcSetup(t)
	require.NoError(t, e.m.writeMeta("ktrdr--feat-a", meta{Branch: "feat-a"}))
	d, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a"})
	require.NoError(t, err)
	assert.True(t, d.AlreadyGone)
	assert.NoDirExists(t, e.instDir("ktrdr--feat-a"))
}

func TestCreateUndoRemovesOnlyWhatItMade(t *testing.T) {
	e := lcSetup(t)
	path := e.wt("feat-a")
	// A folder appears at the worktree's path after create first looked
	// (another process, a person): create's own mkdir fails, and the undo
	// leaves that folder, and everything else, alone.
	e.r.afterGit = func(c driver.Cmd) {
		if slices.Contains(c.Args, "show-ref") {
			if !dirExists(path) {
				lcWrite(t, filepath.Join(path, "mine.txt"), "precious\n")
			}
		}
	}
	before := e.snapshot(t)
	_, err := e.m.Create(t.Context(), CreateOptions{Name: "feat-a", Dir: e.main})
	var de *DirExistsError
	require.ErrorAs(t, err, &de)
	e.r.afterGit = nil
	data, err := os.ReadFile(filepath.Join(path, "mine.txt"))
	require.NoError(t, err)
	assert.Equal(t, "precious\n", string(data))
	after := e.snapshot(t)
	assert.Equal(t, before.Branches, after.Branches)
	assert.Equal(t, before.Worktrees, after.Worktrees)
	assert.Equal(t, before.Registry, after.Registry)
	assert.Empty(t, after.Instances)
}

func TestCreateRefusesBranchNamesGitReadsOtherwise(t *testing.T) {
	tests := []struct {
		branch string
		reason string
	}{
		{"@{-1}", `git reads it as "prev"`},
		{"refs/heads/main", "ambiguous with git's own ref names"},
		{"heads/x", "ambiguous"},
		{"v1", "refs/tags/v1"},
		{"origin/feat", "refs/remotes/origin/feat"},
	}
	for _, tt := range tests {
		t.Run(tt.branch, func(t *testing.T) {
			e := lcSetup(t)
			// A previous branch with an unpushed commit: @{-1} names it.
			lcGit(t, e.main, "checkout", "-q", "-b", "prev")
			lcWrite(t, filepath.Join(e.main, "work.txt"), "unpushed\n")
			lcGit(t, e.main, "add", "work.txt")
			lcGit(t, e.main, "commit", "-q", "-m", "unpushed work")
			lcGit(t, e.main, "checkout", "-q", "main")
			lcGit(t, e.main, "tag", "v1")
			lcGit(t, e.main, "update-ref", "refs/remotes/origin/feat", "HEAD")
			before := e.snapshot(t)
			prevTip := lcGit(t, e.main, "rev-parse", "prev")

			_, err := e.m.Create(t.Context(), CreateOptions{Name: "feat-a", Branch: tt.branch, Dir: e.main})
			var be *BranchNameError
			require.ErrorAs(t, err, &be)
			assert.Contains(t, err.Error(), tt.reason)
			assert.Equal(t, before, e.snapshot(t), "nothing is made or removed")
			assert.Equal(t, prevTip, lcGit(t, e.main, "rev-parse", "prev"), "the previous branch keeps its commit")
		})
	}
}

func TestDestroyProvesTheFolderIsTheInstances(t *testing.T) {
	t.Run("a worktree of an unrelated repository", func(t *testing.T) {
		e := lcSetup(t)
		other := filepath.Join(e.root, "other")
		lcRepo(t, other, true)
		victim := filepath.Join(e.dev, "ktrdr--feat-a")
		lcGit(t, other, "worktree", "add", "-q", "-b", "theirs", victim)
		lcWrite(t, filepath.Join(victim, "data", "eurusd.csv"), "1,2,3\n")
		_, err := e.m.Registry().Register(t.Context(), "ktrdr--feat-a", Instance{Path: victim, CreatedAt: "2026-03-01T11:00:00Z", IsWorktree: true, ParentRepo: e.main}, 0, nil)
		require.NoError(t, err)
		before := lcFiles(t, victim)

		for _, force := range []bool{false, true} {
			_, err = e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a", Force: force})
			var np *NotProvenError
			require.ErrorAs(t, err, &np)
			assert.False(t, np.Listed)
		}
		assert.Equal(t, before, lcFiles(t, victim))
		assert.Contains(t, e.registry(t), "ktrdr--feat-a")
		assert.Empty(t, e.r.composeCalls("down"), "nothing is torn down")

		// -keepWorktree forgets the sandbox and keeps the folder.
		_, err = e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a", KeepWorktree: true})
		require.NoError(t, err)
		assert.Equal(t, before, lcFiles(t, victim))
		assert.NotContains(t, e.registry(t), "ktrdr--feat-a")
	})
	t.Run("a worktree that holds another instance's env file", func(t *testing.T) {
		e := lcSetup(t)
		c := e.create(t, CreateOptions{Name: "feat-a"})
		require.NoError(t, e.m.Profile.WriteEnv(filepath.Join(c.Path, ".env.sandbox"), e.m.Profile.NewEnv("feat-b", 2, "", lcNow(), false)))
		before := lcFiles(t, c.Path)
		_, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a", Force: true})
		var np *NotProvenError
		require.ErrorAs(t, err, &np)
		assert.True(t, np.Listed)
		assert.Equal(t, before, lcFiles(t, c.Path))
	})
}

// Files git ignores in the checkout's data folders are named and refused
// without -force: in the folders the stack mounts, and in data/, models/
// and strategies/ also when the stack mounts the shared folders instead.
func TestDestroyRefusesToLoseIgnoredFilesInDataFolders(t *testing.T) {
	cases := []struct {
		name   string
		shared bool // the shared folders exist when the sandbox is made
	}{
		{"the stack mounts the checkout's folders", false},
		{"the stack mounts the shared folders", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := lcSetup(t)
			if c.shared {
				for _, d := range []string{"data", "models", "strategies"} {
					require.NoError(t, os.MkdirAll(filepath.Join(e.home, ".ktrdr", "shared", d), 0o755))
				}
			}
			lcWrite(t, filepath.Join(e.main, ".gitignore"), ".env.sandbox\n/data/\n/models/\n/strategies/\n*.log\n")
			lcGit(t, e.main, "commit", "-q", "-am", "ignore data")
			cr := e.create(t, CreateOptions{Name: "feat-a"})
			env, err := e.m.Profile.ReadEnv(filepath.Join(cr.Path, ".env.sandbox"))
			require.NoError(t, err)
			require.Equal(t, c.shared, env.SharedRoot != "", "the sandbox mounts the shared folders")
			lcGit(t, cr.Path, "push", "-q", ".", "HEAD:refs/heads/kept") // its commits are elsewhere too
			lcWrite(t, filepath.Join(cr.Path, "data", "eurusd.csv"), "1,2,3\n")
			lcWrite(t, filepath.Join(cr.Path, "models", "m.pt"), "weights\n")
			lcWrite(t, filepath.Join(cr.Path, "strategies", "s.yaml"), "name: s\n")
			lcWrite(t, filepath.Join(cr.Path, "build.log"), "not in a data folder\n")
			before := lcFiles(t, cr.Path)

			_, err = e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a"})
			var we *WouldLoseError
			require.ErrorAs(t, err, &we)
			assert.Equal(t, []string{"data/eurusd.csv", "models/m.pt", "strategies/s.yaml"}, we.Ignored)
			assert.Empty(t, we.Changes)
			assert.Contains(t, err.Error(), "ignored by git, in a mounted or shared-data folder: data/eurusd.csv")
			assert.Equal(t, before, lcFiles(t, cr.Path), "nothing is deleted")
			assert.Contains(t, e.registry(t), "ktrdr--feat-a")

			_, err = e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a", Force: true})
			require.NoError(t, err)
			assert.NoDirExists(t, cr.Path)
		})
	}
}

// Without ignored files in them, the data folders do not hold a destroy up.
func TestDestroyWithEmptyDataFoldersNeedsNoForce(t *testing.T) {
	e := lcSetup(t)
	for _, d := range []string{"data", "models", "strategies"} {
		require.NoError(t, os.MkdirAll(filepath.Join(e.home, ".ktrdr", "shared", d), 0o755))
	}
	cr := e.create(t, CreateOptions{Name: "feat-a"})
	lcGit(t, cr.Path, "push", "-q", ".", "HEAD:refs/heads/kept")
	_, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a"})
	require.NoError(t, err)
	assert.NoDirExists(t, cr.Path)
}

func TestConcurrentCreatesTakeDistinctSlots(t *testing.T) {
	e := lcSetup(t)
	const n = 8
	var wg sync.WaitGroup
	slots := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &Manager{Profile: KTRDR(), Home: e.home, Runner: e.r, Now: lcNow}
			c, err := m.Create(t.Context(), CreateOptions{Name: "par-" + string(rune('a'+i)), Dir: e.main})
			errs[i] = err
			if err == nil {
				slots[i] = c.Slot
			}
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
	}
	slices.Sort(slots)
	assert.Len(t, slices.Compact(slices.Clone(slots)), n, "distinct slots: %v", slots)
}

func TestDestroyForceForgetsASandboxWhoseEngineIsGone(t *testing.T) {
	e := lcSetup(t)
	c := e.create(t, CreateOptions{Name: "feat-a"})
	// The sandbox runs on another engine, which no longer answers.
	require.NoError(t, e.m.Registry().Update(t.Context(), func(m map[string]Instance) error {
		in := m[c.ID]
		in.Engine = Engine{Context: "big", Host: "10.251.9.2"}
		m[c.ID] = in
		return nil
	}))
	e.r.dockerFn = func(cmd driver.Cmd) any {
		if slices.Contains(cmd.Args, "--context") {
			return &driver.ExitError{Cmd: "docker --context big ps", Code: 1, Stderr: "Cannot connect to the Docker daemon at tcp://10.251.9.2:2375"}
		}
		return nil
	}
	_, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a"})
	var ue *EngineUnreachableError
	require.ErrorAs(t, err, &ue, "without -force nothing is forgotten")
	assert.DirExists(t, c.Path)

	d, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a", Force: true})
	require.NoError(t, err)
	assert.False(t, d.StackRemoved)
	assert.Contains(t, d.LeftOnEngine, "docker --context big compose -p ktrdr--feat-a down --volumes")
	lcAssertGone(t, e, "feat-a")
}
