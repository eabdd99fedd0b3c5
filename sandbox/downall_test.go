package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// downAllEngine fakes docker for DownAll: ps lists stacks, compose is v2,
// and compose down of a project answers downErr[project] (nil: stopped).
type downAllEngine struct {
	ps      string
	downErr map[string]error

	mu       sync.Mutex
	downs    []string // the projects compose down was run for
	inFlight int
	maxAtOne int
}

func (d *downAllEngine) handle(c driver.Cmd) ([]byte, error) {
	switch {
	case slices.Equal(c.Args, []string{"compose", "version", "--short"}):
		return []byte("v2.40.3\n"), nil
	case c.Args[0] == "ps":
		return []byte(d.ps), nil
	case c.Args[0] == "compose" && slices.Contains(c.Args, "down"):
		project := c.Args[slices.Index(c.Args, "-p")+1]
		d.mu.Lock()
		d.downs = append(d.downs, strings.Join(c.Args, " "))
		d.inFlight++
		d.maxAtOne = max(d.maxAtOne, d.inFlight)
		d.mu.Unlock()
		time.Sleep(20 * time.Millisecond) // a stop takes a while: let the others overlap
		d.mu.Lock()
		d.inFlight--
		d.mu.Unlock()
		return nil, d.downErr[project]
	}
	return nil, nil
}

func (d *downAllEngine) down(project string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.downs {
		if strings.Contains(c, "-p "+project+" ") {
			return c
		}
	}
	return ""
}

func TestDownAllStopsEveryRunningSandbox(t *testing.T) {
	ps, _ := listEngine(map[string]int{"ktrdr--a": 9, "ktrdr--b": 3, "ktrdr--c": 0, "ktrdr--gone": 9, "ktrdr--e": 9, "ktrdr--ghost": 9})
	d := &downAllEngine{ps: ps}
	m := listFixture(t, d.handle, "a", "b", "c", "gone", "e")
	var events []Event
	m.Events = func(e Event) { events = append(events, e) }
	// gone's folder was deleted by hand; the copy kept for teardown stays.
	in, err := m.Registry().Instances()
	require.NoError(t, err)
	goneDir := in["ktrdr--gone"].Path
	require.NoError(t, os.WriteFile(filepath.Join(goneDir, m.Profile.SandboxCompose), []byte("services: {}\n"), 0o644))
	require.NoError(t, m.saveTeardownCopy("ktrdr--gone", goneDir, meta{}))
	require.NoError(t, os.RemoveAll(goneDir))

	res, err := m.DownAll(t.Context(), DownAllOptions{})
	require.NoError(t, err)
	var ids []string
	for _, r := range res.Sandboxes {
		ids = append(ids, r.ID)
		assert.True(t, r.Stopped, r.ID)
		assert.Empty(t, r.Error, r.ID)
		assert.Equal(t, "local", r.Engine)
	}
	assert.Equal(t, []string{"ktrdr--a", "ktrdr--b", "ktrdr--e", "ktrdr--gone"}, ids, "every running sandbox (a partial one too), by id; not the stopped one, nor an unregistered stack")
	assert.Len(t, d.downs, 4)
	for _, c := range d.downs {
		assert.NotContains(t, c, "--volumes", "data is kept")
	}
	assert.Contains(t, d.down("ktrdr--a"), "--env-file "+filepath.Join(in["ktrdr--a"].Path, ".env.sandbox"), "from its folder")
	kept := m.instanceDir("ktrdr--gone")
	assert.Contains(t, d.down("ktrdr--gone"), "--env-file "+filepath.Join(kept, ".env.sandbox")+" --project-directory "+kept+" -f "+filepath.Join(kept, "docker-compose.sandbox.yml"), "from the kept copy")
	assert.Empty(t, d.down("ktrdr--c"))
	assert.LessOrEqual(t, d.maxAtOne, DownAllConcurrency, "at most two at once")
	assert.Len(t, events, 4)
	for _, e := range events {
		assert.Equal(t, EvStackStopped, e.Kind)
	}
}

func TestDownAllNamesWhatItCouldNotStop(t *testing.T) {
	ps, _ := listEngine(map[string]int{"ktrdr--a": 9, "ktrdr--b": 9})
	// c's project holds a container that is not its own.
	ps += lcPSLine("ktrdr--c", "db", "ktrdr--someone-else", "running", "Up") + "\n"
	d := &downAllEngine{ps: ps, downErr: map[string]error{"ktrdr--b": &driver.ExitError{Cmd: "docker compose down", Code: 1, Stderr: "compose says no"}}}
	m := listFixture(t, d.handle, "a", "b", "c")
	var events []Event
	m.Events = func(e Event) { events = append(events, e) }

	res, err := m.DownAll(t.Context(), DownAllOptions{Concurrency: 1})
	var de *DownAllError
	require.ErrorAs(t, err, &de)
	require.NotNil(t, res)
	assert.Equal(t, 3, de.Of)
	require.Len(t, de.Failed, 2)
	assert.Equal(t, "ktrdr--b", de.Failed[0].ID)
	assert.Contains(t, de.Failed[0].Error, "compose says no")
	assert.Equal(t, "ktrdr--c", de.Failed[1].ID)
	assert.Contains(t, de.Failed[1].Error, "is not this sandbox's")
	assert.Contains(t, err.Error(), "could not stop 2 of 3 sandbox(es):")
	assert.Contains(t, err.Error(), "ktrdr--b (")
	assert.True(t, res.Sandboxes[0].Stopped, "a was stopped all the same")
	assert.Empty(t, d.down("ktrdr--c"), "a project that is not the sandbox's is not touched")
	assert.Equal(t, 1, d.maxAtOne)
	kinds := map[EventKind]int{}
	for _, e := range events {
		kinds[e.Kind]++
	}
	assert.Equal(t, map[EventKind]int{EvStackStopped: 1, EvStackStopFailed: 2}, kinds)
}

func TestDownAllWithNothingRunning(t *testing.T) {
	ps, _ := listEngine(map[string]int{"ktrdr--a": 0, "ktrdr--ghost": 9})
	d := &downAllEngine{ps: ps}
	m := listFixture(t, d.handle, "a")
	res, err := m.DownAll(t.Context(), DownAllOptions{})
	require.NoError(t, err)
	assert.Empty(t, res.Sandboxes)
	assert.NotNil(t, res.Sandboxes, "JSON: an empty list, not null")
	assert.Empty(t, d.downs)
}

// An engine that does not answer: its sandboxes are named as not stopped
// (whether they run is not known); the others are stopped.
func TestDownAllWithAnEngineDown(t *testing.T) {
	ps, _ := listEngine(map[string]int{"ktrdr--a": 9})
	d := &downAllEngine{ps: ps}
	m := listFixture(t, func(c driver.Cmd) ([]byte, error) {
		if c.Args[0] == "--context" {
			return nil, &driver.ExitError{Cmd: "docker --context big ps", Code: 1, Stderr: "connection refused"}
		}
		return d.handle(c)
	}, "a", "far")
	require.NoError(t, m.Registry().Update(t.Context(), func(in map[string]Instance) error {
		far := in["ktrdr--far"]
		far.Engine = Engine{Context: "big", Host: "big.example"}
		in["ktrdr--far"] = far
		return nil
	}))
	res, err := m.DownAll(t.Context(), DownAllOptions{})
	var de *DownAllError
	require.ErrorAs(t, err, &de)
	require.Len(t, de.Failed, 1)
	assert.Equal(t, "ktrdr--far", de.Failed[0].ID)
	assert.Equal(t, "big", de.Failed[0].Engine)
	assert.Contains(t, de.Failed[0].Error, "connection refused")
	require.Len(t, res.Sandboxes, 2)
	assert.True(t, res.Sandboxes[0].Stopped)
}
