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
	assert.Empty(t, e.git(e.Main, "branch", "--list", name), "branch %s", name)
	data, err := os.ReadFile(filepath.Join(e.Home, ".ktrdr", "sandbox", "instances.json"))
	if err == nil {
		assert.NotContains(t, string(data), `"`+id+`"`)
	}
	assert.NoDirExists(t, filepath.Join(e.Home, ".ktrdr", "sandbox", "instances", id))
}

// killAfter starts a target and kills it, with its children, by SIGKILL after d (or lets it
// finish first). It reports whether the kill landed.
func (e *env) killAfter(d time.Duration, dir string, args ...string) bool {
	cmd := exec.Command(filepath.Join(binDir, "sbx"), args...)
	cmd.Dir, cmd.Env = dir, e.Env
	// Its own process group, killed whole, as a terminal or a CI runner
	// kills a job: git and compose die with it at the same moment.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(e.t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return false
	case <-time.After(d):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return true
	}
}

// Kill -9 during create and during destroy, at random moments over many
// rounds: after each, every command reads the state, and destroy -force
// removes every trace.
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
	for round := range 20 {
		name := fmt.Sprintf("k%d", round)
		full := namePrefix + name
		d := time.Duration(rng.Int64N(int64(createTook) * 12 / 10))
		if e.killAfter(d, e.Main, "sandbox:create", full) {
			landed["create"]++
		}
		e.assertReadable(t)
		r := e.sbx(e.Main, "sandbox:destroy", "-name="+full, "-force")
		require.Equal(t, 0, r.Code, "round %d (create killed after %s):\n%s", round, d, r)
		e.assertNoTrace(t, name)

		e.must(e.Main, "sandbox:create", full)
		d = time.Duration(rng.Int64N(int64(destroyTook) * 12 / 10))
		if e.killAfter(d, e.Main, "sandbox:destroy", "-name="+full, "-force") {
			landed["destroy"]++
		}
		e.assertReadable(t)
		r = e.sbx(e.Main, "sandbox:destroy", "-name="+full, "-force")
		require.Equal(t, 0, r.Code, "round %d (destroy killed after %s):\n%s", round, d, r)
		e.assertNoTrace(t, name)
	}
	t.Logf("kills that landed before the command ended: %v of 20 each", landed)
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
