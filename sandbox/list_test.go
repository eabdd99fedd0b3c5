package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listFixture registers sandboxes names (slots 1, 2, …), each a folder
// with its env file, and returns a manager whose docker is handle.
func listFixture(t *testing.T, handle func(c driver.Cmd) ([]byte, error), names ...string) *Manager {
	t.Helper()
	p := KTRDR()
	m := &Manager{Profile: p, Home: t.TempDir(), Runner: &fakeRunner{handle: handle}, Now: time.Now}
	dev := t.TempDir()
	require.NoError(t, m.Registry().Update(t.Context(), func(in map[string]Instance) error {
		for i, name := range names {
			dir := filepath.Join(dev, "ktrdr--"+name)
			require.NoError(t, os.MkdirAll(dir, 0o755))
			require.NoError(t, p.WriteEnv(filepath.Join(dir, p.EnvFile), p.NewEnv(name, i+1, "", time.Now(), false)))
			in[p.InstanceID(name)] = Instance{Slot: i + 1, Path: dir, CreatedAt: time.Now().UTC().Format(time.RFC3339)}
		}
		return nil
	}))
	for _, name := range names {
		// up has started it before (it records the stack's services).
		require.NoError(t, m.writeMeta(p.InstanceID(name), meta{Services: len(p.Services)}))
	}
	return m
}

// forgetStarts removes the records of up having started the sandboxes.
func forgetStarts(t *testing.T, m *Manager, names ...string) {
	t.Helper()
	for _, name := range names {
		require.NoError(t, m.removeInstanceDir(m.Profile.InstanceID(name)))
	}
}

// listEngine answers docker ps with stacks and docker stats with what
// their running containers use (1 % and 100 MiB each).
func listEngine(stacks map[string]int) (ps, stats string) {
	var psl, statsl []string
	for project, running := range stacks {
		for i, s := range KTRDR().Services {
			state := "running"
			if i >= running {
				state = "exited"
			}
			psl = append(psl, lcPSLine(project, s.Name, project, state, "Up"))
			if state == "running" {
				statsl = append(statsl, fmt.Sprintf(`{"ID":%q,"CPUPerc":"1.00%%","MemUsage":"100MiB / 23.54GiB"}`, lcContainerID(project, s.Name)))
			}
		}
	}
	return strings.Join(psl, "\n") + "\n", strings.Join(statsl, "\n") + "\n"
}

// docker ps and docker stats are asked at the same time: each answers only
// once the other has been asked.
func TestListAsksStatsAlongsidePS(t *testing.T) {
	ps, stats := listEngine(map[string]int{"ktrdr--a": 9, "ktrdr--b": 0})
	psAsked, statsAsked := make(chan struct{}), make(chan struct{})
	m := listFixture(t, func(c driver.Cmd) ([]byte, error) {
		mine, other, out := psAsked, statsAsked, ps
		if c.Args[0] == "stats" {
			mine, other, out = statsAsked, psAsked, stats
		}
		close(mine)
		select {
		case <-other:
			return []byte(out), nil
		case <-time.After(10 * time.Second):
			return nil, errors.New("asked alone: the other call did not come")
		}
	}, "a", "b")
	l, err := m.List(t.Context())
	require.NoError(t, err)
	assert.Empty(t, l.Warning)
	assert.Empty(t, l.StatsErrors)
	require.Len(t, l.Instances, 2)
	assert.Equal(t, ptrTo(9.0), l.Instances[0].CPUPercent)
	assert.Equal(t, ptrTo(900*mib), l.Instances[0].MemoryBytes)
	assert.Nil(t, l.Instances[1].MemoryBytes, "b is stopped")
}

// When none of the registry's sandboxes runs, the list does not wait for
// docker stats (here one that would never answer) and shows no figures.
func TestListDoesNotWaitForStatsWhenNothingRuns(t *testing.T) {
	ps, _ := listEngine(map[string]int{"ktrdr--a": 0, "ktrdr--other": 9})
	m := listFixture(t, func(c driver.Cmd) ([]byte, error) {
		if c.Args[0] == "stats" {
			<-time.After(time.Minute) // far beyond statsTimeout: a list that waited would report the stats error
			return nil, errors.New("stats answered late")
		}
		return []byte(ps), nil
	}, "a")
	l, err := m.List(t.Context())
	require.NoError(t, err)
	assert.Empty(t, l.StatsErrors, "the stats call was not waited for")
	require.Len(t, l.Instances, 1)
	assert.Equal(t, StateStopped, l.Instances[0].State)
	assert.Nil(t, l.Instances[0].CPUPercent)
}

// Sandboxes up never started: docker stats is not asked while none runs,
// and asked after docker ps when one does (a stack started by other means,
// or by a version of this tool that kept no record).
func TestListOfSandboxesNeverStarted(t *testing.T) {
	ps, stats := listEngine(map[string]int{"ktrdr--b": 9, "ktrdr--other": 9})
	m := listFixture(t, func(c driver.Cmd) ([]byte, error) {
		if c.Args[0] == "stats" {
			return []byte(stats), nil
		}
		return []byte(ps), nil
	}, "a", "b")
	forgetStarts(t, m, "a", "b")
	l, err := m.List(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"ps", "stats"}, dockerSubcommands(m.Runner.(*fakeRunner)), "stats after ps")
	require.Len(t, l.Instances, 2)
	assert.Equal(t, ptrTo(900*mib), l.Instances[1].MemoryBytes)

	ps, _ = listEngine(map[string]int{"ktrdr--a": 0, "ktrdr--other": 9})
	m.Runner = &fakeRunner{handle: func(c driver.Cmd) ([]byte, error) { return []byte(ps), nil }}
	_, err = m.List(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"ps"}, dockerSubcommands(m.Runner.(*fakeRunner)), "nothing of the registry runs: no stats at all")
}

// An empty registry: docker ps only (for unregistered stacks).
func TestListWithoutSandboxesAsksNoStats(t *testing.T) {
	ps, _ := listEngine(map[string]int{"ktrdr--ghost": 9})
	m := listFixture(t, func(c driver.Cmd) ([]byte, error) { return []byte(ps), nil })
	l, err := m.List(t.Context())
	require.NoError(t, err)
	assert.Len(t, l.Orphans, 1)
	assert.Equal(t, []string{"ps"}, dockerSubcommands(m.Runner.(*fakeRunner)))
}

// docker stats failing costs the list its figures, not the list.
func TestListWhenStatsFails(t *testing.T) {
	ps, _ := listEngine(map[string]int{"ktrdr--a": 9})
	m := listFixture(t, func(c driver.Cmd) ([]byte, error) {
		if c.Args[0] == "stats" {
			return nil, &driver.ExitError{Cmd: "docker stats", Code: 1, Stderr: "stats are broken"}
		}
		return []byte(ps), nil
	}, "a")
	l, err := m.List(t.Context())
	require.NoError(t, err)
	require.Len(t, l.Instances, 1)
	assert.Equal(t, StateRunning, l.Instances[0].State)
	assert.Nil(t, l.Instances[0].CPUPercent)
	assert.Contains(t, l.StatsErrors["local"], "stats are broken")
}

// An engine that does not answer docker ps: its sandboxes are unknown, the
// local one is still listed with its figures, and the dead engine's stats
// call is not waited for.
func TestListWithAnEngineDown(t *testing.T) {
	ps, stats := listEngine(map[string]int{"ktrdr--a": 9})
	m := listFixture(t, func(c driver.Cmd) ([]byte, error) {
		remote := c.Args[0] == "--context"
		args := c.Args
		if remote {
			args = args[2:]
		}
		switch {
		case remote && args[0] == "ps":
			return nil, &driver.ExitError{Cmd: "docker --context big ps", Code: 1, Stderr: "connection refused"}
		case remote:
			<-time.After(time.Minute) // does not answer
		case args[0] == "stats":
			return []byte(stats), nil
		}
		return []byte(ps), nil
	}, "a", "far")
	require.NoError(t, m.Registry().Update(t.Context(), func(in map[string]Instance) error {
		far := in["ktrdr--far"]
		far.Engine = Engine{Context: "big", Host: "big.example"}
		in["ktrdr--far"] = far
		return nil
	}))
	done := make(chan struct{})
	var l *Listing
	go func() {
		defer close(done)
		var err error
		l, err = m.List(t.Context())
		assert.NoError(t, err)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the list waited for an engine that does not answer")
	}
	require.NotNil(t, l)
	require.Len(t, l.Instances, 2)
	assert.Equal(t, ptrTo(900*mib), l.Instances[0].MemoryBytes)
	assert.Equal(t, StateUnknown, l.Instances[1].State)
	assert.Contains(t, l.EngineErrors["big"], "connection refused")
	assert.Empty(t, l.StatsErrors)
}

// dockerSubcommands are the docker subcommands a fake runner was asked.
func dockerSubcommands(r *fakeRunner) []string {
	var out []string
	for _, c := range r.commands() {
		out = append(out, strings.Fields(c)[1])
	}
	return out
}
