package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// upFixture is a sandbox root with an env file on free high ports and a
// manager whose docker is scripted by handle.
func upFixture(t *testing.T, handle func(c driver.Cmd) ([]byte, error)) (*Manager, string, *fakeRunner) {
	p := pfProfile(t)
	root := t.TempDir()
	compose, err := os.ReadFile(filepath.Join("..", "docker-compose.sandbox.yml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(root, "docker-compose.sandbox.yml"), compose, 0o644))
	require.NoError(t, p.WriteEnv(filepath.Join(root, p.EnvFile), p.NewEnv("up", 1, "", time.Now(), false)))
	r := &fakeRunner{handle: func(c driver.Cmd) ([]byte, error) {
		if c.Name == "docker" && slices.Contains(c.Args, "version") {
			return []byte("2.40.3\n"), nil
		}
		return handle(c)
	}}
	m := &Manager{Profile: p, Home: t.TempDir(), Runner: r, Now: time.Now}
	return m, root, r
}

func upCompose(r *fakeRunner, sub string) int {
	n := 0
	for _, c := range r.commands() {
		if strings.HasPrefix(c, "docker compose ") && strings.Contains(c, " "+sub+" ") || strings.HasSuffix(c, " "+sub) {
			n++
		}
	}
	return n
}

func TestUpStopsAHalfStartedStackWhenComposeFails(t *testing.T) {
	m, root, r := upFixture(t, func(c driver.Cmd) ([]byte, error) {
		if slices.Contains(c.Args, "up") {
			return nil, &driver.ExitError{Cmd: "docker compose up", Code: 1, Stderr: "Bind for 0.0.0.0:8001 failed: port is already allocated"}
		}
		return nil, nil
	})
	_, err := m.Up(t.Context(), UpOptions{Dir: root})
	var ce *ComposeError
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, err.Error(), "port is already allocated")
	var down []string
	for _, c := range r.commands() {
		if strings.Contains(c, " down ") {
			down = append(down, c)
		}
	}
	require.Len(t, down, 1, "the partly started stack is stopped: %v", r.commands())
	assert.NotContains(t, down[0], "--volumes", "its data is kept")
	assert.Contains(t, down[0], "-p ktrdr--up --env-file "+filepath.Join(root, ".env.sandbox"))
}

func TestUpOnARunningStackStartsNothing(t *testing.T) {
	var ps strings.Builder
	for _, s := range KTRDR().Services {
		ps.WriteString(`{"Labels":"com.docker.compose.project=ktrdr--up,com.docker.compose.service=` + s.Name +
			`,org.ktrdr.sandbox.instance=ktrdr--up","State":"running","Status":"Up 1 minute"}` + "\n")
	}
	m, root, r := upFixture(t, func(c driver.Cmd) ([]byte, error) {
		if len(c.Args) > 0 && c.Args[0] == "ps" {
			return []byte(ps.String()), nil
		}
		if slices.Contains(c.Args, "up") {
			return nil, errors.New("must not be called")
		}
		return nil, nil
	})
	var events []Event
	m.Events = func(e Event) { events = append(events, e) }
	res, err := m.Up(t.Context(), UpOptions{Dir: root, NoWait: true})
	require.NoError(t, err)
	assert.True(t, res.AlreadyRunning)
	assert.Zero(t, upCompose(r, "up"))
	require.Len(t, events, 1)
	assert.Equal(t, EvAlreadyRunning, events[0].Kind)
	assert.Equal(t, len(m.Profile.Services), events[0].Total)
}

func TestUpOutsideASandbox(t *testing.T) {
	m, _, _ := upFixture(t, func(driver.Cmd) ([]byte, error) { return nil, nil })
	_, err := m.Up(t.Context(), UpOptions{Dir: t.TempDir()})
	var ns *NotSandboxError
	assert.ErrorAs(t, err, &ns)
}
