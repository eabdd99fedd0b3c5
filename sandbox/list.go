package sandbox

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// Instance states shown by List and Status.
const (
	StateRunning = "running"
	StateStopped = "stopped"
	StateMissing = "missing" // its checkout is gone
	StateUnknown = "unknown" // docker could not be asked
)

// ListEntry is one row of List.
type ListEntry struct {
	ID         string `json:"id"`
	Slot       int    `json:"slot"`
	State      string `json:"state"` // running, partial x/y, stopped, missing
	Running    int    `json:"running_services"`
	Services   int    `json:"services"`
	APIPort    int    `json:"api_port"`
	Branch     string `json:"branch"`
	Path       string `json:"path"`
	IsWorktree bool   `json:"is_worktree"`
	Removed    bool   `json:"removed_from_registry,omitempty"` // a stale entry List cleaned
	Reason     string `json:"reason,omitempty"`                // why it was stale
	// Interrupted is "creating" or "destroying" when a create or destroy of
	// this instance was killed half-way; destroy -name=<name> -force
	// removes what it made.
	Interrupted string `json:"interrupted,omitempty"`
	Engine      string `json:"engine"` // "local", or the Docker context it runs on
	Host        string `json:"host"`   // where its ports are reached
	// CPUPercent and MemoryBytes are what its running containers use now
	// (docker stats; CPU: 100 is one core), set only while some run and
	// their engine reported them.
	CPUPercent  *float64 `json:"cpu_percent,omitempty"`
	MemoryBytes *int64   `json:"memory_bytes,omitempty"`
}

// setUsage fills in what e's running containers use, when stats has them.
func (e *ListEntry) setUsage(st *driver.StackState, stats map[string]driver.ContainerStats) {
	if e.Running == 0 || stats == nil {
		return
	}
	u := st.Usage(stats)
	if u.Containers == 0 {
		return
	}
	cpu := math.Round(u.CPUPercent*100) / 100
	e.CPUPercent, e.MemoryBytes = &cpu, &u.MemoryBytes
}

// Orphan is a compose project that looks like one of this app's sandboxes
// but is not registered.
type Orphan struct {
	Project    string `json:"project"`
	Containers int    `json:"containers"`
}

// Listing is what List returns.
type Listing struct {
	Instances []ListEntry `json:"instances"`
	Orphans   []Orphan    `json:"orphans"`
	Warning   string      `json:"warning,omitempty"` // e.g. docker could not be asked: states are unknown
	// EngineErrors maps each Docker context whose engine did not answer to
	// why: its sandboxes are listed with state unknown.
	EngineErrors map[string]string `json:"engine_errors,omitempty"`
	// StatsErrors maps each engine (its name: "local" or the context) that
	// did not report what its containers use to why: its sandboxes are
	// listed without CPU and memory.
	StatsErrors map[string]string `json:"stats_errors,omitempty"`
}

// engineLook is what one engine told List.
type engineLook struct {
	states   map[string]*driver.StackState
	stats    map[string]driver.ContainerStats // nil: not asked, or statsErr
	err      error                            // docker ps failed: states unknown
	statsErr error
}

// statsTimeout bounds a docker stats call (list, and up's budget check): it
// takes about a second, but on an engine that is overloaded it can take
// minutes (386 s for 270 containers on a 2-core machine at load 130); past
// this the figures are not shown (list) or the budget is not checked (up).
var statsTimeout = 10 * time.Second

// lookAt asks m's engine for every stack's state with one docker ps and,
// when some of the registry's sandboxes there (ids) run, for what the
// running containers use with one docker stats. When up has started one of
// them before (started), stats is started together with ps and, if ps shows
// none of ids running, stopped and not waited for; otherwise it is asked
// only once ps shows one running. A list of sandboxes never started costs
// one ps.
func (m *Manager) lookAt(ctx context.Context, ids []string, started bool) engineLook {
	var wait func() (map[string]driver.ContainerStats, error)
	sctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	if len(ids) > 0 && started {
		var stop func()
		wait, stop = driver.StartStats(sctx, m.Runner)
		defer stop()
	}
	var l engineLook
	l.states, l.err = driver.StackStates(ctx, m.Runner, m.Profile.InstanceLabel)
	if l.err != nil || !slices.ContainsFunc(ids, func(id string) bool { return l.states[id].Running() > 0 }) {
		return l
	}
	if wait == nil {
		var stop func()
		wait, stop = driver.StartStats(sctx, m.Runner)
		defer stop()
	}
	l.stats, l.statsErr = wait()
	if l.statsErr != nil && sctx.Err() != nil && ctx.Err() == nil {
		l.statsErr = fmt.Errorf("docker stats did not answer within %s", statsTimeout)
	}
	return l
}

// state summarises a stack.
// total is the number of services of the stack (0: the profile's).
func (m *Manager) state(st *driver.StackState, total int) (string, int) {
	if total <= 0 {
		total = len(m.Profile.Services)
	}
	n := st.Running()
	switch {
	case n == 0:
		return StateStopped, n
	case n >= total:
		return StateRunning, n
	default:
		return fmt.Sprintf("partial %d/%d", n, total), n
	}
}

// List returns every registered instance with its state, removing stale
// entries (reported with state missing and Removed set) and reporting
// orphan compose projects. It makes one docker ps call per engine for all
// its instances and, on an engine where some of them run, one docker stats
// call at the same time for what they use (CPUPercent, MemoryBytes).
func (m *Manager) List(ctx context.Context) (*Listing, error) {
	p := m.Profile
	reg := m.Registry()
	out := &Listing{Instances: []ListEntry{}, Orphans: []Orphan{}}
	// Every engine the registry names (and the local one, for orphans) is
	// asked once, all at the same time; one that does not answer leaves its
	// sandboxes' states unknown, and the list goes on.
	before, _ := reg.Instances() // a registry that cannot be read fails CleanStale below
	engines := map[string]Engine{"": {}}
	ids := map[string][]string{}
	started := map[string]bool{} // up has started one of the engine's sandboxes before
	for id, in := range before {
		engines[in.Engine.Context] = in.Engine
		ids[in.Engine.Context] = append(ids[in.Engine.Context], id)
		if m.readMeta(id).Services > 0 {
			started[in.Engine.Context] = true
		}
	}
	looks := make(map[string]*engineLook, len(engines))
	var wg sync.WaitGroup
	for c, e := range engines {
		l := &engineLook{}
		looks[c] = l
		wg.Go(func() { *l = m.on(e).lookAt(ctx, ids[c], started[c]) })
	}
	wg.Wait()
	byEngine := map[string]map[string]*driver.StackState{}
	statsOf := map[string]map[string]driver.ContainerStats{}
	for c, l := range looks {
		switch {
		case l.err != nil && c == "":
			// The registry is still worth showing; the states are not known.
			out.Warning = fmt.Sprintf("states unknown: %v", l.err)
			byEngine[c] = nil
		case l.err != nil:
			if out.EngineErrors == nil {
				out.EngineErrors = map[string]string{}
			}
			out.EngineErrors[c] = l.err.Error()
			continue
		default:
			byEngine[c] = l.states
		}
		if l.statsErr != nil {
			if out.StatsErrors == nil {
				out.StatsErrors = map[string]string{}
			}
			out.StatsErrors[engines[c].Name()] = l.statsErr.Error()
		}
		statsOf[c] = l.stats
	}
	states := byEngine[""]
	stateOf := func(id string, in Instance) (*driver.StackState, bool) {
		st, ok := byEngine[in.Engine.Context]
		if !ok || in.Engine.Context == "" && out.Warning != "" {
			return nil, false
		}
		return st[id], true
	}
	// A stale entry whose stack still has containers (or whose state is
	// unknown) stays, so that `destroy -name` can still remove its stack.
	// So does one whose create or destroy was interrupted: its record is
	// what tells destroy which worktree and branch that run made.
	stale, err := reg.CleanStale(ctx, func(id string, in Instance) bool {
		st, known := stateOf(id, in)
		// A create or destroy of it, running or killed, has a record.
		return !known || st != nil || m.readMeta(id).Phase != ""
	})
	if err != nil {
		return nil, err
	}
	instances, err := reg.Instances()
	if err != nil {
		return nil, err
	}
	kept := map[string]string{}
	for _, s := range stale {
		if s.Kept {
			kept[s.ID] = s.Reason
		}
	}
	api, _ := p.Rule(p.APIPortKey)
	for id, in := range instances {
		e := ListEntry{ID: id, Slot: in.Slot, Services: len(p.Services), APIPort: api.Port(in.Slot),
			Branch: readBranch(in.Path), Path: in.Path, IsWorktree: in.IsWorktree, Engine: in.Engine.Name(), Host: strings.Trim(in.Engine.URLHost(), "[]")}
		st, known := stateOf(id, in)
		// The services its last up started (the file decides, not the profile).
		if n := m.readMeta(id).Services; n > 0 {
			e.Services = n
		}
		e.State, e.Running = m.state(st, e.Services)
		if !known {
			e.State = StateUnknown
		}
		e.setUsage(st, statsOf[in.Engine.Context])
		if reason, ok := kept[id]; ok {
			e.State, e.Reason = StateMissing, reason
		}
		e.Interrupted = m.interrupted(id)
		out.Instances = append(out.Instances, e)
	}
	for _, s := range stale {
		if s.Kept {
			continue
		}
		e := ListEntry{ID: s.ID, Slot: s.Instance.Slot, State: StateMissing, Services: len(p.Services),
			APIPort: api.Port(s.Instance.Slot), Path: s.Instance.Path, IsWorktree: s.Instance.IsWorktree, Removed: true, Reason: s.Reason,
			Engine: s.Instance.Engine.Name(), Host: strings.Trim(s.Instance.Engine.URLHost(), "[]")}
		st, _ := stateOf(s.ID, s.Instance)
		e.Running = st.Running()
		out.Instances = append(out.Instances, e)
		if e.Running == 0 && out.Warning == "" {
			_ = m.removeInstanceDir(s.ID) // nothing runs: the teardown copy is no longer needed
		}
	}
	sort.Slice(out.Instances, func(i, j int) bool { return out.Instances[i].Slot < out.Instances[j].Slot })
	for project, st := range states {
		if _, ok := instances[project]; ok {
			continue
		}
		ours := strings.HasPrefix(project, p.App+"--")
		for _, s := range st.Services {
			if s.Instance != "" && s.Instance != p.MainInstance {
				ours = true
			}
		}
		if !ours {
			continue
		}
		out.Orphans = append(out.Orphans, Orphan{Project: project, Containers: len(st.Services)})
	}
	sort.Slice(out.Orphans, func(i, j int) bool { return out.Orphans[i].Project < out.Orphans[j].Project })
	return out, nil
}
