package e2e

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sandbox:shell from a script: stdin is a pipe, so compose exec gets -T and
// the shell runs stdin. The stand-in image has no bash: its own sh answers,
// with pipes, and the shell's exit status is the target's.
func TestShellInAStandinSandbox(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	name := namePrefix + "shell"
	e.must(e.Main, "sandbox:create", name, "-standin")
	dir := e.sandboxDir(name)
	// -build: the stand-in image of this checkout, whose sh reads stdin.
	e.must(dir, "sandbox:up", "-build")

	r := e.sbxIn(dir, "echo hello from $0 | cat\ncurl -fsS http://localhost:8000/api/v1/health | grep -q ok && echo healthy\nexit\n", "sandbox:shell")
	require.Equal(t, 0, r.Code, "%s", r)
	assert.Equal(t, "hello from sh\nhealthy\n", r.Stdout, "stdout is the shell's alone")
	assert.Contains(t, r.Stderr, "sh in service backend of sandbox ktrdr--"+name)

	r = e.sbxIn(dir, "pg_isready -U ktrdr > /dev/null 2>&1 || exit 9\nexit 3\n", "sandbox:shell", "-service=db")
	assert.Equal(t, 3, r.Code, "the shell's status: %s", r)
	assert.Contains(t, r.Stderr, "sh in service db of sandbox ktrdr--"+name+" ended with exit status 3")

	r = e.sbxIn(dir, "", "sandbox:shell", "-service=nosuch")
	assert.Equal(t, 1, r.Code, "%s", r)
	assert.Contains(t, r.Stderr, `no service "nosuch" (its services: backend, backtest-worker-1`)
	assert.Contains(t, r.Stderr, "hint: pick one of the services named above with -service=S")
}
