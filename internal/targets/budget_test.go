package targets

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/magefile/mage/mg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox"
	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// registerRunning registers sandbox name in slot (a folder beside the main
// checkout holding its env file), as create would, without asking for ports.
func (w *world) registerRunning(t *testing.T, name string, slot int) string {
	t.Helper()
	p := sandbox.KTRDR()
	dir := filepath.Join(w.dev, "ktrdr--"+name)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, p.WriteEnv(filepath.Join(dir, p.EnvFile), p.NewEnv(name, slot, "", time.Now(), false)))
	m, err := sandbox.LoadManager(w.home)
	require.NoError(t, err)
	require.NoError(t, m.Registry().Update(t.Context(), func(in map[string]sandbox.Instance) error {
		in[p.InstanceID(name)] = sandbox.Instance{Slot: slot, Path: dir, CreatedAt: time.Now().UTC().Format(time.RFC3339)}
		return nil
	}))
	return dir
}

// engineWith answers docker ps with projects whose nine containers all
// run, docker stats with each container using mem, and docker info with
// total; compose down of a project in failDown fails.
func engineWith(total, mem int64, projects []string, failDown ...string) func(c driver.Cmd) ([]byte, error, bool) {
	var ps, stats []string
	for _, project := range projects {
		for _, s := range sandbox.KTRDR().Services {
			id := fmt.Sprintf("%064x", len(ps)+1)
			ps = append(ps, fmt.Sprintf(`{"ID":%q,"Labels":"com.docker.compose.project=%s,com.docker.compose.service=%s,org.ktrdr.sandbox.instance=%s","State":"running","Status":"Up 1 minute"}`,
				id, project, s.Name, project))
			stats = append(stats, fmt.Sprintf(`{"ID":%q,"CPUPerc":"0.50%%","MemUsage":"%s / 8GiB"}`, id, driver.FormatSize(mem)))
		}
	}
	return func(c driver.Cmd) ([]byte, error, bool) {
		switch {
		case len(c.Args) == 0:
		case c.Args[0] == "ps" && slices.Contains(c.Args, "-q"):
			return nil, nil, true // the stack up made: no containers in this fake
		case c.Args[0] == "ps":
			return []byte(strings.Join(ps, "\n") + "\n"), nil, true
		case c.Args[0] == "stats":
			return []byte(strings.Join(stats, "\n") + "\n"), nil, true
		case c.Args[0] == "info":
			return fmt.Appendf(nil, "%d %d\n", total, len(ps)), nil, true
		case isCompose(c, "down"):
			project := c.Args[slices.Index(c.Args, "-p")+1]
			if slices.Contains(failDown, project) {
				return nil, &driver.ExitError{Cmd: c.String(), Code: 1, Stderr: "compose says no"}, true
			}
		}
		return nil, nil, false
	}
}

// up refused by the memory budget: exit 5, the sandboxes using most named
// with their folders, the remedies in the hint, nothing started.
func TestUpRefusedForMemory(t *testing.T) {
	w := newWorld(t)
	w.adopt(t, 9)
	a := w.registerRunning(t, "big", 7)
	w.registerRunning(t, "small", 8)
	write(t, filepath.Join(w.home, ".ktrdr", "sandbox", "config.json"), `{"min_free_memory": "6GiB"}`)
	// 8 GiB in all; big and small use 9 × 100 MiB each; one more such stack leaves 5.4 GiB.
	w.docker.answer = engineWith(8<<30, 100<<20, []string{"ktrdr--big", "ktrdr--small"})
	err := Sandbox{}.Up(t.Context(), ptr(true), nil, nil, nil, nil)
	t.Logf("stdout:\n%s\nstderr:\n%s", w.out, w.errOut)
	require.Error(t, err)
	assert.Equal(t, 5, mg.ExitStatus(err))
	msg := err.Error()
	assert.Contains(t, msg, "not enough free memory to start ktrdr--ktrdr2 on engine local")
	assert.Contains(t, msg, "min_free_memory keeps 6GiB free")
	assert.Contains(t, msg, "ktrdr--big uses 900MiB ("+a+")")
	assert.Contains(t, msg, "ktrdr--small uses 900MiB")
	assert.Contains(t, msg, "hint: stop a sandbox you do not need now (data kept): cd "+a+" && go tool mage sandbox:down, or every running sandbox with go tool mage sandbox:down -all")
	for _, c := range w.docker.calls {
		assert.False(t, strings.HasPrefix(c, "docker start "), "nothing was started: %s", c)
	}

	// Turned off: the same engine starts it.
	write(t, filepath.Join(w.home, ".ktrdr", "sandbox", "config.json"), `{"min_free_memory": 0}`)
	w.out.Reset()
	require.NoError(t, Sandbox{}.Up(t.Context(), ptr(true), nil, nil, nil, nil))
	assert.Contains(t, w.out.String(), "Started ktrdr--ktrdr2 without waiting")
}

// A settings file with a size that is not one is refused, naming the file.
func TestMinFreeMemorySetting(t *testing.T) {
	for value, want := range map[string]int64{`"2GiB"`: 2 << 30, `"512MB"`: 512e6, `1073741824`: 1 << 30, `0`: 0} {
		w := newWorld(t)
		write(t, filepath.Join(w.home, ".ktrdr", "sandbox", "config.json"), `{"min_free_memory": `+value+`}`)
		m, _, err := manager()
		require.NoError(t, err, value)
		assert.Equal(t, want, m.MinFreeMemory, value)
	}
	w := newWorld(t)
	m, _, err := manager()
	require.NoError(t, err)
	assert.Equal(t, sandbox.DefaultMinFreeMemory, m.MinFreeMemory, "no file: the default")
	for _, bad := range []string{`"lots"`, `-1`, `1.5`, `"-2GiB"`, `true`} {
		write(t, filepath.Join(w.home, ".ktrdr", "sandbox", "config.json"), `{"min_free_memory": `+bad+`}`)
		err := Sandbox{}.List(t.Context(), nil)
		assert.Equal(t, 1, mg.ExitStatus(err), bad)
		assert.ErrorContains(t, err, "config.json", bad)
		assert.ErrorContains(t, err, "fix or remove the settings file", bad)
	}
}

// sandbox:list shows CPU and MEM of running sandboxes.
func TestListShowsUsage(t *testing.T) {
	w := newWorld(t)
	w.registerRunning(t, "big", 7)
	w.registerRunning(t, "idle", 9)
	w.docker.answer = engineWith(8<<30, 100<<20, []string{"ktrdr--big"})
	t.Chdir(w.main)
	require.NoError(t, Sandbox{}.List(t.Context(), nil))
	assert.Regexp(t, `INSTANCE\s+SLOT\s+STATE\s+CPU\s+MEM\s+ENGINE\s+API PORT`, w.out.String())
	assert.Regexp(t, `ktrdr--big\s+7\s+running\s+4\.5%\s+900MiB\s+local\s+8007`, w.out.String())
	assert.Regexp(t, `ktrdr--idle\s+9\s+stopped\s+-\s+-\s+local\s+8009`, w.out.String())
}

// sandbox:down -all -volumes is refused before anything runs; -all -json
// prints what was stopped, the steps going to stderr.
func TestDownAllTarget(t *testing.T) {
	w := newWorld(t)
	w.registerRunning(t, "big", 7)
	w.registerRunning(t, "small", 8)
	w.docker.answer = engineWith(8<<30, 100<<20, []string{"ktrdr--big", "ktrdr--small"})
	t.Chdir(w.main)

	err := Sandbox{}.Down(t.Context(), ptr(true), ptr(true), nil)
	assert.Equal(t, 1, mg.ExitStatus(err))
	assert.ErrorContains(t, err, "sandbox:down -all -volumes: refused")
	assert.ErrorContains(t, err, "hint: -all stops every sandbox and keeps their data")
	assert.Empty(t, w.docker.calls, "nothing ran")

	require.NoError(t, Sandbox{}.Down(t.Context(), nil, ptr(true), ptr(true)))
	var res sandbox.DownAllResult
	require.NoError(t, json.Unmarshal(w.out.Bytes(), &res), "stdout is only JSON: %s", w.out)
	assert.Equal(t, []sandbox.StopResult{
		{ID: "ktrdr--big", Path: filepath.Join(w.dev, "ktrdr--big"), Engine: "local", Stopped: true},
		{ID: "ktrdr--small", Path: filepath.Join(w.dev, "ktrdr--small"), Engine: "local", Stopped: true},
	}, res.Sandboxes)
	assert.Contains(t, w.errOut.String(), "Stopped ktrdr--big ("+filepath.Join(w.dev, "ktrdr--big")+"; data kept)")
	downs := 0
	for _, c := range w.docker.calls {
		if strings.Contains(c, " down ") {
			downs++
			assert.NotContains(t, c, "--volumes")
		}
	}
	assert.Equal(t, 2, downs)

	// Nothing running.
	w.docker.answer = engineWith(8<<30, 100<<20, nil)
	w.out.Reset()
	require.NoError(t, Sandbox{}.Down(t.Context(), nil, ptr(true), nil))
	assert.Equal(t, "No sandbox is running: nothing to stop\n", w.out.String())
}
