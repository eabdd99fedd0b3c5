package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// faulty creates a stand-in sandbox whose services get the given fault
// environment through the sandbox's compose override file.
func faulty(t testing.TB, e *env, name string, faults map[string]map[string]string) string {
	e.must(e.Main, "sandbox:create", name, "-standin")
	dir := e.sandboxDir(name)
	var b strings.Builder
	b.WriteString("services:\n")
	for svc, vars := range faults {
		fmt.Fprintf(&b, "  %s:\n    environment:\n", svc)
		for k, v := range vars {
			fmt.Fprintf(&b, "      %s: %q\n", k, v)
		}
	}
	writeOverride(t, dir, b.String())
	return dir
}

func TestGateFailsOnUnhealthyBackend(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	dir := faulty(t, e, namePrefix+"sick", map[string]map[string]string{"backend": {"KTRDR_STANDIN_FAIL_HEALTH": "1"}})
	r := e.sbx(dir, "sandbox:up", "-timeout=6s")
	assert.Equal(t, 2, r.Code, r.String())
	assert.Contains(t, r.Stdout, "Startability Gate: FAILED")
	assert.Contains(t, r.Stdout, "✗ Backend healthy (service backend")
	assert.Contains(t, r.Stdout, "last error:")
	assert.Contains(t, r.Stdout, "503")
	m := regexp.MustCompile(`last (\d+) log lines of backend:`).FindStringSubmatch(r.Stdout)
	require.NotNil(t, m, "the backend's log tail is shown")
	assert.LessOrEqual(t, len(m[1]), 2)
	assert.NotContains(t, r.Stdout, "✗ Database ready", "only failing checks are listed")
	// The last gate result is kept for status.
	st := e.must(dir, "sandbox:status")
	assert.Contains(t, st.Stdout, "Startability gate: FAILED")
}

func TestGateCountsRegisteredWorkers(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	dir := faulty(t, e, namePrefix+"shy", map[string]map[string]string{"backtest-worker-2": {"KTRDR_STANDIN_NO_REGISTER": "1"}})
	r := e.sbx(dir, "sandbox:up", "-timeout=6s")
	assert.Equal(t, 2, r.Code, r.String())
	assert.Contains(t, r.Stdout, "✗ Workers registered")
	assert.Contains(t, r.Stdout, "array has 3 entries, want ≥ 4")
}

func TestGateAbortsEarlyWhenAServiceExits(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	dir := faulty(t, e, namePrefix+"dies", map[string]map[string]string{
		"training-worker-1": {"KTRDR_STANDIN_NO_REGISTER": "1", "KTRDR_STANDIN_EXIT_AFTER": "2s"}})
	r := e.sbx(dir, "sandbox:up", "-timeout=5m")
	assert.Equal(t, 2, r.Code, r.String())
	assert.Contains(t, r.Stdout, "service training-worker-1 is Exited (3)")
	assert.NotContains(t, r.Stdout, "timed out", "the gate ended on the exit, not the 5-minute timeout")
	assert.Contains(t, r.Stdout, "log lines of training-worker-1")
}

// A port held by a plain process stops up before any container starts.
func TestUpRefusesPortHeldByProcess(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	name := namePrefix + "blocked"
	e.must(e.Main, "sandbox:create", name, "-standin")
	ln, err := net.Listen("tcp", "0.0.0.0:5012") // slot 1's third worker port
	require.NoError(t, err)
	defer ln.Close()

	r := e.sbx(e.sandboxDir(name), "sandbox:up")
	assert.Equal(t, 3, r.Code, r.String())
	assert.Contains(t, r.Stderr, "port 5012 (KTRDR_WORKER_PORT_3, training-worker-1")
	assert.Contains(t, r.Stderr, fmt.Sprintf("process %d", os.Getpid()))
	assert.Contains(t, r.Stderr, "hint:")
	c, v, n := projectResources("ktrdr--" + name)
	assert.Zero(t, c+v+n, "nothing was started")
}

// A port held by another sandbox's container names that container and project.
func TestUpRefusesPortHeldByAnotherSandbox(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	a, b := namePrefix+"holder", namePrefix+"clash"
	e.must(e.Main, "sandbox:create", a, "-standin")
	e.must(e.Main, "sandbox:create", b, "-standin")
	e.must(e.sandboxDir(a), "sandbox:up", "-nowait")
	// b's env file was edited by hand to a's API port.
	envB := filepath.Join(e.sandboxDir(b), ".env.sandbox")
	data, err := os.ReadFile(envB)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(envB, []byte(strings.Replace(string(data), "KTRDR_API_PORT=8002", "KTRDR_API_PORT=8001", 1)), 0o644))

	r := e.sbx(e.sandboxDir(b), "sandbox:up")
	assert.Equal(t, 3, r.Code, r.String())
	assert.Contains(t, r.Stderr, "port 8001 (KTRDR_API_PORT, backend API) is held by container")
	assert.Contains(t, r.Stderr, "compose project ktrdr--"+a+", service backend")
	c, v, n := projectResources("ktrdr--" + b)
	assert.Zero(t, c+v+n, "nothing of b was started")
}
