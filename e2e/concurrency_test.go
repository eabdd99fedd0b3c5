package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// start runs a command of the README (go tool mage …, go run magefile.go …)
// in dir as a separate process and returns its result when it ends.
func (e *env) start(dir string, args ...string) func() result {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir, cmd.Env = dir, e.Env
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Start()
	return func() result {
		defer cancel()
		if err == nil {
			err = cmd.Wait()
		}
		r, err := resultOf(err, out.String(), errb.String())
		if err != nil {
			r.Code, r.Stderr = -1, r.Stderr+err.Error()
		}
		return r
	}
}

// The README's entry points, many at once in one checkout, with a cold
// mage cache: every one succeeds, and the work tree stays clean.
func TestEntryPointsRunConcurrentlyInOneCheckout(t *testing.T) {
	e := newEnv(t)
	var waits []func() result
	var names []string
	for i := range 30 {
		args := []string{"go", "tool", "mage", "sandbox:list", "-json"}
		switch {
		case i%5 == 4:
			args = []string{"go", "run", "magefile.go", "sandbox:url"}
		case i%7 == 3:
			args = []string{"go", "tool", "mage", "-l"}
		}
		names = append(names, strings.Join(args, " "))
		waits = append(waits, e.start(e.Main, args...))
	}
	for i, w := range waits {
		r := w()
		assert.Equal(t, 0, r.Code, "%s:\n%s", names[i], r)
		switch {
		case strings.HasSuffix(names[i], "-json"):
			var l struct{ Instances []any }
			assert.NoError(t, json.Unmarshal([]byte(r.Stdout), &l), names[i])
		case strings.HasSuffix(names[i], "sandbox:url"):
			assert.Equal(t, "http://localhost:8000\n", r.Stdout)
		default:
			assert.Contains(t, r.Stdout, "sandbox:create")
		}
	}
	assert.Empty(t, e.git(e.Main, "status", "--porcelain", "--ignored"), "nothing is written into the work tree")

	// Mage's flags keep working.
	r := e.run(e.Main, "go", "tool", "mage", "-h", "sandbox:url")
	require.Equal(t, 0, r.Code, r.String())
	assert.Contains(t, r.Stdout, "mage sandbox:url [<flags>]")
	// A wrong command line exits 64, never a target's own 2 ("gate failed").
	r = e.run(e.Main, "go", "tool", "mage", "sandbox:up", "-timeout=abc")
	assert.Equal(t, 64, r.Code, "a bad flag is a usage error")
	assert.Contains(t, r.Stderr, `sandbox:up: flag -timeout=abc: "abc" is not a duration`)
	assert.Empty(t, r.Stdout, "nothing ran")
	r = e.run(e.Main, "go", "tool", "mage", "sandbox:nosuchtarget")
	assert.Equal(t, 64, r.Code)
	assert.Contains(t, r.Stderr, `unknown target "sandbox:nosuchtarget"`)
	r = e.run(e.Main, "go", "tool", "mage", "sandbox:create")
	assert.Equal(t, 64, r.Code)
	assert.Contains(t, r.Stderr, "sandbox:create needs <name>")

	// A changed magefile, then a changed library file, take effect on the next call.
	cache := filepath.Join(e.Home, ".cache", "ktrdr-sandbox", "mage")
	programs := func() int {
		n := 0
		ents, _ := os.ReadDir(cache)
		for _, d := range ents {
			if len(d.Name()) == 64 {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, programs(), "one program for all those calls")
	extra := filepath.Join(e.Main, "magefiles", "e2eextra.go")
	for _, v := range []string{"one", "two"} {
		require.NoError(t, os.WriteFile(extra, []byte("//go:build mage\n\npackage main\n\nimport \"fmt\"\n\n// E2eExtra prints a word.\nfunc E2eExtra() { fmt.Println(\""+v+"\") }\n"), 0o644))
		r = e.run(e.Main, "go", "tool", "mage", "e2eExtra")
		require.Equal(t, 0, r.Code, r.String())
		assert.Equal(t, v+"\n", r.Stdout)
	}
	before := programs()
	f, err := os.OpenFile(filepath.Join(e.Main, "sandbox", "doc.go"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("// changed by the e2e test\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	r = e.run(e.Main, "go", "run", "magefile.go", "sandbox:url")
	require.Equal(t, 0, r.Code, r.String())
	assert.Equal(t, before+1, programs(), "a library change builds a new program")
	f, err = os.OpenFile(filepath.Join(e.Main, "internal", "targets", "doc.go"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("// changed by the e2e test\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	r = e.run(e.Main, "go", "tool", "mage", "sandbox:url")
	require.Equal(t, 0, r.Code, r.String())
	assert.Equal(t, before+2, programs(), "a change in the targets package builds a new program")
}

// 8 creates at once from the main checkout, through the README's entry
// point: all succeed, in 8 distinct slots.
func TestConcurrentCreatesThroughGoToolMage(t *testing.T) {
	e := newEnv(t)
	needDocker(t)
	// Warm the cache first so that the creates race each other, not the compiler.
	require.Equal(t, 0, e.run(e.Main, "go", "tool", "mage", "-l").Code)
	const n = 8
	var waits []func() result
	for i := range n {
		waits = append(waits, e.start(e.Main, "go", "tool", "mage", "sandbox:create", fmt.Sprintf("%spar%d", namePrefix, i), "-json"))
	}
	var slots []int
	for i, w := range waits {
		r := w()
		require.Equal(t, 0, r.Code, "create %d:\n%s", i, r)
		var c struct{ Slot int }
		require.NoError(t, json.Unmarshal([]byte(r.Stdout), &c))
		slots = append(slots, c.Slot)
	}
	slices.Sort(slots)
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8}, slots)
	for i := range n {
		e.must(e.Main, "sandbox:destroy", fmt.Sprintf("-name=%spar%d", namePrefix, i))
	}
	e.assertNoTrace(t, "par0")
}

// assertNoTrace checks that nothing of sandbox name (without the prefix) is
// left: folder, branch, worktree record, registry entry, teardown copy.
func (e *env) assertNoTrace(t *testing.T, name string) {
	t.Helper()
	name = namePrefix + name
	id := "ktrdr--" + name
	assert.NoDirExists(t, e.sandboxDir(name))
	assert.NotContains(t, e.git(e.Main, "worktree", "list", "--porcelain"), e.sandboxDir(name))
	assert.False(t, e.hasBranch(name), "branch %s", name)
	data, err := os.ReadFile(filepath.Join(e.Home, ".ktrdr", "sandbox", "instances.json"))
	if err == nil {
		assert.NotContains(t, string(data), `"`+id+`"`)
	}
	assert.NoDirExists(t, filepath.Join(e.Home, ".ktrdr", "sandbox", "instances", id))
}

// killAfter starts a target and kills it, with its children, by SIGKILL after d (or lets it
// finish first). It returns what the target printed and whether the kill landed.
func (e *env) killAfter(d time.Duration, dir string, args ...string) (result, bool) {
	cmd := exec.Command(filepath.Join(binDir, "sbx"), args...)
	cmd.Dir, cmd.Env = dir, e.Env
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// Its own process group, killed whole, as a terminal or a CI runner
	// kills a job: git and compose die with it at the same moment.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(e.t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	landed := false
	select {
	case err = <-done:
	case <-time.After(d):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-done
		landed = true
	}
	r, rerr := resultOf(err, out.String(), errb.String())
	require.NoError(e.t, rerr)
	return r, landed
}

// killState is what a killed create or destroy of one sandbox left, read
// from the files (the registry, the kept records, the folder, git).
type killState struct {
	registered bool   // the registry has the entry
	records    bool   // the kept records folder (teardown copy, meta.json) exists
	metaFile   bool   // meta.json exists
	phase      string // meta.json's phase: "", "creating", "destroying"
	folder     bool   // the worktree folder exists
	gitFile    bool   // it holds git's .git file
	envFile    bool   // it holds the env file
	branch     bool   // the branch exists
	listed     string // what sandbox:list -json says of an unfinished run ("" when finished or not listed)
}

func (e *env) killState(t *testing.T, name string) killState {
	t.Helper()
	full := namePrefix + name
	id := "ktrdr--" + full
	var st killState
	_, st.registered = e.registry()[id]
	st.records = exists(e.instanceRecords(id))
	if data, err := os.ReadFile(filepath.Join(e.instanceRecords(id), "meta.json")); err == nil {
		st.metaFile = true
		var mt struct {
			Phase string `json:"phase"`
		}
		require.NoError(t, json.Unmarshal(data, &mt), "meta.json: %s", data)
		st.phase = mt.Phase
	}
	dir := e.sandboxDir(full)
	st.folder = exists(dir)
	st.gitFile = exists(filepath.Join(dir, ".git"))
	st.envFile = exists(filepath.Join(dir, ".env.sandbox"))
	st.branch = e.hasBranch(full)
	st.listed = listed(t, e, id).Interrupted
	return st
}

// createPhase names the phase of create that a kill hit, from what it left
// (see Manager.Create: the entry, then the record, the folder, git, the env
// file, the finished record), and asserts that the state is the one that
// phase leaves.
func (e *env) createPhase(t *testing.T, round int, r result, landed bool, st killState) string {
	t.Helper()
	msg := fmt.Sprintf("round %d, create (%+v):\n%s", round, st, r)
	switch {
	case !landed:
		assert.Equal(t, 0, r.Code, msg)
		assert.True(t, st.registered && st.envFile && st.branch && st.metaFile && st.phase == "", "a finished create is complete: %s", msg)
		assert.Empty(t, st.listed, msg)
		return "none: it finished first"
	case !st.registered:
		assert.False(t, st.records || st.folder || st.branch, "nothing is made before the slot is reserved: %s", msg)
		return "before the slot was reserved"
	case !st.metaFile:
		assert.False(t, st.folder || st.branch, "nothing is made before the record: %s", msg)
		return "slot reserved, before the record"
	case st.phase == phaseCreatingE2E:
		assert.Equal(t, phaseCreatingE2E, st.listed, "list reports the interrupted create: %s", msg)
		switch {
		case !st.folder:
			return "record written, before the folder"
		case !st.gitFile:
			return "folder made, before git wrote the worktree"
		case !st.envFile:
			return "git writing the worktree, or it is made and the env file not yet"
		default:
			return "env file written, before the record was finished"
		}
	default:
		assert.Empty(t, st.phase, msg)
		assert.True(t, st.registered && st.envFile && st.branch, "a create that finished its record is complete: %s", msg)
		assert.Empty(t, st.listed, msg)
		return "record finished, on its way out"
	}
}

// destroyPhase is createPhase for destroy -force of a sandbox without a
// stack (see Manager.Destroy: the stack, the checkout marked "destroying",
// the branch, the kept records, then the entry).
func (e *env) destroyPhase(t *testing.T, round int, r result, landed bool, st killState) string {
	t.Helper()
	msg := fmt.Sprintf("round %d, destroy (%+v):\n%s", round, st, r)
	nothing := !st.registered && !st.records && !st.folder && !st.branch
	switch {
	case !landed:
		assert.Equal(t, 0, r.Code, msg)
		assert.True(t, nothing, "a finished destroy leaves nothing: %s", msg)
		return "none: it finished first"
	case !st.registered:
		assert.True(t, nothing, "the entry goes last: %s", msg)
		return "after the entry was removed"
	case !st.records:
		assert.False(t, st.folder || st.branch, "the records go after the checkout and branch: %s", msg)
		return "records removed, before the entry"
	case !st.metaFile:
		assert.False(t, st.folder || st.branch, "the records go after the checkout and branch: %s", msg)
		return "removing the records"
	case st.phase == phaseDestroyingE2E:
		assert.Equal(t, phaseDestroyingE2E, st.listed, "list reports the interrupted destroy: %s", msg)
		switch {
		case st.folder:
			return "removing the worktree"
		case st.branch:
			return "worktree removed, before the branch"
		default:
			return "checkout and branch removed, before the records"
		}
	default:
		assert.Empty(t, st.phase, msg)
		assert.True(t, st.folder && st.envFile && st.branch, "before the checkout is marked, it is whole: %s", msg)
		assert.Empty(t, st.listed, msg)
		return "before the checkout was marked (registry and stack checks)"
	}
}

// The phases meta.json records (sandbox/meta.go).
const (
	phaseCreatingE2E   = "creating"
	phaseDestroyingE2E = "destroying"
)

// Kill -9 during create and during destroy, at random moments over many
// rounds: each round logs the phase the kill hit, read from what it left,
// and asserts that what is left is that phase's state; every command reads
// the state, and destroy -force removes every trace.
func TestKillDuringCreateAndDestroy(t *testing.T) {
	e := newEnv(t)
	needDocker(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	// How long the two commands take here, to spread the kills over them.
	start := time.Now()
	e.must(e.Main, "sandbox:create", namePrefix+"probe")
	createTook := time.Since(start)
	start = time.Now()
	e.must(e.Main, "sandbox:destroy", "-name="+namePrefix+"probe", "-force")
	destroyTook := time.Since(start)
	t.Logf("create %s, destroy %s", createTook, destroyTook)

	landed := map[string]int{}
	phases := map[string]int{}
	gitLocks := 0
	for round := range 20 {
		name := fmt.Sprintf("k%d", round)
		full := namePrefix + name
		d := time.Duration(rng.Int64N(int64(createTook) * 12 / 10))
		r, ok := e.killAfter(d, e.Main, "sandbox:create", full)
		if ok {
			landed["create"]++
		}
		st := e.killState(t, name)
		phase := e.createPhase(t, round, r, ok, st)
		phases["create: "+phase]++
		t.Logf("round %d: create killed after %s: phase hit: %s", round, d, phase)
		e.assertReadable(t)
		// git's lock of the new branch: a `git worktree add -b` killed with
		// the create leaves refs/heads/<branch>.lock, which no git command
		// removes and which would refuse the name to every later create.
		// destroy -force removes it (only for its own sandbox's branch,
		// after a killed run).
		lock := filepath.Join(e.Main, ".git", "refs", "heads", full+".lock")
		if exists(lock) {
			assert.True(t, st.registered && st.phase == phaseCreatingE2E && st.folder,
				"round %d: a branch lock without a create killed while git ran (%s, %+v)", round, phase, st)
			t.Logf("round %d: git left %s", round, lock)
			gitLocks++
		}
		r = e.sbx(e.Main, "sandbox:destroy", "-name="+full, "-force")
		assert.False(t, exists(lock), "round %d: destroy -force removed the lock git left", round)
		require.Equal(t, 0, r.Code, "round %d (create killed after %s, %s):\n%s", round, d, phase, r)
		e.assertNoTrace(t, name)

		e.must(e.Main, "sandbox:create", full)
		d = time.Duration(rng.Int64N(int64(destroyTook) * 12 / 10))
		r, ok = e.killAfter(d, e.Main, "sandbox:destroy", "-name="+full, "-force")
		if ok {
			landed["destroy"]++
		}
		phase = e.destroyPhase(t, round, r, ok, e.killState(t, name))
		phases["destroy: "+phase]++
		t.Logf("round %d: destroy killed after %s: phase hit: %s", round, d, phase)
		e.assertReadable(t)
		r = e.sbx(e.Main, "sandbox:destroy", "-name="+full, "-force")
		require.Equal(t, 0, r.Code, "round %d (destroy killed after %s, %s):\n%s", round, d, phase, r)
		e.assertNoTrace(t, name)
	}
	t.Logf("kills that landed before the command ended: %v of 20 each", landed)
	t.Logf("phases hit: %v", phases)
	t.Logf("branch locks git left behind: %d", gitLocks)
	assert.Positive(t, landed["create"])
	assert.Positive(t, landed["destroy"])
}

// assertReadable runs the read-only commands against whatever state a kill
// left: each must read it without error.
func (e *env) assertReadable(t *testing.T) {
	t.Helper()
	r := e.sbx(e.Main, "sandbox:list", "-json")
	require.Equal(t, 0, r.Code, r.String())
	var l struct {
		Instances []struct {
			Slot int `json:"slot"`
		} `json:"instances"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &l))
	seen := map[int]bool{}
	for _, in := range l.Instances {
		assert.False(t, seen[in.Slot], "slot %d twice", in.Slot)
		seen[in.Slot] = true
	}
	assert.Equal(t, 0, e.sbx(e.Main, "sandbox:url").Code)
}
