package sandbox

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// shellExecs returns the recorded `compose … exec …` calls.
func (r *lcRunner) shellExecs() []driver.Cmd { return r.composeCalls("exec") }

// execArgs is what follows "exec" in a compose call.
func execArgs(c driver.Cmd) []string { return c.Args[slices.Index(c.Args, "exec")+1:] }

// shellFake answers the probe for bash with probe (nil: bash is there) and
// the shell itself with shell.
func shellFake(probe, shell error) func(c driver.Cmd) any {
	return func(c driver.Cmd) any {
		if !slices.Contains(c.Args, "exec") {
			return nil
		}
		if slices.Contains(c.Args, "--version") {
			if probe != nil {
				return probe
			}
			return "GNU bash, version 5.2\n"
		}
		if shell != nil {
			return shell
		}
		return ""
	}
}

// shellFixture registers sandbox feat-a in slot 1 as create would (a
// folder with the project's compose file and an env file) without asking
// for its ports, which other stacks on this machine may hold.
func shellFixture(t *testing.T) (*lcEnv, string) {
	t.Helper()
	e := lcSetup(t)
	p := e.m.Profile
	dir := e.wt("feat-a")
	data, err := os.ReadFile(filepath.Join("..", p.SandboxCompose))
	require.NoError(t, err)
	lcWrite(t, filepath.Join(dir, p.SandboxCompose), string(data))
	require.NoError(t, p.WriteEnv(filepath.Join(dir, p.EnvFile), p.NewEnv("feat-a", 1, "", lcNow(), false)))
	require.NoError(t, e.m.Registry().Update(t.Context(), func(in map[string]Instance) error {
		in[p.InstanceID("feat-a")] = Instance{Slot: 1, Path: dir, CreatedAt: lcNow().UTC().Format(time.RFC3339)}
		return nil
	}))
	return e, dir
}

func TestShell(t *testing.T) {
	noBash := &driver.ExitError{Cmd: "docker compose exec", Code: 126, Stderr: `exec: "bash": executable file not found in $PATH`}
	for _, tc := range []struct {
		name      string
		service   string
		tty       bool
		probe     error
		wantShell string
		wantArgs  []string // after exec, for the shell
	}{
		{"bash in the backend, at a terminal", "", true, nil, "bash", []string{"backend", "bash"}},
		{"sh where the image has no bash", "", true, noBash, "sh", []string{"backend", "sh"}},
		{"127 also means no bash", "", true, &driver.ExitError{Code: 127}, "sh", []string{"backend", "sh"}},
		{"stdin not a terminal: -T", "", false, nil, "bash", []string{"-T", "backend", "bash"}},
		{"another service", "db", false, noBash, "sh", []string{"-T", "db", "sh"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, dir := shellFixture(t)
			e.r.setPS(
				lcPSLine("ktrdr--feat-a", "backend", "ktrdr--feat-a", "running", "Up 1 minute"),
				lcPSLine("ktrdr--feat-a", "db", "ktrdr--feat-a", "running", "Up 1 minute"))
			e.r.reset()
			e.r.dockerFn = shellFake(tc.probe, nil)
			var events []Event
			e.m.Events = func(ev Event) { events = append(events, ev) }
			in := strings.NewReader("echo hello; exit\n")
			var out, errOut bytes.Buffer
			s, err := e.m.Shell(t.Context(), ShellOptions{Dir: dir, Service: tc.service, TTY: tc.tty, Stdin: in, Stdout: &out, Stderr: &errOut})
			require.NoError(t, err)
			assert.Equal(t, &ShellSession{ID: "ktrdr--feat-a", Service: tc.wantArgs[len(tc.wantArgs)-2], Shell: tc.wantShell}, s)
			assert.Equal(t, []Event{{Kind: EvShellStarting, ID: "ktrdr--feat-a", Service: s.Service, Source: tc.wantShell}}, events)

			execs := e.r.shellExecs()
			require.Len(t, execs, 2, "the probe, then the shell")
			assert.Equal(t, []string{"-T", s.Service, "bash", "--version"}, execArgs(execs[0]), "the probe never reads stdin")
			assert.Nil(t, execs[0].Stdin)
			sh := execs[1]
			assert.Equal(t, tc.wantArgs, execArgs(sh))
			assert.Equal(t, "docker", sh.Name)
			assert.Equal(t, []string{"compose", "-p", "ktrdr--feat-a", "--env-file", filepath.Join(dir, ".env.sandbox")}, sh.Args[:5])
			for i, a := range sh.Args {
				if a == "-f" || a == "--env-file" || a == "--project-directory" {
					assert.True(t, filepath.IsAbs(sh.Args[i+1]), "%s %s is absolute", a, sh.Args[i+1])
				}
			}
			assert.Contains(t, sh.Args, filepath.Join(dir, "docker-compose.sandbox.yml"))
			assert.Same(t, in, sh.Stdin, "stdin passes through")
			assert.Same(t, &out, sh.Stdout, "stdout passes through")
		})
	}
}

func TestShellRefuses(t *testing.T) {
	e, dir := shellFixture(t)
	e.r.setPS(lcPSLine("ktrdr--feat-a", "db", "ktrdr--feat-a", "running", "Up 1 minute"),
		lcPSLine("ktrdr--feat-a", "backend", "ktrdr--feat-a", "exited", "Exited (1) 1 minute ago"))
	e.r.dockerFn = shellFake(nil, nil)

	t.Run("a service the stack does not have", func(t *testing.T) {
		e.r.reset()
		_, err := e.m.Shell(t.Context(), ShellOptions{Dir: dir, Service: "nosuch"})
		var se *ShellServiceError
		require.ErrorAs(t, err, &se)
		assert.False(t, se.NotRunning)
		assert.Contains(t, err.Error(), `no service "nosuch"`)
		assert.Contains(t, err.Error(), "backend, backtest-worker-1")
		assert.Contains(t, se.Services, "db")
		assert.Empty(t, e.r.shellExecs())
	})
	t.Run("a service that does not run", func(t *testing.T) {
		e.r.reset()
		_, err := e.m.Shell(t.Context(), ShellOptions{Dir: dir})
		var se *ShellServiceError
		require.ErrorAs(t, err, &se)
		assert.True(t, se.NotRunning)
		assert.Equal(t, "backend", se.Service)
		assert.Equal(t, []string{"db"}, se.Services)
		assert.Contains(t, err.Error(), "not running (running: db)")
		assert.Empty(t, e.r.shellExecs())
	})
	t.Run("not a sandbox", func(t *testing.T) {
		_, err := e.m.Shell(t.Context(), ShellOptions{Dir: e.main})
		var ns *NotSandboxError
		assert.ErrorAs(t, err, &ns)
	})
	t.Run("the probe fails otherwise: no shell", func(t *testing.T) {
		e.r.reset()
		e.r.dockerFn = shellFake(&driver.ExitError{Code: 1, Stderr: "Error response from daemon: container is paused"}, nil)
		_, err := e.m.Shell(t.Context(), ShellOptions{Dir: dir, Service: "db"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "look for bash")
		assert.Contains(t, err.Error(), "paused")
		assert.Len(t, e.r.shellExecs(), 1)
	})
	t.Run("the shell's exit status", func(t *testing.T) {
		e.r.reset()
		e.r.dockerFn = shellFake(nil, &driver.ExitError{Code: 3})
		s, err := e.m.Shell(t.Context(), ShellOptions{Dir: dir, Service: "db"})
		var xe *ShellExitError
		require.ErrorAs(t, err, &xe)
		assert.Equal(t, "bash in service db of sandbox ktrdr--feat-a ended with exit status 3", err.Error())
		var ee *driver.ExitError
		require.True(t, errors.As(err, &ee))
		assert.Equal(t, 3, ee.Code)
		assert.Equal(t, "bash", s.Shell)
	})
}
