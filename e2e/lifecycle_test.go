package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// registry reads the registry the way a script would.
func (e *env) registry() map[string]map[string]any {
	e.t.Helper()
	data, err := os.ReadFile(filepath.Join(e.Home, ".ktrdr", "sandbox", "instances.json"))
	if os.IsNotExist(err) {
		return map[string]map[string]any{}
	}
	require.NoError(e.t, err)
	var reg struct {
		Version   int
		Instances map[string]map[string]any
	}
	require.NoError(e.t, json.Unmarshal(data, &reg))
	require.Equal(e.t, 1, reg.Version)
	return reg.Instances
}

func (e *env) branches() string { return e.git(e.Main, "branch", "--list") }

func TestLifecycleRoundTrip(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	name := namePrefix + "round"
	created := e.must(e.Main, "sandbox:create", name, "-standin")
	dir := e.sandboxDir(name)
	assert.Contains(t, created.Stdout, "Created sandbox ktrdr--"+name+" in slot 1")
	assert.Contains(t, created.Stdout, "cd "+dir+" && go tool mage sandbox:up")
	var other struct {
		ID, Path, Branch string
		Slot             int
		Ports            map[string]int
	}
	otherRun := e.must(e.Main, "sandbox:create", name+"-json", "-json")
	require.NoError(t, json.Unmarshal([]byte(otherRun.Stdout), &other), "stdout is only JSON: %s", otherRun.Stdout)
	assert.Equal(t, 2, other.Slot)
	assert.Equal(t, e.sandboxDir(name+"-json"), other.Path)
	assert.Equal(t, 8002, other.Ports["KTRDR_API_PORT"])
	e.must(other.Path, "sandbox:destroy")
	reg := e.registry()["ktrdr--"+name]
	require.NotNil(t, reg)
	assert.Equal(t, true, reg["is_worktree"])
	assert.Equal(t, e.Main, reg["parent_repo"])
	assert.Equal(t, dir, reg["path"])
	assert.FileExists(t, filepath.Join(dir, ".env.sandbox"))
	assert.Empty(t, e.git(dir, "status", "--porcelain"), ".env.sandbox is gitignored")

	// Status before up: stopped, URLs known, no gate yet.
	st := e.must(filepath.Join(dir, "sandbox"), "sandbox:status")
	assert.Contains(t, st.Stdout, "stopped")
	assert.Contains(t, st.Stdout, "not run yet")

	var up struct {
		ID   string
		Slot int
		Gate struct {
			Passed bool
			Checks []struct {
				Name   string
				Passed bool
			}
		}
		URLs []struct{ Label, URL string }
	}
	upRun := e.must(dir, "sandbox:up", "-json")
	require.NoError(t, json.Unmarshal([]byte(upRun.Stdout), &up), "stdout is only JSON: %s", upRun.Stdout)
	assert.True(t, up.Gate.Passed)
	assert.Len(t, up.Gate.Checks, 4)
	assert.Equal(t, "http://localhost:8001/api/v1", up.URLs[0].URL)
	assert.Contains(t, upRun.Stderr, "Starting ktrdr--"+name, "steps go to stderr with -json")

	var status struct {
		ID, Branch, State, Path string
		Slot                    int
		Registered              bool
		Services                []struct{ Service, State, Health string }
		URLs                    []struct{ Label, URL string }
		LastGate                *struct{ Passed bool } `json:"last_gate"`
	}
	require.NoError(t, json.Unmarshal([]byte(e.must(dir, "sandbox:status", "-json").Stdout), &status))
	assert.Equal(t, "ktrdr--"+name, status.ID)
	assert.Equal(t, 1, status.Slot)
	assert.Equal(t, name, status.Branch)
	assert.Equal(t, "running", status.State)
	assert.True(t, status.Registered)
	assert.Len(t, status.Services, 9)
	require.NotNil(t, status.LastGate)
	assert.True(t, status.LastGate.Passed)
	urls := map[string]string{}
	for _, u := range status.URLs {
		urls[u.Label] = u.URL
	}
	assert.Equal(t, "http://localhost:8001/api/v1", urls["API"])
	assert.Equal(t, "postgresql://ktrdr:localdev@localhost:5433/ktrdr", urls["Database"])
	assert.Equal(t, "http://localhost:5013", urls["Training worker 2"])

	logs := e.must(dir, "sandbox:logs", "-service=backend")
	assert.Contains(t, logs.Stdout, "/api/v1/health", "the backend logged the gate's requests")
	assert.NotContains(t, logs.Stdout, "jaeger", "only the backend's logs")

	list := e.must(e.Main, "sandbox:list")
	assert.Regexp(t, `ktrdr--`+name+`\s+1\s+running\s+[0-9.]+%\s+[0-9.]+[KMG]iB\s+local\s+8001\s+`+name+`\s+`+dir, list.Stdout)

	e.must(dir, "sandbox:destroy")
	assert.NoDirExists(t, dir)
	assert.Empty(t, e.registry())
	assert.NotContains(t, e.branches(), name, "the branch create made is gone")
	c, v, n := projectResources("ktrdr--" + name)
	assert.Zero(t, c+v+n)
	assert.NoDirExists(t, filepath.Join(e.Home, ".ktrdr", "sandbox", "instances", "ktrdr--"+name))

	// Destroy twice is harmless.
	again := e.must(e.Main, "sandbox:destroy", "-name="+name)
	assert.Contains(t, again.Stdout, "nothing to destroy")
}

// Every refused create exits with the contract's code and leaves nothing behind.
func TestCreateRefusals(t *testing.T) {
	e := newEnv(t)
	// Something for the refusals to collide with.
	e.must(e.Main, "sandbox:create", namePrefix+"first", "-slot=3")
	require.NoError(t, os.MkdirAll(e.sandboxDir(namePrefix+"squat"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(e.sandboxDir(namePrefix+"squat"), "keep.txt"), []byte("mine"), 0o644))
	e.git(e.Main, "worktree", "add", "-q", filepath.Join(e.Dev, "elsewhere"), "-b", "busy")

	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"path traversal", []string{"../x"}, 1, "invalid sandbox name"},
		{"leading hyphen", []string{"-rf"}, 1, "starts with a hyphen"},
		{"space", []string{"a b"}, 1, "invalid sandbox name"},
		{"shell characters", []string{"x;rm -rf ~"}, 1, "invalid sandbox name"},
		{"upper case", []string{"Feat"}, 1, "e.g. feat-a"},
		{"slash", []string{"a/b"}, 1, "invalid sandbox name"},
		{"empty", []string{""}, 1, "it is empty"},
		{"folder exists", []string{namePrefix + "squat"}, 3, "already exists"},
		{"branch in another worktree", []string{namePrefix + "br", "-branch=busy"}, 2, filepath.Join(e.Dev, "elsewhere")},
		{"slot taken", []string{namePrefix + "s3", "-slot=3"}, 1, "ktrdr--" + namePrefix + "first"},
		{"slot out of range", []string{namePrefix + "s11", "-slot=11"}, 1, "out of range"},
	}
	regBefore := e.registry()
	branchesBefore := e.branches()
	entries, _ := os.ReadDir(e.Dev)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.sbx(e.Main, append([]string{"sandbox:create"}, c.args...)...)
			assert.Equal(t, c.code, r.Code, r.String())
			assert.Contains(t, r.Stderr, c.stderr)
			assert.Equal(t, regBefore, e.registry(), "registry unchanged")
			assert.Equal(t, branchesBefore, e.branches(), "no branch made")
			now, _ := os.ReadDir(e.Dev)
			assert.Equal(t, len(entries), len(now), "no folder made")
		})
	}
	data, err := os.ReadFile(filepath.Join(e.sandboxDir(namePrefix+"squat"), "keep.txt"))
	require.NoError(t, err)
	assert.Equal(t, "mine", string(data), "a stranger's folder is untouched")
}

// A slot whose ports a stranger holds is skipped by auto-allocation and
// refused when asked for, naming the port and the process.
func TestCreateSkipsSlotsHeldByStrangers(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "0.0.0.0:8001")
	require.NoError(t, err)
	defer ln.Close()

	refused := e.sbx(e.Main, "sandbox:create", namePrefix+"want1", "-slot=1")
	assert.Equal(t, 1, refused.Code, refused.String())
	assert.Contains(t, refused.Stderr, "port 8001")
	assert.Contains(t, refused.Stderr, fmt.Sprintf("process %d", os.Getpid()))
	assert.Empty(t, e.registry())

	ok := e.must(e.Main, "sandbox:create", namePrefix+"auto")
	assert.Contains(t, ok.Stdout, "Skipped slot 1: port 8001")
	assert.Contains(t, ok.Stdout, "in slot 2")
}

// Ten creates fill slots 1–10; the eleventh lists all ten holders.
func TestSlotExhaustion(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 10; i++ {
		e.must(e.Main, "sandbox:create", fmt.Sprintf("%sfill%02d", namePrefix, i))
	}
	r := e.sbx(e.Main, "sandbox:create", namePrefix+"eleven")
	assert.Equal(t, 1, r.Code, r.String())
	for i := 1; i <= 10; i++ {
		assert.Contains(t, r.Stderr, fmt.Sprintf("slot %d  ktrdr--%sfill%02d", i, namePrefix, i))
	}
	assert.Contains(t, r.Stderr, "sandbox:destroy")
	assert.NoDirExists(t, e.sandboxDir(namePrefix+"eleven"))
	assert.Len(t, e.registry(), 10)
}

// init adopts a clone; destroy of an adopted clone never deletes it.
func TestInitAdoptsCloneAndDestroyKeepsIt(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	clone := filepath.Join(e.Dev, "my-clone")
	e.git(e.Dev, "clone", "-q", e.Main, clone)
	require.NoError(t, os.WriteFile(filepath.Join(clone, "work-in-progress.txt"), []byte("precious"), 0o644))

	r := e.must(clone, "sandbox:init", "-standin")
	assert.Contains(t, r.Stdout, "Adopted clone "+clone+" as sandbox ktrdr--my-clone in slot 1")
	reg := e.registry()["ktrdr--my-clone"]
	require.NotNil(t, reg)
	assert.Equal(t, false, reg["is_worktree"])

	again := e.sbx(clone, "sandbox:init")
	assert.Equal(t, 1, again.Code, "already a sandbox: %s", again)

	notProject := t.TempDir()
	e.git(notProject, "init", "-q")
	np := e.sbx(notProject, "sandbox:init")
	assert.Equal(t, 2, np.Code, np.String())
	assert.Contains(t, np.Stderr, "not a git checkout of this project")
	plain := e.sbx(t.TempDir(), "sandbox:init")
	assert.Equal(t, 2, plain.Code, plain.String())

	e.must(clone, "sandbox:up", "-nowait")
	e.must(clone, "sandbox:destroy")
	assert.DirExists(t, clone)
	data, err := os.ReadFile(filepath.Join(clone, "work-in-progress.txt"))
	require.NoError(t, err)
	assert.Equal(t, "precious", string(data))
	assert.FileExists(t, filepath.Join(clone, "docker-compose.sandbox.yml"))
	assert.NoFileExists(t, filepath.Join(clone, ".env.sandbox"))
	assert.Empty(t, e.registry())
	c, v, n := projectResources("ktrdr--my-clone")
	assert.Zero(t, c+v+n)

	// A worktree adopted with init records its main checkout.
	wt := filepath.Join(e.Dev, "hand-made")
	e.git(e.Main, "worktree", "add", "-q", wt, "-b", "hand-made")
	e.must(wt, "sandbox:init", "-name="+namePrefix+"hand")
	reg = e.registry()["ktrdr--"+namePrefix+"hand"]
	assert.Equal(t, true, reg["is_worktree"])
	assert.Equal(t, e.Main, reg["parent_repo"])
}

func TestDestroyRefusesToLoseWork(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	name := namePrefix + "dirty"
	e.must(e.Main, "sandbox:create", name)
	dir := e.sandboxDir(name)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("unsaved"), 0o644))

	r := e.sbx(dir, "sandbox:destroy")
	assert.Equal(t, 1, r.Code, r.String())
	assert.Contains(t, r.Stderr, "notes.txt")
	assert.Contains(t, r.Stderr, "-force")
	assert.FileExists(t, filepath.Join(dir, "notes.txt"))
	assert.Len(t, e.registry(), 1)

	// A commit on no other branch is work too.
	e.git(dir, "add", "notes.txt")
	e.git(dir, "commit", "-q", "-m", "only here")
	r = e.sbx(dir, "sandbox:destroy")
	assert.Equal(t, 1, r.Code, r.String())
	assert.Contains(t, r.Stderr, "only here")

	e.must(dir, "sandbox:destroy", "-force")
	assert.NoDirExists(t, dir)
	assert.Empty(t, e.registry())
}

// list cleans entries whose worktree was deleted by hand, keeps those whose
// stack still runs (so destroy -name can finish them), and reports stacks
// that look like sandboxes but are not registered.
func TestListCleansStaleAndReportsOrphans(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	gone, lost, ghost := namePrefix+"gone", namePrefix+"lost", namePrefix+"ghost"
	e.must(e.Main, "sandbox:create", gone)
	e.must(e.Main, "sandbox:create", lost, "-standin")
	e.must(e.Main, "sandbox:create", ghost, "-standin")
	e.must(e.sandboxDir(lost), "sandbox:up", "-nowait")
	e.must(e.sandboxDir(ghost), "sandbox:up", "-nowait")
	require.NoError(t, os.RemoveAll(e.sandboxDir(gone)))
	require.NoError(t, os.RemoveAll(e.sandboxDir(lost)))

	// Entries are aged past the grace a create in progress gets; the ghost's
	// entry is lost while its stack keeps running.
	regPath := filepath.Join(e.Home, ".ktrdr", "sandbox", "instances.json")
	var reg map[string]any
	require.NoError(t, json.Unmarshal(mustRead(t, regPath), &reg))
	instances := reg["instances"].(map[string]any)
	delete(instances, "ktrdr--"+ghost)
	for _, in := range instances {
		in.(map[string]any)["created_at"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	}
	data, _ := json.Marshal(reg)
	require.NoError(t, os.WriteFile(regPath, data, 0o644))

	r := e.must(e.Main, "sandbox:list")
	assert.Contains(t, r.Stdout, "Cleaned stale entry ktrdr--"+gone)
	assert.Regexp(t, `ktrdr--`+gone+`\s+1\s+missing`, r.Stdout)
	assert.Regexp(t, `ktrdr--`+lost+`\s+2\s+missing`, r.Stdout)
	assert.NotContains(t, r.Stdout, "Cleaned stale entry ktrdr--"+lost, "its stack still runs: kept")
	assert.Contains(t, r.Stdout, "Kept stale entry ktrdr--"+lost)
	assert.Contains(t, r.Stdout, "sandbox:destroy -name="+lost, "the way out is named")
	assert.Contains(t, r.Stdout, "Unregistered stack ktrdr--"+ghost)
	assert.Contains(t, r.Stdout, "docker compose -p ktrdr--"+ghost+" down --volumes")
	assert.Equal(t, []string{"ktrdr--" + lost}, keys(e.registry()))

	r = e.must(e.Main, "sandbox:list")
	assert.NotContains(t, r.Stdout, "Cleaned", "cleaned once")
	assert.Contains(t, r.Stdout, "Kept stale entry ktrdr--"+lost, "named on every list until it is destroyed")

	// destroy -name finishes the sandbox whose worktree was deleted by hand.
	e.must(e.Main, "sandbox:destroy", "-name="+lost)
	c, v, n := projectResources("ktrdr--" + lost)
	assert.Zero(t, c+v+n, "its stack is gone")
	assert.Empty(t, e.registry())
	assert.NotContains(t, e.branches(), lost)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A damaged registry is refused and left as it is; moved aside, it is rebuilt
// by sandbox:init in each checkout, from the .env.sandbox files, and the
// running stack is found again.
func TestDamagedRegistryIsRebuiltByInit(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	a, b := namePrefix+"reg-a", namePrefix+"reg-b"
	e.must(e.Main, "sandbox:create", a, "-standin")
	e.must(e.Main, "sandbox:create", b)
	e.must(e.sandboxDir(a), "sandbox:up", "-nowait")
	regPath := filepath.Join(e.Home, ".ktrdr", "sandbox", "instances.json")
	damaged := []byte(`{"version":1,"instances":{`)
	require.NoError(t, os.WriteFile(regPath, damaged, 0o644))

	r := e.sbx(e.Main, "sandbox:list")
	assert.Equal(t, 1, r.Code)
	assert.Contains(t, r.Stderr, regPath)
	assert.Contains(t, r.Stderr, "left untouched")
	assert.Contains(t, r.Stderr, "mv "+regPath)
	r = e.sbx(e.Main, "sandbox:create", namePrefix+"reg-c")
	assert.Equal(t, 1, r.Code)
	assert.NoDirExists(t, e.sandboxDir(namePrefix+"reg-c"), "nothing is created without a registry")
	assert.Equal(t, damaged, mustRead(t, regPath), "the damaged file is never overwritten")

	require.NoError(t, os.Rename(regPath, regPath+".bad"))
	// A copy of a's folder that runs init first does not take a's running stack.
	clone := filepath.Join(e.Dev, "copy-of-a")
	e.git(e.Dev, "clone", "-q", e.Main, clone)
	require.NoError(t, os.WriteFile(filepath.Join(clone, ".env.sandbox"), mustRead(t, filepath.Join(e.sandboxDir(a), ".env.sandbox")), 0o644))
	r = e.sbx(clone, "sandbox:init")
	assert.Equal(t, 1, r.Code)
	assert.Contains(t, r.Stderr, e.sandboxDir(a)+" is where its stack was started")
	assert.Contains(t, r.Stderr, "one of the two folders is a copy")
	require.NoError(t, os.Remove(filepath.Join(clone, ".env.sandbox")))
	r = e.must(e.sandboxDir(b), "sandbox:init")
	assert.Contains(t, r.Stdout, "ktrdr--"+b+" in slot 2")
	assert.Contains(t, r.Stdout, "again")
	e.must(e.sandboxDir(a), "sandbox:init")
	l := e.must(e.Main, "sandbox:list")
	assert.Regexp(t, `ktrdr--`+a+`\s+1\s+running`, l.Stdout, "the running stack is its own again")
	assert.Regexp(t, `ktrdr--`+b+`\s+2\s+stopped`, l.Stdout)
	assert.NotContains(t, l.Stdout, "Unregistered stack")

	e.must(e.Main, "sandbox:destroy", "-name="+a)
	c, v, n := projectResources("ktrdr--" + a)
	assert.Zero(t, c+v+n, "destroy finds and removes the stack")
	assert.NotContains(t, e.branches(), a, "the branch the sandbox created is deleted")
}

// Ctrl-C during destroy, in each of its phases, leaves exactly what that
// phase has not removed yet, and a second destroy finishes the job.
func TestInterruptedDestroyIsResumable(t *testing.T) {
	needDocker(t)
	for i, tc := range []struct {
		phase       string
		tool        string
		words       []string
		stackGone   bool   // the stack was removed before the interrupt
		interrupted string // what sandbox:list says of the entry
	}{
		// Compose is stopping the stack: nothing is removed yet, and the
		// entry is not marked (destroy marks it only once the stack is gone).
		{phase: "while compose down stops the stack", tool: "docker", words: []string{"compose", "down"}},
		// The stack is gone; git is removing the worktree: the entry is
		// marked as an interrupted destroy, the checkout is still whole.
		{phase: "while git removes the worktree", tool: "git", words: []string{"worktree", "remove"}, stackGone: true, interrupted: "destroying"},
	} {
		t.Run(tc.phase, func(t *testing.T) {
			e := newEnv(t)
			name := fmt.Sprintf("%sintr%d", namePrefix, i)
			id := "ktrdr--" + name
			e.must(e.Main, "sandbox:create", name, "-standin")
			dir := e.sandboxDir(name)
			e.must(dir, "sandbox:up", "-nowait")
			running, _, _ := projectResources(id)
			require.Equal(t, len(sandbox.KTRDR().Services), running, "the stack runs")

			h := e.holdAt(t, tc.phase, tc.tool, false, tc.words...)
			h.inPhase = func() {
				c, _, _ := projectResources(id)
				if tc.stackGone {
					assert.Zero(t, c, "compose down has finished")
				} else {
					assert.Equal(t, running, c)
				}
			}
			r := e.interruptAt(t, h, dir, "sandbox:destroy")
			assert.Equal(t, 1, r.Code)

			c, v, n := projectResources(id)
			if tc.stackGone {
				assert.Contains(t, r.Stdout, "Removed the stack of "+id)
				assert.Zero(t, c+v+n, "the stack, its volumes and network are gone")
			} else {
				assert.NotContains(t, r.Stdout, "Removed the stack")
				assert.Equal(t, running, c, "compose down never ran: every container is still there")
			}
			assert.NotContains(t, r.Stdout, "Removed worktree")
			assert.Contains(t, e.registry(), id, "the entry stays until the last step")
			assert.FileExists(t, filepath.Join(dir, ".env.sandbox"), "the worktree is whole")
			assert.Contains(t, e.branches(), name, "the branch stays")
			assert.DirExists(t, e.instanceRecords(id), "the teardown copy stays")
			assert.Equal(t, tc.interrupted, listed(t, e, id).Interrupted)

			e.must(e.Main, "sandbox:destroy", "-name="+name)
			e.assertNoTrace(t, strings.TrimPrefix(name, namePrefix))
			c, v, n = projectResources(id)
			assert.Zero(t, c+v+n)
		})
	}
}

// listEntry is one instance of sandbox:list -json.
type listEntry struct {
	ID          string `json:"id"`
	Interrupted string `json:"interrupted"`
}

// listed returns sandbox:list -json's entry for id (zero when not listed).
func listed(t *testing.T, e *env, id string) listEntry {
	t.Helper()
	r := e.must(e.Main, "sandbox:list", "-json")
	var l struct {
		Instances []listEntry `json:"instances"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &l))
	for _, in := range l.Instances {
		if in.ID == id {
			return in
		}
	}
	return listEntry{}
}

// Ctrl-C during create, in each phase that makes something, leaves nothing:
// no entry, folder, worktree record, branch or kept records.
func TestInterruptedCreateLeavesNothing(t *testing.T) {
	needDocker(t)
	for i, tc := range []struct {
		phase string
		after bool // the held git call has done its work
	}{
		{phase: "before git makes the worktree"},
		{phase: "after git made the worktree and branch, before create recorded them", after: true},
	} {
		t.Run(tc.phase, func(t *testing.T) {
			e := newEnv(t)
			name := fmt.Sprintf("int%d", i)
			full := namePrefix + name
			h := e.holdAt(t, tc.phase, "git", tc.after, "worktree", "add")
			h.inPhase = func() {
				assert.Contains(t, e.registry(), "ktrdr--"+full, "the slot is reserved")
				if tc.after {
					assert.FileExists(t, filepath.Join(e.sandboxDir(full), ".git"), "git made the worktree")
					assert.Contains(t, e.branches(), full, "git made the branch")
				} else {
					assert.NoFileExists(t, filepath.Join(e.sandboxDir(full), ".git"))
					assert.NotContains(t, e.branches(), full)
				}
			}
			r := e.interruptAt(t, h, e.Main, "sandbox:create", full)
			assert.Equal(t, 1, r.Code)
			assert.Contains(t, r.Stdout, "Reserved slot 1 for ktrdr--"+full, "interrupted after the slot was reserved")
			assert.NotContains(t, r.Stdout, "Created worktree", "interrupted before create saw git finish")
			e.assertNoTrace(t, name)
			assert.Empty(t, e.registry())
		})
	}
}

// Ctrl-C during up: while compose starts the stack, nothing half-started is
// left; while the gate waits, the stack keeps running and no failed gate is
// recorded. Either way a second up finishes the job.
func TestInterruptedUp(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	name := namePrefix + "intup"
	id := "ktrdr--" + name
	e.must(e.Main, "sandbox:create", name, "-standin")
	dir := e.sandboxDir(name)
	e.must(e.Main, "stack:images") // the image build is not the phase under test
	lastGate := func() *struct{} {
		var st struct {
			LastGate *struct{} `json:"last_gate"`
		}
		require.NoError(t, json.Unmarshal([]byte(e.must(dir, "sandbox:status", "-json").Stdout), &st))
		return st.LastGate
	}

	// Compose has made every container and the layered start has started
	// the first of them: up removes them again. The data (volumes), the
	// entry and the env file stay.
	h := e.holdAt(t, "the layered start, a first service started", "docker", true, "start")
	h.inPhase = func() {
		c, _, _ := projectResources(id)
		assert.Equal(t, len(sandbox.KTRDR().Services), c, "compose made every container")
		assert.NotEmpty(t, dockerIDs("ps", "-q", "--filter", "label=com.docker.compose.project="+id), "one runs")
	}
	r := e.interruptAt(t, h, dir, "sandbox:up")
	assert.Equal(t, 1, r.Code)
	assert.NotContains(t, r.Stderr, "startability gate", "interrupted before the gate")
	// mage allows a cancelled target 5 s; the stop it began may end after it.
	require.Eventually(t, func() bool { c, _, _ := projectResources(id); return c == 0 },
		phaseWait, 200*time.Millisecond, "no half-started stack is left")
	_, v, _ := projectResources(id)
	assert.Positive(t, v, "the data is kept")
	assert.Contains(t, e.registry(), id)
	assert.FileExists(t, filepath.Join(dir, ".env.sandbox"))
	assert.Nil(t, lastGate(), "no gate ran")

	// The gate waits for a backend that starts listening in an hour, once
	// another check has passed ("✓ "): up on a started stack goes straight to
	// the gate. The stack keeps running; the interrupted gate is not recorded.
	writeOverride(t, dir, "services:\n  backend:\n    environment:\n      KTRDR_STANDIN_START_DELAY: \"1h\"\n")
	e.must(dir, "sandbox:up", "-nowait")
	r = e.interruptWhen(t, dir, "the gate", func(stdout string) bool { return strings.Contains(stdout, "✓ ") }, "sandbox:up")
	assert.Equal(t, 1, r.Code)
	assert.Contains(t, r.Stderr, "startability gate of "+id+": interrupted")
	assert.Contains(t, r.Stderr, "keeps running", "the hint says the stack was left running")
	assert.NotContains(t, r.Stdout, "FAILED")
	assert.NotContains(t, r.Stdout, "✗", "checks cut short are not shown as failed")
	assert.Contains(t, r.Stdout, "Backend healthy (interrupted)")
	c, _, _ := projectResources(id)
	assert.Equal(t, len(sandbox.KTRDR().Services), c, "the stack keeps running")
	assert.Nil(t, lastGate(), "an interrupted gate is not a result")

	// A second up finishes the job once the backend can start.
	e.must(dir, "sandbox:down")
	require.NoError(t, os.Remove(filepath.Join(dir, "docker-compose.sandbox.override.yml")))
	up := e.must(dir, "sandbox:up")
	assert.Contains(t, up.Stdout, "Startability Gate: PASSED")
	e.must(dir, "sandbox:destroy", "-force")
}

// lockedBuffer is an output buffer a test may read while a process writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
