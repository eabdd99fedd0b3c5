package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 20: a checkout's compose files are input from a branch. What they
// name outside the checkout is never read, nothing hangs on a FIFO, and a
// refused file leaves nothing made.
func TestComposeFilesFromABranchReadNothingOutside(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	outside := filepath.Join(e.Dev, "outside") // ../outside of the main checkout
	require.NoError(t, os.MkdirAll(outside, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "x.yml"),
		[]byte("services:\n  stolen:\n    image: outside\n    ports: [\"${STOLEN_PORT:-7777}:80\"]\n"), 0o644))
	sandboxFile := filepath.Join(e.Main, "docker-compose.sandbox.yml")
	original := mustRead(t, sandboxFile)
	withHead := func(head string) {
		require.NoError(t, os.WriteFile(sandboxFile, append([]byte(head), original...), 0o644))
	}

	t.Run("an include leaving the checkout", func(t *testing.T) {
		withHead("include: [../outside/x.yml]\n")
		for _, args := range [][]string{{"sandbox:ports"}, {"sandbox:create", "incl", "-standin"}} {
			r := e.sbx(e.Main, args...)
			assert.Equal(t, 1, r.Code, r.String())
			assert.Contains(t, r.Stderr, filepath.Join(outside, "x.yml"))
			assert.Contains(t, r.Stderr, "include of docker-compose.sandbox.yml")
			assert.Contains(t, r.Stderr, "outside the checkout")
			assert.NotContains(t, r.Stdout, "stolen")
		}
		assert.NoDirExists(t, e.sandboxDir("incl"), "a refused create makes no worktree")
		assert.False(t, e.hasBranch("incl"))
	})

	t.Run("an include of a FIFO and of /dev/zero", func(t *testing.T) {
		fifo := filepath.Join(e.Main, "pipe.yml")
		require.NoError(t, syscall.Mkfifo(fifo, 0o644))
		defer os.Remove(fifo)
		for _, target := range []string{"pipe.yml", "/dev/zero"} {
			withHead("include: [" + target + "]\n")
			start := time.Now()
			r := e.sbx(e.Main, "sandbox:ports")
			assert.Equal(t, 1, r.Code, r.String())
			assert.Contains(t, r.Stderr, "refused to read")
			t.Logf("%s refused in %s", target, time.Since(start).Round(time.Millisecond))
		}
	})

	t.Run("an env_file or label_file outside, in a profile-only service", func(t *testing.T) {
		withTools := strings.Replace(string(original), "\nservices:\n",
			"\nservices:\n  tools:\n    image: t\n    profiles: [tools]\n    env_file: [../outside/x.yml]\n", 1)
		require.NoError(t, os.WriteFile(sandboxFile, []byte(withTools), 0o644))
		r := e.sbx(e.Main, "sandbox:ports")
		assert.Equal(t, 1, r.Code, r.String())
		assert.Contains(t, r.Stderr, "env_file of service tools of docker-compose.sandbox.yml")
	})

	// A sandbox made from a sound file, whose checkout then gains an
	// override that links outside: up refuses before anything is made, and
	// destroy still removes the sandbox (compose reads the copy kept at create).
	require.NoError(t, os.WriteFile(sandboxFile, original, 0o644))
	e.must(e.Main, "sandbox:create", "linked", "-standin")
	dir := e.sandboxDir("linked")
	require.NoError(t, os.Symlink(filepath.Join(outside, "x.yml"), filepath.Join(dir, "docker-compose.sandbox.override.yml")))
	up := e.sbx(dir, "sandbox:up")
	assert.Equal(t, 1, up.Code, up.String())
	assert.Contains(t, up.Stderr, "docker-compose.sandbox.override.yml")
	assert.Contains(t, up.Stderr, "outside the checkout")
	c, v, n := projectResources("ktrdr--linked")
	assert.Equal(t, [3]int{0, 0, 0}, [3]int{c, v, n}, "nothing was made for the refused up")
	require.NoError(t, os.Remove(filepath.Join(dir, "docker-compose.sandbox.override.yml")))
	e.must(dir, "sandbox:destroy", "-force")
	assert.NoDirExists(t, dir)
}

// Issue 20: what every sandbox shares is named: literal ports and ranges,
// the host's network and named volumes, by sandbox:ports and at create.
func TestSharedPortsAndVolumesAreNamed(t *testing.T) {
	e := newEnv(t)
	writeOverride(t, e.Main, "services:\n"+
		"  tools:\n    image: t\n    profiles: [tools]\n    ports: [\"9100-9101:9100-9101\", \"${TOOLS_PORT:-7300}:80\"]\n    volumes: [cache:/cache]\n"+
		"  web:\n    image: w\n    profiles: [web]\n    ports: [\"${HTTP_PORT:-80}:80\"]\n"+
		"volumes:\n  cache:\n    name: shared-cache\n")
	r := e.must(e.Main, "sandbox:ports")
	for _, want := range []string{"TOOLS_PORT", "HTTP_PORT", "9100:9100", "9101:9101", "the same in every slot",
		"warning: service tools publishes the literal host port 9100", "warning: volume cache is named shared-cache"} {
		assert.Contains(t, r.Stdout, want)
	}
	var plan struct {
		Shared []struct{ Key, Name string } `json:"shared_volumes"`
	}
	require.NoError(t, json.Unmarshal([]byte(e.must(e.Main, "sandbox:ports", "-json").Stdout), &plan))
	assert.Equal(t, []struct{ Key, Name string }{{"cache", "shared-cache"}}, plan.Shared)
	created := e.must(e.Main, "sandbox:create", "shares", "-standin")
	assert.Contains(t, created.Stdout+created.Stderr, "volume cache is named shared-cache")
	assert.True(t, strings.Contains(created.Stdout+created.Stderr, "9100"), "the literal port is named at create")
}
