package sandbox

import (
	"context"
	"errors"
	"fmt"
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

func ptrTo[T any](v T) *T { return &v }

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
)

func TestMemoryBudgetArithmetic(t *testing.T) {
	tests := []struct {
		name      string
		b         memoryBudget
		freeAfter int64
		fits      bool
	}{
		{"plenty free", memoryBudget{Total: 16 * gib, Used: 4 * gib, Estimate: 2 * gib, Floor: 2 * gib}, 10 * gib, true},
		{"exactly the floor left fits", memoryBudget{Total: 16 * gib, Used: 10 * gib, Estimate: 4 * gib, Floor: 2 * gib}, 2 * gib, true},
		{"a byte under the floor", memoryBudget{Total: 16 * gib, Used: 10*gib + 1, Estimate: 4 * gib, Floor: 2 * gib}, 2*gib - 1, false},
		{"nothing runs, no estimate: free is the total", memoryBudget{Total: 8 * gib, Floor: 2 * gib}, 8 * gib, true},
		{"a floor above the machine refuses even an empty engine", memoryBudget{Total: 8 * gib, Floor: 9 * gib}, 8 * gib, false},
		{"already over-committed", memoryBudget{Total: 8 * gib, Used: 9 * gib, Estimate: gib, Floor: 2 * gib}, -2 * gib, false},
		{"floor 0: the check is off", memoryBudget{Total: 8 * gib, Used: 9 * gib, Estimate: gib}, -2 * gib, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.freeAfter, tt.b.freeAfter())
			assert.Equal(t, tt.fits, tt.b.fits())
		})
	}
}

func TestStackEstimate(t *testing.T) {
	tests := []struct {
		name   string
		others []int64
		own    int64
		want   int64
	}{
		{"no sandbox runs: 0", nil, 0, 0},
		{"one: its use", []int64{2 * gib}, 0, 2 * gib},
		{"odd count: the middle one", []int64{3 * gib, gib, 2 * gib}, 0, 2 * gib},
		{"even count: between the middle two", []int64{3 * gib, gib, 2 * gib, 500 * mib}, 0, gib + gib/2},
		{"one busy sandbox does not decide", []int64{2 * gib, 2 * gib, 40 * gib}, 0, 2 * gib},
		{"a partly running stack counts what it already uses", []int64{2 * gib}, 500 * mib, 2*gib - 500*mib},
		{"never below 0", []int64{gib}, 2 * gib, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, stackEstimate(tt.others, tt.own))
		})
	}
}

// budgetEngine is a fake engine for the budget check: docker info says
// total and how many containers run; docker ps lists the stacks; docker
// stats reports each running container at the memory its stack gives.
type budgetEngine struct {
	total    int64
	ps       []string
	stats    []string
	others   int   // running containers outside compose projects
	infoErr  error // docker info fails
	statsErr error // docker stats fails
}

// stack adds project with running containers of the nine services, each
// using mem, and the rest exited.
func (b *budgetEngine) stack(project string, running int, mem int64) {
	for i, s := range KTRDR().Services {
		state := "running"
		if i >= running {
			state = "exited"
		}
		b.ps = append(b.ps, lcPSLine(project, s.Name, project, state, "Up"))
		if state == "running" {
			b.stats = append(b.stats, fmt.Sprintf(`{"ID":%q,"CPUPerc":"0.50%%","MemUsage":"%s / 23.54GiB"}`, lcContainerID(project, s.Name), driver.FormatSize(mem)))
		}
	}
}

func (b *budgetEngine) states(t *testing.T) map[string]*driver.StackState {
	t.Helper()
	st, err := driver.ParseDockerPS([]byte(strings.Join(b.ps, "\n")), KTRDR().InstanceLabel)
	require.NoError(t, err)
	return st
}

func (b *budgetEngine) handle(c driver.Cmd) ([]byte, error) {
	switch c.Args[0] {
	case "ps":
		return []byte(strings.Join(b.ps, "\n") + "\n"), nil
	case "info":
		if b.infoErr != nil {
			return nil, b.infoErr
		}
		running := b.others
		for _, l := range b.ps {
			if strings.Contains(l, `"State":"running"`) {
				running++
			}
		}
		return fmt.Appendf(nil, "%d %d\n", b.total, running), nil
	case "stats":
		if b.statsErr != nil {
			return nil, b.statsErr
		}
		out := strings.Join(b.stats, "\n")
		for i := range b.others {
			out += fmt.Sprintf("\n{\"ID\":\"other%d\",\"CPUPerc\":\"1.00%%\",\"MemUsage\":\"1GiB / 23.54GiB\"}", i)
		}
		return []byte(out + "\n"), nil
	}
	return nil, fmt.Errorf("unexpected docker %s", strings.Join(c.Args, " "))
}

// budgetManager is a manager whose registry holds ids (slots 1, 2, …, in
// /dev/<id>) and whose docker is b.
func budgetManager(t *testing.T, b *budgetEngine, floor int64, ids ...string) (*Manager, *fakeRunner, *[]Event) {
	t.Helper()
	r := &fakeRunner{handle: b.handle}
	events := &[]Event{}
	var mu sync.Mutex
	m := &Manager{Profile: KTRDR(), Home: t.TempDir(), Runner: r, Now: time.Now, MinFreeMemory: floor,
		Events: func(e Event) { mu.Lock(); *events = append(*events, e); mu.Unlock() }}
	require.NoError(t, m.Registry().Update(t.Context(), func(in map[string]Instance) error {
		for i, id := range ids {
			in[id] = Instance{Slot: i + 1, Path: "/dev/" + id, CreatedAt: "2026-01-01T00:00:00Z"}
		}
		return nil
	}))
	return m, r, events
}

func TestBudgetCheck(t *testing.T) {
	registered := []string{"ktrdr--a", "ktrdr--b", "ktrdr--c", "ktrdr--d", "ktrdr--new"}
	tests := []struct {
		name   string
		engine func(b *budgetEngine)
		floor  int64
		calls  []string // the docker subcommands asked, in any order
		want   *LowMemoryError
		event  bool // EvBudgetUnknown: up goes on unchecked
	}{
		{"floor 0: nothing is asked", func(b *budgetEngine) { b.stack("ktrdr--a", 9, 4*gib) }, 0, nil, nil, false},
		{"nothing runs: docker info only, free is the total", func(b *budgetEngine) {}, 2 * gib, []string{"info"}, nil, false},
		{"stopped stacks run nothing", func(b *budgetEngine) { b.stack("ktrdr--a", 0, 0) }, 2 * gib, []string{"info"}, nil, false},
		{"nothing runs and the floor is above the machine", func(b *budgetEngine) {}, 20 * gib,
			[]string{"info"}, &LowMemoryError{ID: "ktrdr--new", Engine: "local", Total: 16 * gib, Floor: 20 * gib}, false},
		{"containers outside compose count: stats after info", func(b *budgetEngine) { b.others = 3 }, 14 * gib,
			[]string{"info", "stats"}, &LowMemoryError{ID: "ktrdr--new", Engine: "local", Total: 16 * gib, Used: 3 * gib, Floor: 14 * gib}, false},
		{"sandboxes run, plenty free", func(b *budgetEngine) {
			b.stack("ktrdr--a", 9, 100*mib)
			b.stack("ktrdr--b", 9, 100*mib)
		}, 2 * gib, []string{"info", "stats"}, nil, false},
		{"under the floor: the top three named, most first; the estimate is their median", func(b *budgetEngine) {
			b.stack("ktrdr--a", 3, gib)     // 3 GiB
			b.stack("ktrdr--b", 1, gib)     // 1 GiB
			b.stack("ktrdr--c", 2, gib)     // 2 GiB
			b.stack("ktrdr--d", 1, 512*mib) // 0.5 GiB
			b.stack("ktrdr--ghost", 1, gib) // not registered: counted, not named
		}, 7*gib + 1, []string{"info", "stats"}, &LowMemoryError{ID: "ktrdr--new", Engine: "local", Total: 16 * gib, Used: 7*gib + 512*mib,
			Estimate: gib + gib/2, EstimateFrom: 4, Floor: 7*gib + 1, Top: []MemoryUser{
				{ID: "ktrdr--a", Path: "/dev/ktrdr--a", MemoryBytes: 3 * gib},
				{ID: "ktrdr--c", Path: "/dev/ktrdr--c", MemoryBytes: 2 * gib},
				{ID: "ktrdr--b", Path: "/dev/ktrdr--b", MemoryBytes: gib}}}, false},
		{"the same, with the floor just met", func(b *budgetEngine) {
			b.stack("ktrdr--a", 3, gib)
			b.stack("ktrdr--b", 1, gib)
			b.stack("ktrdr--c", 2, gib)
			b.stack("ktrdr--d", 1, 512*mib)
			b.stack("ktrdr--ghost", 1, gib)
		}, 7 * gib, []string{"info", "stats"}, nil, false},
		{"a partly running stack of its own: its use counts once", func(b *budgetEngine) {
			b.stack("ktrdr--a", 4, gib)   // 4 GiB
			b.stack("ktrdr--new", 3, gib) // 3 GiB of its own already
		}, 9 * gib, []string{"info", "stats"}, &LowMemoryError{ID: "ktrdr--new", Engine: "local", Total: 16 * gib, Used: 7 * gib,
			Estimate: gib, EstimateFrom: 1, Floor: 9 * gib, Top: []MemoryUser{{ID: "ktrdr--a", Path: "/dev/ktrdr--a", MemoryBytes: 4 * gib}}}, false},
		{"docker info fails: up goes on unchecked", func(b *budgetEngine) {
			b.stack("ktrdr--a", 9, 4*gib)
			b.infoErr = &driver.ExitError{Cmd: "docker info", Code: 1, Stderr: "Cannot connect"}
		}, 200 * gib, nil, nil, true},
		{"docker stats fails: up goes on unchecked", func(b *budgetEngine) {
			b.stack("ktrdr--a", 9, 4*gib)
			b.statsErr = errors.New("stats broke")
		}, 200 * gib, []string{"info", "stats"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &budgetEngine{total: 16 * gib}
			tt.engine(b)
			m, r, events := budgetManager(t, b, tt.floor, registered...)
			err := m.startBudgetCheck(t.Context(), b.states(t), "ktrdr--new")()
			var got []string
			for _, c := range r.commands() {
				got = append(got, strings.Fields(c)[1])
			}
			if tt.calls != nil || !tt.event {
				// (when docker info fails, the check does not wait for stats)
				assert.ElementsMatch(t, tt.calls, got, "docker calls: %q", r.commands())
			}
			if tt.want == nil {
				assert.NoError(t, err)
			} else {
				var le *LowMemoryError
				require.ErrorAs(t, err, &le)
				assert.Equal(t, tt.want, le)
			}
			if tt.event {
				require.Len(t, *events, 1)
				assert.Equal(t, EvBudgetUnknown, (*events)[0].Kind)
				assert.Equal(t, "local", (*events)[0].Engine)
			} else {
				assert.Empty(t, *events)
			}
		})
	}
}

// The message names what a person needs: the figures, and each sandbox
// with its use and folder.
func TestLowMemoryErrorMessage(t *testing.T) {
	e := &LowMemoryError{ID: "ktrdr--new", Engine: "local", Total: 16 * gib, Used: 12 * gib, Estimate: 2 * gib, EstimateFrom: 2, Floor: 4 * gib,
		Top: []MemoryUser{{ID: "ktrdr--a", Path: "/dev/ktrdr--a", MemoryBytes: 3 * gib}, {ID: "ktrdr--b", Path: "/dev/ktrdr--b", MemoryBytes: 1536 * mib}}}
	assert.Equal(t, "not enough free memory to start ktrdr--new on engine local: 4GiB free (16GiB in all, running containers use 12GiB), "+
		"2GiB estimated for its stack (the median of 2 running sandbox(es)), and min_free_memory keeps 4GiB free; the running sandboxes using most:\n"+
		"  ktrdr--a uses 3GiB (/dev/ktrdr--a)\n  ktrdr--b uses 1.5GiB (/dev/ktrdr--b)", e.Error())
	e.Top, e.EstimateFrom, e.Estimate = nil, 0, 0
	assert.True(t, strings.HasSuffix(e.Error(), "keeps 4GiB free; no sandbox of this registry runs there"), e.Error())
}

// docker info and docker stats are asked at the same time: each answers
// only once the other has been asked (a check that asked one after the
// other would see an error and report the budget unknown).
func TestBudgetCheckAsksInfoAndStatsAtOnce(t *testing.T) {
	b := &budgetEngine{total: 16 * gib}
	b.stack("ktrdr--a", 9, 100*mib)
	infoAsked, statsAsked := make(chan struct{}), make(chan struct{})
	m, _, events := budgetManager(t, b, 2*gib, "ktrdr--a")
	m.Runner = &fakeRunner{handle: func(c driver.Cmd) ([]byte, error) {
		mine, other := infoAsked, statsAsked
		if c.Args[0] == "stats" {
			mine, other = statsAsked, infoAsked
		}
		close(mine)
		select {
		case <-other:
			return b.handle(c)
		case <-time.After(10 * time.Second):
			return nil, errors.New("asked alone: the other call did not come")
		}
	}}
	require.NoError(t, m.startBudgetCheck(t.Context(), b.states(t), "ktrdr--new")())
	assert.Empty(t, *events)
}

// An interrupted check is not a verdict to ignore: up stops.
func TestBudgetCheckInterrupted(t *testing.T) {
	b := &budgetEngine{total: 16 * gib}
	b.stack("ktrdr--a", 9, 100*mib)
	m, _, events := budgetManager(t, b, 2*gib)
	ctx, cancel := context.WithCancel(t.Context())
	m.Runner = &fakeRunner{handle: func(c driver.Cmd) ([]byte, error) {
		cancel()
		return nil, ctx.Err()
	}}
	err := m.startBudgetCheck(ctx, b.states(t), "ktrdr--new")()
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, *events)
}

// up refuses before compose starts anything, and says why.
func TestUpRefusedByTheBudgetStartsNothing(t *testing.T) {
	b := &budgetEngine{total: 8 * gib}
	b.stack("ktrdr--other", 9, 600*mib)
	m, root, r := upFixture(t, func(c driver.Cmd) ([]byte, error) {
		switch {
		case c.Args[0] == "ps" && slices.Contains(c.Args, "-q"):
			return nil, nil // the stack's containers, after create: none in this fake
		case c.Args[0] == "ps", c.Args[0] == "info", c.Args[0] == "stats":
			return b.handle(c)
		}
		return nil, nil
	})
	started := func() int {
		n := 0
		for _, c := range r.commands() {
			if strings.HasPrefix(c, "docker start ") {
				n++
			}
		}
		return n
	}
	m.MinFreeMemory = 4 * gib
	_, err := m.Up(t.Context(), UpOptions{Dir: root, NoWait: true})
	var le *LowMemoryError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, 8*gib, le.Total)
	assert.Equal(t, 9*600*mib, le.Used)
	assert.Zero(t, started(), "no container started: %q", r.commands())
	assert.Equal(t, 1, upCompose(r, "down"), "what compose made for this up is removed again: %q", r.commands())

	m.MinFreeMemory = gib
	_, err = m.Up(t.Context(), UpOptions{Dir: root, NoWait: true})
	require.NoError(t, err)
	assert.Equal(t, 2, upCompose(r, "up"), "created twice")
	assert.Equal(t, 1, upCompose(r, "down"))
}

// ctxRunner answers with handle, and blocks until the context ends for a
// command that handle leaves (nil, nil).
type ctxRunner struct {
	handle func(c driver.Cmd) ([]byte, error)
}

func (r ctxRunner) Run(ctx context.Context, c driver.Cmd) ([]byte, error) {
	if out, err := r.handle(c); out != nil || err != nil {
		return out, err
	}
	<-ctx.Done()
	return nil, fmt.Errorf("%s: interrupted: %w", c, ctx.Err())
}

// An engine too busy to answer docker stats in time does not hold up up:
// the check is skipped, and says so.
func TestBudgetCheckGivesUpOnASlowEngine(t *testing.T) {
	old := statsTimeout
	statsTimeout = 50 * time.Millisecond
	t.Cleanup(func() { statsTimeout = old })
	b := &budgetEngine{total: 16 * gib}
	b.stack("ktrdr--a", 9, 100*mib)
	m, _, events := budgetManager(t, b, 200*gib, "ktrdr--a")
	m.Runner = ctxRunner{handle: func(c driver.Cmd) ([]byte, error) {
		if c.Args[0] == "stats" {
			return nil, nil // never answers
		}
		return b.handle(c)
	}}
	require.NoError(t, m.startBudgetCheck(t.Context(), b.states(t), "ktrdr--new")())
	require.Len(t, *events, 1)
	assert.Equal(t, EvBudgetUnknown, (*events)[0].Kind)
	assert.Contains(t, (*events)[0].Err, "did not answer docker info and docker stats within 50ms")
}

// On an engine of this host, the containers' memory read from the control
// groups says yes without docker stats; a no is left to docker stats.
func TestBudgetCheckReadsControlGroupsFirst(t *testing.T) {
	root := t.TempDir()
	old := driver.CgroupRoot
	driver.CgroupRoot = root
	t.Cleanup(func() { driver.CgroupRoot = old })
	b := &budgetEngine{total: 16 * gib}
	b.stack("ktrdr--a", 9, 100*mib)
	for _, s := range KTRDR().Services {
		p := filepath.Join(root, "memory", "docker", lcContainerID("ktrdr--a", s.Name), "memory.usage_in_bytes")
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, fmt.Appendf(nil, "%d\n", 200*mib), 0o644))
	}
	t.Setenv("DOCKER_HOST", "")
	asked := func(r *fakeRunner) []string {
		var out []string
		for _, c := range r.commands() {
			out = append(out, strings.Fields(c)[1])
		}
		return out
	}

	m, r, _ := budgetManager(t, b, 2*gib, "ktrdr--a", "ktrdr--new")
	require.NoError(t, m.checkBudget(t.Context(), b.states(t), "ktrdr--new", 2*gib))
	assert.Equal(t, []string{"info"}, asked(r), "no docker stats")

	m, r, _ = budgetManager(t, b, 15*gib, "ktrdr--a", "ktrdr--new")
	var le *LowMemoryError
	require.ErrorAs(t, m.checkBudget(t.Context(), b.states(t), "ktrdr--new", 15*gib), &le)
	assert.Equal(t, []string{"info", "stats"}, asked(r), "the refusal is docker stats' figures")
	assert.Equal(t, 9*100*mib, le.Used)
}
