package sandbox

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// The memory budget. Before up starts a stack it asks the engine the stack
// will run on how much memory it has (docker info: MemTotal) and what its
// running containers use (docker stats, every container of the engine, the
// suite's or not), and refuses (*LowMemoryError) when
//
//	total − used − estimate < floor
//
// The floor is min_free_memory in config.json (Manager.MinFreeMemory;
// DefaultMinFreeMemory when absent, 0 turns the check off). The estimate
// of what the new stack will take is the median memory of this registry's
// other sandboxes running on that engine (copies of the same stack, so the
// best predictor at hand; the median, so that one sandbox busy with a
// large job does not decide), less what the starting sandbox's own
// containers already use (a partly running stack); with no other sandbox
// running it is 0, and only the floor guards. When no compose container
// runs and docker info counts no running container, docker stats is not
// asked at all: free is the total.
//
// docker stats takes about a second (the engine samples each container
// twice), so the check runs in the background while up does its other
// steps (startBudgetCheck), and up waits for the verdict only right before
// it starts containers. An engine that cannot say (docker info or stats
// failing, or not answering within statsTimeout) does not stop up: the
// check is skipped with EvBudgetUnknown.

// DefaultMinFreeMemory is the floor when config.json does not set
// min_free_memory: 2 GiB, about one real ktrdr stack's worth of headroom
// for the machine itself.
const DefaultMinFreeMemory int64 = 2 << 30

// budgetTop is how many running sandboxes a LowMemoryError names.
const budgetTop = 3

// MemoryUser is a running sandbox and the memory its containers use.
type MemoryUser struct {
	ID          string `json:"id"`
	Path        string `json:"path"`
	MemoryBytes int64  `json:"memory_bytes"`
}

// LowMemoryError refuses to start a stack that would leave its engine with
// less free memory than the floor. Top names this registry's sandboxes
// running there that use the most, most first.
type LowMemoryError struct {
	ID           string // the sandbox up was to start
	Engine       string // the engine's name: "local" or its Docker context
	Total        int64  // the engine's memory (docker info)
	Used         int64  // what all its running containers use (docker stats)
	Estimate     int64  // what the new stack is expected to take
	EstimateFrom int    // how many running sandboxes the estimate is the median of
	Floor        int64  // min_free_memory
	Top          []MemoryUser
}

// Free is the engine's free memory now.
func (e *LowMemoryError) Free() int64 { return e.Total - e.Used }

func (e *LowMemoryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "not enough free memory to start %s on engine %s: %s free (%s in all, running containers use %s)",
		e.ID, e.Engine, driver.FormatSize(e.Free()), driver.FormatSize(e.Total), driver.FormatSize(e.Used))
	if e.EstimateFrom > 0 {
		fmt.Fprintf(&b, ", %s estimated for its stack (the median of %d running sandbox(es))", driver.FormatSize(e.Estimate), e.EstimateFrom)
	}
	fmt.Fprintf(&b, ", and min_free_memory keeps %s free", driver.FormatSize(e.Floor))
	if len(e.Top) == 0 {
		b.WriteString("; no sandbox of this registry runs there")
		return b.String()
	}
	b.WriteString("; the running sandboxes using most:")
	for _, u := range e.Top {
		fmt.Fprintf(&b, "\n  %s uses %s (%s)", u.ID, driver.FormatSize(u.MemoryBytes), u.Path)
	}
	return b.String()
}

// memoryBudget is the arithmetic of the check.
type memoryBudget struct {
	Total, Used, Estimate, Floor int64
}

// freeAfter is the memory the engine would have free once the new stack runs.
func (b memoryBudget) freeAfter() int64 { return b.Total - b.Used - b.Estimate }

// fits reports whether starting keeps the floor free (a floor of 0 or less always fits).
func (b memoryBudget) fits() bool { return b.Floor <= 0 || b.freeAfter() >= b.Floor }

// stackEstimate is what a new stack is expected to take: the median of
// what the running sandboxes use (others), less what the starting one
// already uses (own), never below 0.
func stackEstimate(others []int64, own int64) int64 {
	if len(others) == 0 {
		return 0
	}
	s := slices.Clone(others)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = s[len(s)/2-1] + (s[len(s)/2]-s[len(s)/2-1])/2
	}
	return max(0, med-own)
}

// startBudgetCheck starts the memory budget check for starting project on
// m's engine in the background (states: that engine's stacks, as up just
// read them) and returns the function that waits for its verdict: nil, or
// a *LowMemoryError. With no floor it starts nothing.
func (m *Manager) startBudgetCheck(ctx context.Context, states map[string]*driver.StackState, project string) (wait func() error) {
	floor := m.MinFreeMemory
	if floor <= 0 {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() { done <- m.checkBudget(ctx, states, project, floor) }()
	var verdict error
	waited := false
	return func() error {
		if !waited {
			verdict, waited = <-done, true
		}
		return verdict
	}
}

// checkBudget asks the engine (docker info and, when anything runs, docker
// stats, at the same time) and judges.
func (m *Manager) checkBudget(ctx context.Context, states map[string]*driver.StackState, project string, floor int64) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	info, fits, asked := m.fitsByCgroups(ctx, states, project, floor)
	if fits {
		return nil
	}
	var waitStats func() (map[string]driver.ContainerStats, error)
	if slices.ContainsFunc(slices.Collect(maps.Values(states)), func(st *driver.StackState) bool { return st.Running() > 0 }) {
		w, cancel := driver.StartStats(ctx, m.Runner)
		defer cancel()
		waitStats = w
	}
	if !asked {
		var err error
		if info, err = driver.EngineInfo(ctx, m.Runner); err != nil {
			return m.budgetUnknown(parent, ctx, err)
		}
	}
	var err error
	var stats map[string]driver.ContainerStats
	switch {
	case waitStats != nil:
		stats, err = waitStats()
	case info.ContainersRunning > 0:
		// No compose container runs, but others do: they count too.
		stats, err = driver.Stats(ctx, m.Runner)
	}
	if err != nil {
		return m.budgetUnknown(parent, ctx, err)
	}
	b, users := m.judge(info, states, stats, project, floor)
	if b.fits() {
		return nil
	}
	return &LowMemoryError{ID: project, Engine: m.engine.Name(), Total: b.Total, Used: b.Used, Estimate: b.Estimate,
		EstimateFrom: len(users), Floor: floor, Top: users[:min(budgetTop, len(users))]}
}

// judge weighs the engine's memory against what its containers use (stats)
// and what the new stack is expected to take.
func (m *Manager) judge(info driver.EngineMemory, states map[string]*driver.StackState, stats map[string]driver.ContainerStats, project string, floor int64) (memoryBudget, []MemoryUser) {
	users, own := m.memoryUsers(states, stats, project)
	others := make([]int64, len(users))
	for i, u := range users {
		others[i] = u.MemoryBytes
	}
	return memoryBudget{Total: info.Total, Used: driver.Total(stats).MemoryBytes, Estimate: stackEstimate(others, own), Floor: floor}, users
}

// fitsByCgroups is the quick way to a yes, for an engine on this host:
// docker info, then every running container's memory read from the
// host's control groups (driver.CgroupMemory), an upper bound of what
// docker stats would say. When even that fits, docker stats (a second or
// more with many containers) is not asked. Anything else (another engine,
// a container not found there, one running outside compose, too little
// memory) leaves the verdict to docker stats.
func (m *Manager) fitsByCgroups(ctx context.Context, states map[string]*driver.StackState, project string, floor int64) (info driver.EngineMemory, fits, asked bool) {
	if m.engine.Context != "" || os.Getenv("DOCKER_HOST") != "" {
		return info, false, false
	}
	var ids []string
	for _, st := range states {
		ids = append(ids, st.RunningIDs...)
	}
	stats, ok := driver.CgroupMemory(ids)
	if !ok {
		return info, false, false
	}
	info, err := driver.EngineInfo(ctx, m.Runner)
	if err != nil || info.ContainersRunning != len(ids) {
		return info, false, err == nil
	}
	b, _ := m.judge(info, states, stats, project, floor)
	return info, b.fits(), true
}

// budgetUnknown reports that the engine could not say (or not within
// statsTimeout): up goes on without the check, unless it was interrupted
// (ctx is up's own; checkCtx the check's, which ends after statsTimeout).
func (m *Manager) budgetUnknown(ctx, checkCtx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("memory budget: %w", context.Cause(ctx))
	}
	why := err.Error()
	if checkCtx.Err() != nil {
		why = fmt.Sprintf("it did not answer docker info and docker stats within %s", statsTimeout)
	}
	m.emit(Event{Kind: EvBudgetUnknown, Engine: m.engine.Name(), Err: why})
	return nil
}

// memoryUsers returns this registry's sandboxes on m's engine, other than
// project, whose containers run, with what they use, most first; and what
// project's own running containers use.
func (m *Manager) memoryUsers(states map[string]*driver.StackState, stats map[string]driver.ContainerStats, project string) ([]MemoryUser, int64) {
	own := states[project].Usage(stats).MemoryBytes
	instances, err := m.Registry().Instances()
	if err != nil {
		return nil, own // the check still runs; it just cannot name anyone
	}
	var users []MemoryUser
	for id, in := range instances {
		st := states[id]
		if id == project || in.Engine.Context != m.engine.Context || st.Running() == 0 {
			continue
		}
		users = append(users, MemoryUser{ID: id, Path: in.Path, MemoryBytes: st.Usage(stats).MemoryBytes})
	}
	slices.SortFunc(users, func(a, b MemoryUser) int {
		return cmp.Or(cmp.Compare(b.MemoryBytes, a.MemoryBytes), strings.Compare(a.ID, b.ID))
	})
	return users, own
}
