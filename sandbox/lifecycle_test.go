package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/ktrdr/sandboxkit/sandbox/envfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The lifecycle tests run real git in temporary repositories and fake only
// docker: `docker ps` answers with canned output, compose is always v2, and
// every docker call is recorded.

func lcNow() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

// lcWantSlot is the slot the allocator must have picked: the lowest one from
// `from` on that it did not skip. The allocator bind-tests every port, and
// another process (a running stack, another package's port tests) may hold
// slot 1's ports for a moment; skipping it then is right, so the tests
// follow the allocator's stated reason instead of failing.
func lcWantSlot(t *testing.T, skipped map[int]string, from int) int {
	t.Helper()
	s := from
	for skipped[s] != "" {
		t.Logf("slot %d skipped: %s", s, skipped[s])
		s++
	}
	return s
}

// lcSlot1 is slot 1's port table, as the contract states it.
var lcSlot1 = map[string]int{
	"KTRDR_API_PORT": 8001, "KTRDR_DB_PORT": 5433, "KTRDR_GRAFANA_PORT": 3001, "KTRDR_JAEGER_UI_PORT": 16687,
	"KTRDR_JAEGER_OTLP_GRPC_PORT": 4327, "KTRDR_JAEGER_OTLP_HTTP_PORT": 4328, "KTRDR_PROMETHEUS_PORT": 9091,
	"KTRDR_WORKER_PORT_1": 5010, "KTRDR_WORKER_PORT_2": 5011, "KTRDR_WORKER_PORT_3": 5012, "KTRDR_WORKER_PORT_4": 5013,
}

// lcRunner passes git to ExecRunner and fakes docker.
type lcRunner struct {
	mu       sync.Mutex
	ps       string                 // what `docker ps -a …` prints
	docker   []driver.Cmd           // every docker call
	afterGit func(c driver.Cmd)     // called after each git command returns (optional)
	dockerFn func(c driver.Cmd) any // overrides the answer to a docker call when it returns non-nil (string or error)
}

func (r *lcRunner) Run(ctx context.Context, c driver.Cmd) ([]byte, error) {
	if c.Name == "git" {
		out, err := driver.ExecRunner{}.Run(ctx, c)
		r.mu.Lock()
		hook := r.afterGit
		r.mu.Unlock()
		if hook != nil {
			hook(c)
		}
		return out, err
	}
	r.mu.Lock()
	r.docker = append(r.docker, c)
	ps, fn := r.ps, r.dockerFn
	r.mu.Unlock()
	if c.Name != "docker" {
		return nil, fmt.Errorf("lcRunner: unexpected program %s", c.Name)
	}
	if fn != nil {
		switch a := fn(c).(type) {
		case string:
			return []byte(a), nil
		case error:
			return nil, a
		}
	}
	switch {
	case slices.Equal(c.Args, []string{"compose", "version", "--short"}):
		return []byte("v2.40.3\n"), nil
	case len(c.Args) > 0 && c.Args[0] == "ps":
		return []byte(ps), nil
	}
	return nil, nil
}

func (r *lcRunner) setPS(lines ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ps = strings.Join(lines, "\n") + "\n"
}

func (r *lcRunner) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.docker = nil
}

// psCalls counts `docker ps -a` calls (the stack-state query).
func (r *lcRunner) psCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.docker {
		if len(c.Args) > 1 && c.Args[0] == "ps" && c.Args[1] == "-a" {
			n++
		}
	}
	return n
}

// composeCalls returns the recorded compose calls whose subcommand is sub.
func (r *lcRunner) composeCalls(sub string) []driver.Cmd {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []driver.Cmd
	for _, c := range r.docker {
		if len(c.Args) > 0 && c.Args[0] == "compose" && slices.Contains(c.Args, sub) {
			out = append(out, c)
		}
	}
	return out
}

// lcEnv is a developer's machine: a HOME, a dev folder with the main checkout.
type lcEnv struct {
	root, dev, main, home string
	r                     *lcRunner
	m                     *Manager
}

func lcGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %s: %s", strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

func lcWrite(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

// lcRepo makes a git repository at dir with one commit; withCompose adds the
// project's sandbox compose file.
func lcRepo(t *testing.T, dir string, withCompose bool) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	lcGit(t, dir, "init", "-q", "-b", "main")
	lcGit(t, dir, "config", "user.name", "Test")
	lcGit(t, dir, "config", "user.email", "test@example.com")
	lcWrite(t, filepath.Join(dir, ".gitignore"), ".env.sandbox\n")
	lcWrite(t, filepath.Join(dir, "README.md"), "ktrdr\n")
	if withCompose {
		data, err := os.ReadFile(filepath.Join("..", "docker-compose.sandbox.yml"))
		require.NoError(t, err)
		lcWrite(t, filepath.Join(dir, "docker-compose.sandbox.yml"), string(data))
	}
	lcGit(t, dir, "add", "-A")
	lcGit(t, dir, "commit", "-q", "-m", "initial")
}

func lcSetup(t *testing.T) *lcEnv {
	t.Helper()
	// Hermetic git: no user or system config of this machine.
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	root, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	e := &lcEnv{root: root, dev: filepath.Join(root, "dev"), home: filepath.Join(root, "home"), r: &lcRunner{}}
	e.main = filepath.Join(e.dev, "ktrdr2")
	require.NoError(t, os.MkdirAll(e.home, 0o755))
	lcRepo(t, e.main, true)
	e.m = &Manager{Profile: KTRDR(), Home: e.home, Runner: e.r, Events: func(e Event) { t.Logf("event %+v", e) }, Log: t.Output(), Now: lcNow}
	return e
}

func (e *lcEnv) wt(name string) string { return filepath.Join(e.dev, "ktrdr--"+name) }

func (e *lcEnv) instDir(id string) string {
	return filepath.Join(e.home, ".ktrdr", "sandbox", "instances", id)
}

func (e *lcEnv) create(t *testing.T, o CreateOptions) *Created {
	t.Helper()
	if o.Dir == "" {
		o.Dir = e.main
	}
	c, err := e.m.Create(t.Context(), o)
	require.NoError(t, err)
	return c
}

func (e *lcEnv) registry(t *testing.T) map[string]Instance {
	t.Helper()
	in, err := e.m.Registry().Instances()
	require.NoError(t, err)
	return in
}

func (e *lcEnv) branchExists(t *testing.T, branch string) bool {
	t.Helper()
	err := exec.Command("git", "-C", e.main, "show-ref", "--verify", "--quiet", "refs/heads/"+branch).Run()
	return err == nil
}

// lcState is everything a lifecycle command may leave behind.
type lcState struct {
	Dev       []string            // entries of the dev folder
	Branches  string              // git branch list
	Worktrees string              // git worktree list
	Registry  map[string]Instance // registry entries
	Instances []string            // entries of HOME/.ktrdr/sandbox/instances
	Files     map[string]string   // every file under the dev folder, outside .git
}

func (e *lcEnv) snapshot(t *testing.T) lcState {
	t.Helper()
	s := lcState{
		Branches:  lcGit(t, e.main, "branch", "-a", "-v", "--no-abbrev"),
		Worktrees: lcGit(t, e.main, "worktree", "list", "--porcelain"),
		Registry:  e.registry(t),
		Files:     map[string]string{},
	}
	ents, _ := os.ReadDir(e.dev)
	for _, d := range ents {
		s.Dev = append(s.Dev, d.Name())
	}
	ents, _ = os.ReadDir(filepath.Join(e.home, ".ktrdr", "sandbox", "instances"))
	for _, d := range ents {
		s.Instances = append(s.Instances, d.Name())
	}
	s.Files = lcFiles(t, e.dev)
	return s
}

// lcFiles maps every file under dir (outside .git folders) to its content.
func lcFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			files[rel] = string(data)
		}
		return nil
	}))
	return files
}

// lcRunning is docker ps output for every service of project in state.
func lcStack(project, instance string, running int) []string {
	var lines []string
	for i, s := range KTRDR().Services {
		state, status := "running", "Up 3 minutes (healthy)"
		if i >= running {
			state, status = "exited", "Exited (3) 2 seconds ago"
		}
		lines = append(lines, lcPSLine(project, s.Name, instance, state, status))
	}
	return lines
}

func TestCreateMakesWorktreeEnvFileRegistryAndTeardownCopy(t *testing.T) {
	e := lcSetup(t)
	head := lcGit(t, e.main, "rev-parse", "HEAD")
	c := e.create(t, CreateOptions{Name: "feat-a"})

	path := e.wt("feat-a")
	assert.Equal(t, "ktrdr--feat-a", c.ID)
	assert.Equal(t, path, c.Path)
	slot := lcWantSlot(t, c.Skipped, 1)
	assert.Equal(t, slot, c.Slot)
	assert.Equal(t, lcSlot1, KTRDR().PortsFor(1))
	assert.Equal(t, KTRDR().PortsFor(slot), c.Ports)
	assert.Equal(t, "feat-a", c.Branch)
	assert.True(t, c.BranchCreated)
	assert.True(t, c.IsWorktree)
	assert.Equal(t, e.main, c.ParentRepo)

	assert.Equal(t, "feat-a", lcGit(t, path, "rev-parse", "--abbrev-ref", "HEAD"))
	assert.Equal(t, head, lcGit(t, path, "rev-parse", "HEAD"), "the new branch starts at the current HEAD")
	assert.Contains(t, lcGit(t, e.main, "worktree", "list", "--porcelain"), "worktree "+path)

	vals, err := envfile.Read(filepath.Join(path, ".env.sandbox"))
	require.NoError(t, err)
	want := map[string]string{
		"INSTANCE_ID": "ktrdr--feat-a", "COMPOSE_PROJECT_NAME": "ktrdr--feat-a", "SLOT_NUMBER": strconv.Itoa(slot),
		"CREATED_AT": "2026-03-01T12:00:00Z", "SANDBOX_VERSION": "1",
	}
	for k, port := range KTRDR().PortsFor(slot) {
		want[k] = strconv.Itoa(port)
	}
	for k, v := range want {
		assert.Equal(t, v, vals[k], k)
	}
	assert.Empty(t, lcGit(t, path, "status", "--porcelain"), "the env file is ignored by git")

	reg := e.registry(t)
	require.Contains(t, reg, "ktrdr--feat-a")
	assert.Equal(t, Instance{Slot: slot, Path: path, CreatedAt: "2026-03-01T12:00:00Z", IsWorktree: true, ParentRepo: e.main}, reg["ktrdr--feat-a"])

	inst := e.instDir("ktrdr--feat-a")
	for _, f := range []string{".env.sandbox", "docker-compose.sandbox.yml", "meta.json"} {
		assert.FileExists(t, filepath.Join(inst, f))
	}
	kept, err := os.ReadFile(filepath.Join(inst, ".env.sandbox"))
	require.NoError(t, err)
	orig, err := os.ReadFile(filepath.Join(path, ".env.sandbox"))
	require.NoError(t, err)
	assert.Equal(t, string(orig), string(kept))

	// A second sandbox, created from inside the first, sits beside the main checkout on the next slot.
	c2 := e.create(t, CreateOptions{Name: "feat-b", Dir: filepath.Join(path)})
	assert.Equal(t, e.wt("feat-b"), c2.Path)
	slot2 := lcWantSlot(t, c2.Skipped, slot+1)
	assert.Equal(t, slot2, c2.Slot)
	assert.Equal(t, e.main, c2.ParentRepo)
	assert.Equal(t, 8000+slot2, c2.Ports["KTRDR_API_PORT"])
}

func TestCreateChecksOutAnExistingBranch(t *testing.T) {
	e := lcSetup(t)
	lcGit(t, e.main, "checkout", "-q", "-b", "feat-e")
	lcWrite(t, filepath.Join(e.main, "e.txt"), "e\n")
	lcGit(t, e.main, "add", "e.txt")
	lcGit(t, e.main, "commit", "-q", "-m", "work on e")
	tip := lcGit(t, e.main, "rev-parse", "HEAD")
	lcGit(t, e.main, "checkout", "-q", "main")

	c := e.create(t, CreateOptions{Name: "feat-e"})
	assert.False(t, c.BranchCreated)
	assert.Equal(t, "feat-e", lcGit(t, c.Path, "rev-parse", "--abbrev-ref", "HEAD"))
	assert.Equal(t, tip, lcGit(t, c.Path, "rev-parse", "HEAD"))

	// -branch names another existing branch.
	lcGit(t, e.main, "branch", "other")
	c2 := e.create(t, CreateOptions{Name: "x2", Branch: "other"})
	assert.Equal(t, "other", lcGit(t, c2.Path, "rev-parse", "--abbrev-ref", "HEAD"))
	assert.False(t, c2.BranchCreated)

	// Destroying it keeps the branch it did not create.
	d, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-e"})
	require.NoError(t, err)
	assert.Empty(t, d.BranchDeleted)
	assert.True(t, e.branchExists(t, "feat-e"))
}

// lcCreateCase is a Create that must be refused.
type lcCreateCase struct {
	name    string
	prepare func(t *testing.T, e *lcEnv) // optional
	opts    CreateOptions
	check   func(t *testing.T, e *lcEnv, err error)
}

func TestCreateRefusalsLeaveNothingBehind(t *testing.T) {
	var tests []lcCreateCase
	for _, bad := range []string{"../x", "-rf", "a b", "x;rm -rf ~", "Feat", "a/b", "", "a--b", "a.", strings.Repeat("a", 41)} {
		tests = append(tests, lcCreateCase{"invalid name " + bad, nil, CreateOptions{Name: bad}, func(t *testing.T, e *lcEnv, err error) {
			var ne *InvalidNameError
			require.ErrorAs(t, err, &ne)
			assert.Equal(t, bad, ne.Name)
			assert.Contains(t, err.Error(), "e.g. feat-a", "the error shows an accepted form")
		}})
	}
	tests = append(tests, []lcCreateCase{
		{"folder exists", func(t *testing.T, e *lcEnv) {
			lcWrite(t, filepath.Join(e.wt("feat-a"), "mine.txt"), "precious\n")
		}, CreateOptions{Name: "feat-a"}, func(t *testing.T, e *lcEnv, err error) {
			var de *DirExistsError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, e.wt("feat-a"), de.Path)
		}},
		{"branch checked out in the main checkout", nil, CreateOptions{Name: "feat-a", Branch: "main"},
			func(t *testing.T, e *lcEnv, err error) {
				var be *BranchInUseError
				require.ErrorAs(t, err, &be)
				assert.Equal(t, "main", be.Branch)
				assert.Equal(t, e.main, be.Worktree)
			}},
		{"branch checked out in another worktree", func(t *testing.T, e *lcEnv) {
			lcGit(t, e.main, "worktree", "add", "-q", "-b", "feat-a", filepath.Join(e.dev, "elsewhere"))
		}, CreateOptions{Name: "feat-a"}, func(t *testing.T, e *lcEnv, err error) {
			var be *BranchInUseError
			require.ErrorAs(t, err, &be)
			assert.Equal(t, filepath.Join(e.dev, "elsewhere"), be.Worktree)
			assert.Contains(t, err.Error(), filepath.Join(e.dev, "elsewhere"))
		}},
		{"slot out of range high", nil, CreateOptions{Name: "feat-a", Slot: 11}, func(t *testing.T, e *lcEnv, err error) {
			var se *SlotError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, 11, se.Slot)
			assert.Contains(t, se.Reason, "out of range")
		}},
		{"slot out of range negative", nil, CreateOptions{Name: "feat-a", Slot: -1}, func(t *testing.T, e *lcEnv, err error) {
			var se *SlotError
			require.ErrorAs(t, err, &se)
			assert.Contains(t, se.Reason, "out of range")
		}},
		{"slot taken", func(t *testing.T, e *lcEnv) {
			e.create(t, CreateOptions{Name: "holder", Slot: 3})
		}, CreateOptions{Name: "feat-a", Slot: 3}, func(t *testing.T, e *lcEnv, err error) {
			var se *SlotError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, 3, se.Slot)
			assert.Contains(t, se.Reason, "ktrdr--holder")
		}},
		{"all slots used", func(t *testing.T, e *lcEnv) {
			for s := 1; s <= 10; s++ {
				_, err := e.m.Registry().Register(t.Context(), fmt.Sprintf("ktrdr--h%d", s),
					Instance{Path: filepath.Join(e.dev, fmt.Sprintf("h%d", s))}, s, nil)
				require.NoError(t, err)
			}
		}, CreateOptions{Name: "feat-a"}, func(t *testing.T, e *lcEnv, err error) {
			var ne *NoFreeSlotError
			require.ErrorAs(t, err, &ne)
			assert.ErrorIs(t, err, ErrNoFreeSlot)
			require.Len(t, ne.Holders, 10)
			for i, h := range ne.Holders {
				assert.Equal(t, i+1, h.Slot)
				assert.Equal(t, fmt.Sprintf("ktrdr--h%d", i+1), h.ID)
			}
			assert.Contains(t, err.Error(), "ktrdr--h10")
		}},
		{"invalid branch name", nil, CreateOptions{Name: "feat-a", Branch: "bad..name"}, func(t *testing.T, e *lcEnv, err error) {
			assert.Contains(t, err.Error(), "invalid branch name")
		}},
		{"branch starting with a hyphen", nil, CreateOptions{Name: "feat-a", Branch: "-D"}, func(t *testing.T, e *lcEnv, err error) {
			assert.Contains(t, err.Error(), "invalid branch name")
		}},
		{"git worktree add fails: ref directory conflict", func(t *testing.T, e *lcEnv) {
			lcGit(t, e.main, "branch", "feat")
		}, CreateOptions{Name: "feat-a", Branch: "feat/x"}, func(t *testing.T, e *lcEnv, err error) {
			var we *WorktreeError
			require.ErrorAs(t, err, &we)
			assert.Equal(t, e.wt("feat-a"), we.Path)
		}},
		{"git worktree add fails: ref locked", func(t *testing.T, e *lcEnv) {
			lcWrite(t, filepath.Join(e.main, ".git", "refs", "heads", "feat-a.lock"), "")
		}, CreateOptions{Name: "feat-a"}, func(t *testing.T, e *lcEnv, err error) {
			var we *WorktreeError
			require.ErrorAs(t, err, &we)
			var ee *driver.ExitError
			assert.ErrorAs(t, err, &ee, "git itself refused")
		}},
		{"git worktree add fails: worktree admin folder taken", func(t *testing.T, e *lcEnv) {
			// git keeps worktree metadata under .git/worktrees/<base name>;
			// a file there makes `git worktree add` fail after it created the branch.
			lcWrite(t, filepath.Join(e.main, ".git", "worktrees"), "not a folder\n")
		}, CreateOptions{Name: "feat-a"}, func(t *testing.T, e *lcEnv, err error) {
			var we *WorktreeError
			require.ErrorAs(t, err, &we)
		}},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := lcSetup(t)
			if tt.prepare != nil {
				tt.prepare(t, e)
			}
			before := e.snapshot(t)
			tt.opts.Dir = e.main
			c, err := e.m.Create(t.Context(), tt.opts)
			require.Error(t, err)
			assert.Nil(t, c)
			t.Log(err)
			tt.check(t, e, err)

			after := e.snapshot(t)
			assert.Equal(t, before, after, "a refused Create leaves nothing behind")
			if tt.opts.Name != "" && ValidateName(tt.opts.Name) == nil {
				assert.NoFileExists(t, filepath.Join(e.main, ".env.sandbox"))
				assert.NotContains(t, after.Registry, "ktrdr--"+tt.opts.Name)
				assert.NoDirExists(t, e.instDir("ktrdr--"+tt.opts.Name))
			}
		})
	}
}

func TestCreateCancelledMidwayLeavesNothingBehind(t *testing.T) {
	// Cancel at each git step after which Create has changed something.
	for _, step := range []string{"worktree add", "rev-parse --verify"} {
		t.Run(step, func(t *testing.T) {
			e := lcSetup(t)
			before := e.snapshot(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			e.r.afterGit = func(c driver.Cmd) {
				if strings.Contains(strings.Join(c.Args, " "), step) {
					cancel()
				}
			}
			_, err := e.m.Create(ctx, CreateOptions{Name: "feat-a", Dir: e.main})
			require.Error(t, err)
			assert.ErrorIs(t, err, context.Canceled)
			e.r.afterGit = nil

			assert.NoDirExists(t, e.wt("feat-a"))
			assert.False(t, e.branchExists(t, "feat-a"), "the branch Create made is deleted")
			assert.Equal(t, before, e.snapshot(t))
		})
	}
}

func TestInitAdoptsClonesAndWorktrees(t *testing.T) {
	e := lcSetup(t)

	clone := filepath.Join(e.dev, "ktrdr-clone")
	lcGit(t, e.dev, "clone", "-q", e.main, clone)
	c, err := e.m.Init(t.Context(), InitOptions{Dir: clone})
	require.NoError(t, err)
	assert.Equal(t, "ktrdr--ktrdr-clone", c.ID, "named after its folder")
	assert.False(t, c.IsWorktree)
	assert.Empty(t, c.ParentRepo)
	assert.Equal(t, clone, c.Path)
	assert.Equal(t, "main", c.Branch)
	assert.Equal(t, lcWantSlot(t, c.Skipped, 1), c.Slot)
	assert.FileExists(t, filepath.Join(clone, ".env.sandbox"))
	assert.Equal(t, Instance{Slot: c.Slot, Path: clone, CreatedAt: "2026-03-01T12:00:00Z"}, e.registry(t)["ktrdr--ktrdr-clone"])
	assert.FileExists(t, filepath.Join(e.instDir(c.ID), ".env.sandbox"))

	wt := filepath.Join(e.dev, "ktrdr--manual")
	lcGit(t, e.main, "worktree", "add", "-q", "-b", "manual", wt)
	c2, err := e.m.Init(t.Context(), InitOptions{Dir: filepath.Join(wt)})
	require.NoError(t, err)
	assert.Equal(t, "ktrdr--manual", c2.ID, "the app prefix of the folder is not doubled")
	assert.True(t, c2.IsWorktree)
	assert.Equal(t, e.main, c2.ParentRepo)
	assert.Equal(t, lcWantSlot(t, c2.Skipped, c.Slot+1), c2.Slot)
	assert.Equal(t, "manual", c2.Branch)
	reg := e.registry(t)["ktrdr--manual"]
	assert.True(t, reg.IsWorktree)
	assert.Equal(t, e.main, reg.ParentRepo)
}

func TestInitRefusals(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, e *lcEnv) string // returns the folder to init
		check   func(t *testing.T, err error)
	}{
		{"already a sandbox (created)", func(t *testing.T, e *lcEnv) string {
			return e.create(t, CreateOptions{Name: "feat-a"}).Path
		}, func(t *testing.T, err error) {
			var ae *AlreadySandboxError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, "ktrdr--feat-a", ae.ID)
		}},
		{"already a sandbox (adopted), from a sub-folder", func(t *testing.T, e *lcEnv) string {
			_, err := e.m.Init(t.Context(), InitOptions{Dir: e.main, Name: "main-box"})
			require.NoError(t, err)
			sub := filepath.Join(e.main, "sub")
			require.NoError(t, os.MkdirAll(sub, 0o755))
			return sub
		}, func(t *testing.T, err error) {
			var ae *AlreadySandboxError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, "ktrdr--main-box", ae.ID)
		}},
		{"registered but its env file deleted", func(t *testing.T, e *lcEnv) string {
			c := e.create(t, CreateOptions{Name: "feat-a"})
			require.NoError(t, os.Remove(filepath.Join(c.Path, ".env.sandbox")))
			return c.Path
		}, func(t *testing.T, err error) {
			var ae *AlreadySandboxError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, "ktrdr--feat-a", ae.ID)
		}},
		{"a git repository of another project", func(t *testing.T, e *lcEnv) string {
			other := filepath.Join(e.dev, "other")
			lcRepo(t, other, false)
			return other
		}, func(t *testing.T, err error) {
			var ne *NotProjectError
			require.ErrorAs(t, err, &ne)
			assert.Contains(t, ne.Reason, "docker-compose.sandbox.yml")
		}},
		{"a plain folder", func(t *testing.T, e *lcEnv) string {
			plain := filepath.Join(e.root, "plain")
			require.NoError(t, os.MkdirAll(plain, 0o755))
			return plain
		}, func(t *testing.T, err error) {
			var ne *NotProjectError
			require.ErrorAs(t, err, &ne)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := lcSetup(t)
			dir := tt.prepare(t, e)
			before := e.snapshot(t)
			c, err := e.m.Init(t.Context(), InitOptions{Dir: dir})
			require.Error(t, err)
			assert.Nil(t, c)
			tt.check(t, err)
			assert.Equal(t, before, e.snapshot(t), "a refused Init changes nothing")
		})
	}
}

func TestDestroyAdoptedCloneKeepsEveryFile(t *testing.T) {
	e := lcSetup(t)
	clone := filepath.Join(e.dev, "clone")
	lcGit(t, e.dev, "clone", "-q", e.main, clone)
	lcGit(t, clone, "config", "user.name", "Test")
	lcGit(t, clone, "config", "user.email", "test@example.com")
	lcWrite(t, filepath.Join(clone, "unpushed.txt"), "work\n")
	lcGit(t, clone, "add", "unpushed.txt")
	lcGit(t, clone, "commit", "-q", "-m", "unpushed work")
	lcWrite(t, filepath.Join(clone, "untracked.txt"), "notes\n")
	lcWrite(t, filepath.Join(clone, "README.md"), "modified\n")
	_, err := e.m.Init(t.Context(), InitOptions{Dir: clone})
	require.NoError(t, err)
	before := lcFiles(t, clone)
	gitBefore := lcGit(t, clone, "log", "--all", "--oneline")
	delete(before, ".env.sandbox")

	d, err := e.m.Destroy(t.Context(), DestroyOptions{Dir: clone})
	require.NoError(t, err)
	assert.True(t, d.KeptCheckout)
	assert.False(t, d.WorktreeRemoved)
	assert.Empty(t, d.BranchDeleted)
	assert.True(t, d.StackRemoved)

	assert.DirExists(t, filepath.Join(clone, ".git"))
	assert.Equal(t, before, lcFiles(t, clone), "only .env.sandbox is removed")
	assert.Equal(t, gitBefore, lcGit(t, clone, "log", "--all", "--oneline"))
	assert.NotContains(t, e.registry(t), "ktrdr--clone")
	assert.NoDirExists(t, e.instDir("ktrdr--clone"))
	down := e.r.composeCalls("down")
	require.Len(t, down, 1)
	assert.Contains(t, down[0].Args, "--volumes")
	assert.Equal(t, []string{filepath.Join(clone, ".env.sandbox")}, lcFlagValues(down[0].Args, "--env-file"))
}

func TestDestroyRefusesToLoseWork(t *testing.T) {
	tests := []struct {
		name      string
		dirty     func(t *testing.T, wt string)
		wantLose  func(t *testing.T, l WouldLose)
		branchDel bool // a forced destroy deletes the created branch
	}{
		{"untracked file", func(t *testing.T, wt string) {
			lcWrite(t, filepath.Join(wt, "notes", "todo.txt"), "x\n")
		}, func(t *testing.T, l WouldLose) {
			assert.Equal(t, []string{"?? notes/todo.txt"}, l.Changes)
			assert.Empty(t, l.Commits)
		}, true},
		{"modified file", func(t *testing.T, wt string) {
			lcWrite(t, filepath.Join(wt, "README.md"), "changed\n")
		}, func(t *testing.T, l WouldLose) {
			assert.Equal(t, []string{" M README.md"}, l.Changes)
		}, true},
		{"commit on no other branch", func(t *testing.T, wt string) {
			lcWrite(t, filepath.Join(wt, "feature.txt"), "x\n")
			lcGit(t, wt, "add", "feature.txt")
			lcGit(t, wt, "commit", "-q", "-m", "unshared feature work")
		}, func(t *testing.T, l WouldLose) {
			assert.Empty(t, l.Changes)
			require.Len(t, l.Commits, 1)
			assert.Contains(t, l.Commits[0], "unshared feature work")
		}, true},
		{"HEAD moved off the created branch, which holds a commit", func(t *testing.T, wt string) {
			lcWrite(t, filepath.Join(wt, "feature.txt"), "x\n")
			lcGit(t, wt, "add", "feature.txt")
			lcGit(t, wt, "commit", "-q", "-m", "left behind on feat-a")
			lcGit(t, wt, "checkout", "-q", "--detach", "HEAD~1")
		}, func(t *testing.T, l WouldLose) {
			assert.Empty(t, l.Changes)
			require.Len(t, l.Commits, 1, "the branch is deleted with the worktree: its commit would be lost")
			assert.Contains(t, l.Commits[0], "left behind on feat-a")
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := lcSetup(t)
			c := e.create(t, CreateOptions{Name: "feat-a"})
			tt.dirty(t, c.Path)
			before := e.snapshot(t)

			_, err := e.m.Destroy(t.Context(), DestroyOptions{Dir: c.Path})
			var le *WouldLoseError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, c.Path, le.Path)
			tt.wantLose(t, le.WouldLose)
			assert.Equal(t, before, e.snapshot(t), "a refused destroy leaves everything")
			assert.Empty(t, e.r.composeCalls("down"), "the stack is not touched either")

			d, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a", Force: true})
			require.NoError(t, err)
			assert.True(t, d.WorktreeRemoved)
			assert.NoDirExists(t, c.Path)
			assert.Equal(t, "feat-a", d.BranchDeleted)
			assert.False(t, e.branchExists(t, "feat-a"))
			assert.NotContains(t, e.registry(t), "ktrdr--feat-a")
			assert.NoDirExists(t, e.instDir("ktrdr--feat-a"))
			assert.NotContains(t, lcGit(t, e.main, "worktree", "list"), c.Path)
		})
	}
}

func TestDestroyCleanWorktreeAndTwiceByName(t *testing.T) {
	e := lcSetup(t)
	c := e.create(t, CreateOptions{Name: "feat-a"})
	sub := filepath.Join(c.Path, "deep", "er")
	require.NoError(t, os.MkdirAll(sub, 0o755))

	d, err := e.m.Destroy(t.Context(), DestroyOptions{Dir: sub})
	require.NoError(t, err)
	assert.Equal(t, &Destroyed{ID: "ktrdr--feat-a", Path: c.Path, StackRemoved: true, WorktreeRemoved: true, BranchDeleted: "feat-a"}, d)
	assert.NoDirExists(t, c.Path)
	assert.FileExists(t, filepath.Join(e.main, "docker-compose.sandbox.yml"), "the main checkout is untouched")
	down := e.r.composeCalls("down")
	require.Len(t, down, 1)
	assert.Equal(t, []string{"ktrdr--feat-a"}, lcFlagValues(down[0].Args, "-p"))
	assert.Contains(t, down[0].Args, "--volumes")

	before := e.snapshot(t)
	for range 2 {
		d, err = e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a"})
		require.NoError(t, err)
		assert.True(t, d.AlreadyGone)
	}
	assert.Equal(t, before, e.snapshot(t))
	assert.Len(t, e.r.composeCalls("down"), 1, "nothing more is torn down")
}

func TestDestroyWorktreeAlreadyDeleted(t *testing.T) {
	e := lcSetup(t)
	c := e.create(t, CreateOptions{Name: "feat-a"})
	require.NoError(t, os.RemoveAll(c.Path))
	inst := e.instDir("ktrdr--feat-a")
	e.r.setPS(lcStack("ktrdr--feat-a", "ktrdr--feat-a", 9)...)

	d, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a"})
	require.NoError(t, err)
	assert.True(t, d.StackRemoved)
	assert.False(t, d.WorktreeRemoved)
	assert.Equal(t, "feat-a", d.BranchDeleted)

	down := e.r.composeCalls("down")
	require.Len(t, down, 1, "the stack is stopped from the kept copy")
	assert.Contains(t, down[0].Args, "--volumes")
	assert.Equal(t, []string{filepath.Join(inst, ".env.sandbox")}, lcFlagValues(down[0].Args, "--env-file"))
	assert.Equal(t, []string{filepath.Join(inst, "docker-compose.sandbox.yml")}, lcFlagValues(down[0].Args, "-f"))
	assert.Equal(t, []string{"ktrdr--feat-a"}, lcFlagValues(down[0].Args, "-p"))

	assert.NotContains(t, lcGit(t, e.main, "worktree", "list", "--porcelain"), c.Path, "git's record is pruned")
	assert.False(t, e.branchExists(t, "feat-a"))
	assert.NotContains(t, e.registry(t), "ktrdr--feat-a")
	assert.NoDirExists(t, inst)
}

func TestDestroyRefusesAProjectItDoesNotOwn(t *testing.T) {
	e := lcSetup(t)
	c := e.create(t, CreateOptions{Name: "feat-a"})
	lines := lcStack("ktrdr--feat-a", "ktrdr--feat-a", 9)
	lines[1] = lcPSLine("ktrdr--feat-a", "backend", "ktrdr--intruder", "running", "Up 1 minute")
	e.r.setPS(lines...)
	before := e.snapshot(t)

	for _, o := range []DestroyOptions{{Name: "feat-a"}, {Name: "feat-a", Force: true}, {Dir: c.Path}} {
		_, err := e.m.Destroy(t.Context(), o)
		var ne *NotOwnedError
		require.ErrorAs(t, err, &ne)
		assert.Equal(t, NotOwnedError{Project: "ktrdr--feat-a", Service: "backend", Key: "org.ktrdr.sandbox.instance", Label: "ktrdr--intruder"}, *ne)
	}
	assert.Equal(t, before, e.snapshot(t), "nothing is removed")
	assert.FileExists(t, filepath.Join(c.Path, ".env.sandbox"))
	assert.DirExists(t, e.instDir("ktrdr--feat-a"))
	assert.Empty(t, e.r.composeCalls("down"))
}

func TestListStatesOrphansAndStaleEntries(t *testing.T) {
	e := lcSetup(t)
	slots := map[string]int{}
	for _, n := range []string{"a", "b", "c", "gone"} {
		slots["ktrdr--"+n] = e.create(t, CreateOptions{Name: n}).Slot
	}
	require.NoError(t, os.RemoveAll(e.wt("gone")))
	e.m.Now = func() time.Time { return lcNow().Add(StaleGrace + time.Minute) } // past the grace of a create in progress
	ps := append(lcStack("ktrdr--a", "ktrdr--a", 9), lcStack("ktrdr--b", "ktrdr--b", 4)...)
	ps = append(ps, lcStack("ktrdr--c", "ktrdr--c", 0)...)
	ps = append(ps,
		lcPSLine("ktrdr--ghost", "db", "ktrdr--ghost", "running", "Up 1 hour"),
		lcPSLine("ktrdr--ghost", "backend", "ktrdr--ghost", "exited", "Exited (0) 1 hour ago"),
		lcPSLine("ktrdr", "db", "", "running", "Up 5 days"),          // the main stack
		lcPSLine("otherapp", "web", "", "running", "Up 5 days"),      // not ours
		lcPSLine("renamed", "db", "ktrdr--renamed", "running", "Up"), // labelled by us under another project name
	)
	e.r.setPS(ps...)
	// docker stats: every running container uses 1.5 % of a core and 10 MiB
	// (the ghost's and other apps' too: they are not the sandboxes').
	var stats []string
	for _, line := range ps {
		var row struct{ ID, State string }
		require.NoError(t, json.Unmarshal([]byte(line), &row))
		if row.State == "running" {
			stats = append(stats, fmt.Sprintf(`{"ID":%q,"CPUPerc":"1.50%%","MemUsage":"10MiB / 23.54GiB"}`, row.ID))
		}
	}
	e.r.dockerFn = func(c driver.Cmd) any {
		if c.Args[0] == "stats" {
			return strings.Join(stats, "\n") + "\n"
		}
		return nil
	}
	e.r.reset()

	l, err := e.m.List(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, e.r.psCalls(), "one docker call for every instance")
	require.Len(t, e.r.docker, 2, "and one docker stats call for what they use")
	assert.ElementsMatch(t, []string{"ps", "stats"}, []string{e.r.docker[0].Args[0], e.r.docker[1].Args[0]})

	byID := map[string]ListEntry{}
	var order []string
	for _, le := range l.Instances {
		byID[le.ID] = le
		order = append(order, le.ID)
	}
	assert.Equal(t, []string{"ktrdr--a", "ktrdr--b", "ktrdr--c", "ktrdr--gone"}, order, "sorted by slot")
	assert.Equal(t, ListEntry{ID: "ktrdr--a", Slot: slots["ktrdr--a"], State: "running", Running: 9, Services: 9, APIPort: 8000 + slots["ktrdr--a"],
		Branch: "a", Path: e.wt("a"), IsWorktree: true, Engine: "local", Host: "localhost", CPUPercent: ptrTo(13.5), MemoryBytes: ptrTo[int64](90 << 20)}, byID["ktrdr--a"])
	assert.Equal(t, "partial 4/9", byID["ktrdr--b"].State)
	assert.Equal(t, 4, byID["ktrdr--b"].Running)
	assert.Equal(t, ptrTo(6.0), byID["ktrdr--b"].CPUPercent, "its four running containers")
	assert.Equal(t, ptrTo[int64](40<<20), byID["ktrdr--b"].MemoryBytes)
	assert.Nil(t, byID["ktrdr--c"].CPUPercent, "a stopped sandbox has no figures")
	assert.Nil(t, byID["ktrdr--c"].MemoryBytes)
	assert.Empty(t, l.StatsErrors)
	assert.Equal(t, 8000+slots["ktrdr--b"], byID["ktrdr--b"].APIPort)
	assert.Equal(t, StateStopped, byID["ktrdr--c"].State)
	assert.Equal(t, 0, byID["ktrdr--c"].Running)
	gone := byID["ktrdr--gone"]
	assert.Equal(t, StateMissing, gone.State)
	assert.True(t, gone.Removed)
	assert.Equal(t, "its folder is gone", gone.Reason)
	assert.Equal(t, slots["ktrdr--gone"], gone.Slot)

	require.Len(t, l.Orphans, 2)
	assert.Equal(t, Orphan{Project: "ktrdr--ghost", Containers: 2}, l.Orphans[0])
	assert.Equal(t, "renamed", l.Orphans[1].Project)

	reg := e.registry(t)
	assert.NotContains(t, reg, "ktrdr--gone", "the stale entry is cleaned")
	assert.Len(t, reg, 3)
	assert.NoDirExists(t, e.instDir("ktrdr--gone"))

	// Listing again: the stale entry was reported once and is gone.
	e.r.reset()
	l, err = e.m.List(t.Context())
	require.NoError(t, err)
	assert.Len(t, l.Instances, 3)
	assert.Equal(t, 1, e.r.psCalls())

	// The JSON shape: figures only for running sandboxes.
	data, err := json.Marshal(l)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"cpu_percent":13.5,"memory_bytes":94371840`)
	assert.Equal(t, 2, strings.Count(string(data), `"memory_bytes"`))
}

func TestListEmptyAndDockerFailure(t *testing.T) {
	e := lcSetup(t)
	l, err := e.m.List(t.Context())
	require.NoError(t, err)
	assert.Empty(t, l.Instances)
	assert.NotNil(t, l.Instances)
	assert.NotNil(t, l.Orphans)

	_, err = e.m.Create(t.Context(), CreateOptions{Name: "feat-a", Dir: e.main})
	require.NoError(t, err)
	e.r.dockerFn = func(c driver.Cmd) any {
		return &driver.ExitError{Cmd: "docker ps", Code: 1, Stderr: "Cannot connect to the Docker daemon"}
	}
	// Without docker the registry is still listed, with unknown states and a warning.
	l, err = e.m.List(t.Context())
	require.NoError(t, err)
	require.Len(t, l.Instances, 1)
	assert.Equal(t, StateUnknown, l.Instances[0].State)
	assert.Contains(t, l.Warning, "Cannot connect to the Docker daemon")
}

func TestStatus(t *testing.T) {
	e := lcSetup(t)

	outside := filepath.Join(e.root, "elsewhere")
	require.NoError(t, os.MkdirAll(outside, 0o755))
	for _, dir := range []string{outside, e.main} {
		_, err := e.m.Status(t.Context(), StatusOptions{Dir: dir})
		var ne *NotSandboxError
		require.ErrorAs(t, err, &ne, dir)
		assert.Equal(t, dir, ne.Dir)
	}

	c := e.create(t, CreateOptions{Name: "feat-a"})
	assert.Equal(t, lcWantSlot(t, c.Skipped, 1), c.Slot)
	// Slot 1's API URL, whichever slot the allocator could take here.
	assert.Equal(t, NamedURL{Label: "API", URL: "http://localhost:8001/api/v1"}, KTRDR().URLs(KTRDR().PortsFor(1))[0])
	sub := filepath.Join(c.Path, "src", "pkg")
	require.NoError(t, os.MkdirAll(sub, 0o755))
	e.r.setPS(
		lcPSLine("ktrdr--feat-a", "backend", "ktrdr--feat-a", "running", "Up 3 minutes (healthy)"),
		lcPSLine("ktrdr--feat-a", "db", "ktrdr--feat-a", "restarting", "Restarting (1) 1 second ago"),
		lcPSLine("ktrdr--other", "jaeger", "ktrdr--other", "running", "Up 3 minutes"),
	)
	for _, dir := range []string{c.Path, sub} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			s, err := e.m.Status(t.Context(), StatusOptions{Dir: dir})
			require.NoError(t, err)
			assert.Equal(t, "ktrdr--feat-a", s.ID)
			assert.Equal(t, c.Slot, s.Slot)
			assert.Equal(t, c.Path, s.Path)
			assert.Equal(t, "feat-a", s.Branch)
			assert.True(t, s.Registered)
			assert.True(t, s.IsWorktree)
			assert.Equal(t, "partial 1/9", s.State)
			assert.Nil(t, s.LastGate)
			require.NotEmpty(t, s.URLs)
			assert.Equal(t, NamedURL{Label: "API", URL: fmt.Sprintf("http://localhost:%d/api/v1", 8000+c.Slot)}, s.URLs[0])
			assert.Contains(t, s.URLs, NamedURL{Label: "Grafana", URL: fmt.Sprintf("http://localhost:%d", 3000+c.Slot)})
			assert.Equal(t, KTRDR().PortsFor(c.Slot), s.Ports)

			byName := map[string]driver.ServiceState{}
			var names []string
			for _, ss := range s.Services {
				byName[ss.Service] = ss
				names = append(names, ss.Service)
			}
			var want []string
			for _, svc := range KTRDR().Services {
				want = append(want, svc.Name)
			}
			assert.Equal(t, want, names, "every service, in the profile's order")
			assert.Equal(t, "running", byName["backend"].State)
			assert.Equal(t, "healthy", byName["backend"].Health)
			assert.Equal(t, "restarting", byName["db"].State)
			assert.Equal(t, "not created", byName["jaeger"].State, "another project's container is not ours")
		})
	}
}

// Guard against an lcRunner that lets a docker call reach a real engine.
func TestLifecycleRunnerNeverRunsDocker(t *testing.T) {
	r := &lcRunner{}
	out, err := r.Run(t.Context(), driver.Cmd{Name: "docker", Args: []string{"compose", "version", "--short"}})
	require.NoError(t, err)
	assert.Equal(t, "v2.40.3\n", string(out))
	_, err = r.Run(t.Context(), driver.Cmd{Name: "docker-compose", Args: []string{"version"}})
	assert.True(t, err != nil && !errors.Is(err, fs.ErrNotExist))
}

// A commit only on the branch the sandbox created is work, also when the
// worktree folder is already gone: destroy refuses without Force.
func TestDestroyGoneWorktreeStillGuardsItsBranch(t *testing.T) {
	e := lcSetup(t)
	c := e.create(t, CreateOptions{Name: "feat-a"})
	lcWrite(t, filepath.Join(c.Path, "work.txt"), "precious")
	lcGit(t, c.Path, "add", "work.txt")
	lcGit(t, c.Path, "commit", "-q", "-m", "only on feat-a")
	require.NoError(t, os.RemoveAll(c.Path))

	_, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a"})
	var wl *WouldLoseError
	require.ErrorAs(t, err, &wl)
	assert.Contains(t, err.Error(), "only on feat-a")
	assert.True(t, e.branchExists(t, "feat-a"))
	assert.Contains(t, e.registry(t), "ktrdr--feat-a")

	d, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a", Force: true})
	require.NoError(t, err)
	assert.Equal(t, "feat-a", d.BranchDeleted)
}

// An env file copied to another folder must not steer commands to the
// original sandbox's stack.
func TestCopiedEnvFileIsRefused(t *testing.T) {
	e := lcSetup(t)
	c := e.create(t, CreateOptions{Name: "feat-a"})
	copyDir := filepath.Join(e.root, "backup-of-feat-a")
	require.NoError(t, os.MkdirAll(copyDir, 0o755))
	lcCopyEnv(t, c.Path, copyDir)

	_, err := e.m.Destroy(t.Context(), DestroyOptions{Dir: copyDir})
	var ee *ElsewhereError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, c.Path, ee.Registered)
	_, err = e.m.Down(t.Context(), DownOptions{Dir: copyDir, Volumes: true})
	assert.ErrorAs(t, err, &ee)
	_, err = e.m.Up(t.Context(), UpOptions{Dir: copyDir, NoWait: true})
	assert.ErrorAs(t, err, &ee)
	_, err = e.m.Status(t.Context(), StatusOptions{Dir: copyDir})
	assert.ErrorAs(t, err, &ee)
	assert.ErrorAs(t, e.m.Logs(t.Context(), LogsOptions{Dir: copyDir, Out: io.Discard}), &ee)
	assert.Empty(t, e.r.composeCalls("down"), "nothing was stopped")
	assert.Empty(t, e.r.composeCalls("up"), "nothing was started")
	assert.DirExists(t, c.Path)
}

func TestUnsharedCommitsTellsMissingFromBroken(t *testing.T) {
	e := lcSetup(t)
	got, err := e.m.unsharedCommits(t.Context(), e.main, "refs/heads/no-such-branch", "no-such-branch")
	require.NoError(t, err, "a branch that does not exist holds nothing")
	assert.Empty(t, got)

	got, err = e.m.unsharedCommits(t.Context(), filepath.Join(e.root, "gone"), "HEAD", "")
	require.NoError(t, err, "a repository that is gone has no branch to delete")
	assert.Empty(t, got)

	notRepo := t.TempDir()
	_, err = e.m.unsharedCommits(t.Context(), notRepo, "HEAD", "")
	require.Error(t, err, "a folder that is not a repository is not taken for one without commits")
	assert.Contains(t, err.Error(), notRepo)
}

// A lost registry is rebuilt by running init in each checkout: the env file
// decides the instance and slot, and is left as it is.
func TestInitRegistersAnIntactEnvFileAgain(t *testing.T) {
	e := lcSetup(t)
	a := e.create(t, CreateOptions{Name: "feat-a"})
	b := e.create(t, CreateOptions{Name: "feat-b"})
	envA, err := os.ReadFile(filepath.Join(a.Path, ".env.sandbox"))
	require.NoError(t, err)
	require.NoError(t, os.Remove(e.m.Registry().Path)) // the registry is lost

	// Options that contradict the file are refused, and change nothing.
	before := e.snapshot(t)
	for _, o := range []InitOptions{{Name: "other"}, {Slot: b.Slot + 5}, {Standin: true}} {
		o.Dir = a.Path
		_, err := e.m.Init(t.Context(), o)
		require.Error(t, err, "%+v", o)
		assert.Contains(t, err.Error(), "remove the file to adopt the checkout afresh")
		assert.Equal(t, before, e.snapshot(t))
	}

	rb, err := e.m.Init(t.Context(), InitOptions{Dir: b.Path})
	require.NoError(t, err)
	ra, err := e.m.Init(t.Context(), InitOptions{Dir: filepath.Join(a.Path)})
	require.NoError(t, err)
	assert.True(t, ra.Reregistered)
	assert.Equal(t, a.ID, ra.ID)
	assert.Equal(t, a.Slot, ra.Slot)
	assert.Equal(t, b.Slot, rb.Slot)
	assert.Equal(t, a.Ports, ra.Ports)
	got, err := os.ReadFile(filepath.Join(a.Path, ".env.sandbox"))
	require.NoError(t, err)
	assert.Equal(t, string(envA), string(got), "the env file is not rewritten")
	reg := e.registry(t)
	require.Contains(t, reg, a.ID)
	assert.Equal(t, a.Slot, reg[a.ID].Slot)
	assert.True(t, reg[a.ID].IsWorktree)
	assert.Equal(t, e.main, reg[a.ID].ParentRepo)

	// The teardown copy still knows the sandbox made its branch: destroy deletes it.
	d, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a"})
	require.NoError(t, err)
	assert.Equal(t, "feat-a", d.BranchDeleted)
}

func TestInitRegisterAgainRefusals(t *testing.T) {
	t.Run("a copy of a registered sandbox", func(t *testing.T) {
		e := lcSetup(t)
		a := e.create(t, CreateOptions{Name: "feat-a"})
		wt := filepath.Join(e.dev, "ktrdr--copy")
		lcGit(t, e.main, "worktree", "add", "-q", "-b", "copy", wt)
		lcCopyEnv(t, a.Path, wt)
		before := e.snapshot(t)
		_, err := e.m.Init(t.Context(), InitOptions{Dir: wt})
		var ee *ElsewhereError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, a.Path, ee.Registered)
		assert.Equal(t, before, e.snapshot(t))
	})
	t.Run("its slot was taken meanwhile", func(t *testing.T) {
		e := lcSetup(t)
		a := e.create(t, CreateOptions{Name: "feat-a"})
		require.NoError(t, os.Remove(e.m.Registry().Path))
		e.create(t, CreateOptions{Name: "feat-b", Slot: a.Slot})
		before := e.snapshot(t)
		_, err := e.m.Init(t.Context(), InitOptions{Dir: a.Path})
		var se *SlotError
		require.ErrorAs(t, err, &se)
		var re *ReregisterError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, filepath.Join(a.Path, ".env.sandbox"), re.EnvPath)
		assert.Equal(t, before, e.snapshot(t))
	})
	t.Run("a damaged env file", func(t *testing.T) {
		e := lcSetup(t)
		a := e.create(t, CreateOptions{Name: "feat-a"})
		require.NoError(t, os.Remove(e.m.Registry().Path))
		lcWrite(t, filepath.Join(a.Path, ".env.sandbox"), "KTRDR_API_PORT=eighty\n")
		before := e.snapshot(t)
		_, err := e.m.Init(t.Context(), InitOptions{Dir: a.Path})
		var fe *EnvFileError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, before, e.snapshot(t))
	})
}

func TestInitRegisterAgainRefusesFilesThatDoNotFit(t *testing.T) {
	p := KTRDR()
	tests := []struct {
		name  string
		env   func(a *Created) Env
		check func(t *testing.T, a *Created, err error)
	}{
		{"slot 0 (the main checkout's ports)", func(a *Created) Env {
			return p.NewEnv("feat-a", 0, "", lcNow(), false)
		}, func(t *testing.T, a *Created, err error) {
			var re *ReregisterError
			require.ErrorAs(t, err, &re)
			var se *SlotError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, 0, se.Slot)
		}},
		{"a slot beyond the range", func(a *Created) Env {
			return p.NewEnv("feat-a", p.MaxSlot+1, "", lcNow(), false)
		}, func(t *testing.T, a *Created, err error) {
			var se *SlotError
			require.ErrorAs(t, err, &se)
			assert.Contains(t, err.Error(), "out of range")
		}},
		{"ports of another slot", func(a *Created) Env {
			env := p.NewEnv("feat-a", a.Slot+1, "", lcNow(), false)
			env.Ports = p.PortsFor(a.Slot)
			return env
		}, func(t *testing.T, a *Created, err error) {
			assert.Contains(t, err.Error(), fmt.Sprintf("slot %d uses", a.Slot+1))
			assert.Contains(t, err.Error(), "remove the file to adopt the checkout afresh")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := lcSetup(t)
			a := e.create(t, CreateOptions{Name: "feat-a"})
			require.NoError(t, os.Remove(e.m.Registry().Path))
			require.NoError(t, p.WriteEnv(filepath.Join(a.Path, ".env.sandbox"), tt.env(a)))
			before := e.snapshot(t)
			_, err := e.m.Init(t.Context(), InitOptions{Dir: a.Path})
			require.Error(t, err)
			tt.check(t, a, err)
			assert.Equal(t, before, e.snapshot(t), "a refused init changes nothing")
		})
	}
}

// A lost registry leaves only the files; a copy must not win the instance
// just by running init first.
func TestInitRegisterAgainRefusesACopyWithAWeakerClaim(t *testing.T) {
	t.Run("another worktree of the repository names the instance", func(t *testing.T) {
		e := lcSetup(t)
		a := e.create(t, CreateOptions{Name: "feat-a"})
		other := filepath.Join(e.dev, "ktrdr--other")
		lcGit(t, e.main, "worktree", "add", "-q", "-b", "other", other)
		lcCopyEnv(t, a.Path, other)
		require.NoError(t, os.Remove(e.m.Registry().Path))

		before := e.snapshot(t)
		_, err := e.m.Init(t.Context(), InitOptions{Dir: other})
		var ce *ClaimedError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, a.Path, ce.Other)
		assert.Equal(t, before, e.snapshot(t))
	})
	t.Run("its containers were started from another folder", func(t *testing.T) {
		e := lcSetup(t)
		a := e.create(t, CreateOptions{Name: "feat-a"})
		clone := filepath.Join(e.dev, "clone")
		lcGit(t, e.dev, "clone", "-q", e.main, clone)
		lcCopyEnv(t, a.Path, clone)
		require.NoError(t, os.Remove(e.m.Registry().Path))
		e.r.setPS(strings.ReplaceAll(lcPSLine("ktrdr--feat-a", "backend", "ktrdr--feat-a", "running", "Up 1 minute"), "/home/u/dev/ktrdr--feat-a", a.Path))

		before := e.snapshot(t)
		_, err := e.m.Init(t.Context(), InitOptions{Dir: clone})
		var ce *ClaimedError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, a.Path, ce.Other)
		assert.Contains(t, err.Error(), "its stack was started")
		assert.Equal(t, before, e.snapshot(t))

		// The folder the stack runs from is registered again.
		c, err := e.m.Init(t.Context(), InitOptions{Dir: a.Path})
		require.NoError(t, err)
		assert.True(t, c.Reregistered)
	})
}

// A sandbox folder moved with git worktree move is refused where it is, with
// a reason, until init moves its entry.
func TestInitFollowsAMovedSandbox(t *testing.T) {
	e := lcSetup(t)
	a := e.create(t, CreateOptions{Name: "feat-a"})
	moved := filepath.Join(e.dev, "elsewhere", "feat-a")
	require.NoError(t, os.MkdirAll(filepath.Dir(moved), 0o755))
	lcGit(t, e.main, "worktree", "move", a.Path, moved)

	_, err := e.m.Status(t.Context(), StatusOptions{Dir: moved})
	var ee *ElsewhereError
	require.ErrorAs(t, err, &ee)
	assert.True(t, ee.Gone)
	assert.Contains(t, err.Error(), "gone")

	c, err := e.m.Init(t.Context(), InitOptions{Dir: moved})
	require.NoError(t, err)
	assert.True(t, c.Reregistered)
	assert.Equal(t, a.Path, c.MovedFrom)
	assert.Equal(t, a.Slot, c.Slot)
	reg := e.registry(t)
	require.Len(t, reg, 1)
	assert.Equal(t, moved, reg[a.ID].Path)
	assert.Equal(t, a.Slot, reg[a.ID].Slot)
	_, err = e.m.Status(t.Context(), StatusOptions{Dir: moved})
	require.NoError(t, err, "commands work in the new place")

	d, err := e.m.Destroy(t.Context(), DestroyOptions{Name: "feat-a"})
	require.NoError(t, err)
	assert.Equal(t, "feat-a", d.BranchDeleted, "it still knows it created its branch")
	assert.NoDirExists(t, moved)
}

// A worktree moved with plain mv is refused until git knows its new place:
// otherwise destroy could not remove it later.
func TestInitWantsAMovedWorktreeRepaired(t *testing.T) {
	e := lcSetup(t)
	a := e.create(t, CreateOptions{Name: "feat-a"})
	moved := filepath.Join(e.dev, "moved-by-hand")
	require.NoError(t, os.Rename(a.Path, moved))

	before := e.snapshot(t)
	_, err := e.m.Init(t.Context(), InitOptions{Dir: moved})
	var um *UnrepairedMoveError
	require.ErrorAs(t, err, &um)
	assert.Equal(t, a.Path, um.Old)
	assert.Equal(t, before, e.snapshot(t))

	lcGit(t, moved, "worktree", "repair")
	c, err := e.m.Init(t.Context(), InitOptions{Dir: moved})
	require.NoError(t, err)
	assert.Equal(t, a.Path, c.MovedFrom)
	d, err := e.m.Destroy(t.Context(), DestroyOptions{Dir: moved})
	require.NoError(t, err)
	assert.True(t, d.WorktreeRemoved)
	assert.NoDirExists(t, moved)
}

// A clone that holds the env file of a moved worktree is not the worktree.
func TestInitRefusesACloneInPlaceOfAMovedWorktree(t *testing.T) {
	e := lcSetup(t)
	a := e.create(t, CreateOptions{Name: "feat-a"})
	data, err := os.ReadFile(filepath.Join(a.Path, ".env.sandbox"))
	require.NoError(t, err)
	moved := filepath.Join(e.dev, "moved")
	lcGit(t, e.main, "worktree", "move", a.Path, moved)
	clone := filepath.Join(e.dev, "clone")
	lcGit(t, e.dev, "clone", "-q", e.main, clone)
	lcWrite(t, filepath.Join(clone, ".env.sandbox"), string(data))

	before := e.snapshot(t)
	_, err = e.m.Init(t.Context(), InitOptions{Dir: clone})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is a clone")
	assert.Equal(t, before, e.snapshot(t))
}

// Without docker, init cannot tell which folder runs the stack: it refuses
// to register an existing env file rather than guess.
func TestInitRegisterAgainNeedsDocker(t *testing.T) {
	e := lcSetup(t)
	a := e.create(t, CreateOptions{Name: "feat-a"})
	require.NoError(t, os.Remove(e.m.Registry().Path))
	e.r.dockerFn = func(c driver.Cmd) any {
		if c.Args[0] == "ps" {
			return errors.New("Cannot connect to the Docker daemon")
		}
		return nil
	}
	_, err := e.m.Init(t.Context(), InitOptions{Dir: a.Path})
	var ce *ClaimCheckError
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, err.Error(), "Cannot connect")
	assert.Empty(t, e.registry(t))
}

// Two worktrees name the same instance, but the stack runs from one of
// them: that one is the sandbox.
func TestInitRegisterAgainTrustsTheRunningStack(t *testing.T) {
	e := lcSetup(t)
	a := e.create(t, CreateOptions{Name: "feat-a"})
	other := filepath.Join(e.dev, "ktrdr--other")
	lcGit(t, e.main, "worktree", "add", "-q", "-b", "other", other)
	lcCopyEnv(t, a.Path, other)
	require.NoError(t, os.Remove(e.m.Registry().Path))
	e.r.setPS(strings.ReplaceAll(lcPSLine("ktrdr--feat-a", "db", "ktrdr--feat-a", "running", "Up 1 minute"), "/home/u/dev/ktrdr--feat-a", a.Path))

	_, err := e.m.Init(t.Context(), InitOptions{Dir: other})
	var ce *ClaimedError
	require.ErrorAs(t, err, &ce, "the copy is refused")
	c, err := e.m.Init(t.Context(), InitOptions{Dir: a.Path})
	require.NoError(t, err, "the folder its stack runs from is registered")
	assert.Equal(t, a.Path, c.Path)
}

// lcCopyEnv copies the .env.sandbox of folder from into folder to, as a
// person copying a sandbox folder would.
func lcCopyEnv(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(from, ".env.sandbox"))
	require.NoError(t, err)
	lcWrite(t, filepath.Join(to, ".env.sandbox"), string(data))
}
