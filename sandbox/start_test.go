package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
	"github.com/ktrdr/sandboxkit/sandbox/gate"
)

// fakeEngine plays the engine for the layered start: containers made by
// `compose up --no-start`, docker start, exec (a service's healthcheck
// test), inspect and wait. It records the order of what happened.
type fakeEngine struct {
	mu       sync.Mutex
	services map[string]*fakeService
	log      []string // "start db", "probe db", "wait init", "create"
	now      time.Time
}

type fakeService struct {
	deps      string // compose's depends_on label
	health    bool   // it has a healthcheck
	running   bool
	probe     func(n int) (error, string) // nth probe (1-based): error to return and the state inspect then shows ("" running)
	probes    int
	state     string // what inspect shows after a failed probe
	exitCode  int    // docker wait's answer
	startFail error
}

func (f *fakeEngine) record(s string) {
	f.log = append(f.log, s)
}

func (f *fakeEngine) events(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.log {
		if strings.HasPrefix(l, prefix) {
			out = append(out, strings.TrimPrefix(l, prefix))
		}
	}
	return out
}

// index is where s first happened in the log (-1: never).
func (f *fakeEngine) index(s string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Index(f.log, s)
}

func (f *fakeEngine) inspectJSON(names []string) []byte {
	var out []map[string]any
	for _, n := range names {
		s := f.services[n]
		status := "created"
		if s.running {
			status = "running"
		}
		if s.state != "" {
			status = s.state
		}
		c := map[string]any{"Id": "id-" + n, "Name": "/p-" + n + "-1", "RestartCount": 0,
			"State":  map[string]any{"Status": status, "ExitCode": s.exitCode, "Restarting": status == "restarting"},
			"Config": map[string]any{"Labels": map[string]string{"com.docker.compose.service": n, "com.docker.compose.depends_on": s.deps}}}
		if s.health {
			c["Config"].(map[string]any)["Healthcheck"] = map[string]any{"Test": []string{"CMD-SHELL", "check " + n}, "Interval": int64(30 * time.Second), "Retries": 3}
		}
		out = append(out, c)
	}
	data, _ := json.Marshal(out)
	return data
}

func (f *fakeEngine) Run(ctx context.Context, c driver.Cmd) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	args := c.Args
	if c.Name == "docker" && slices.Contains(args, "--no-start") {
		f.record("create")
		return nil, nil
	}
	if c.Name != "docker" || len(args) == 0 {
		return nil, fmt.Errorf("unexpected command %v", c)
	}
	svcOf := func(id string) string { return strings.TrimPrefix(id, "id-") }
	switch args[0] {
	case "ps":
		var ids []string
		for _, n := range slices.Sorted(func(yield func(string) bool) {
			for n := range f.services {
				if !yield(n) {
					return
				}
			}
		}) {
			ids = append(ids, "id-"+n)
		}
		return []byte(strings.Join(ids, "\n") + "\n"), nil
	case "inspect":
		var names []string
		for _, a := range args[1:] {
			if strings.HasPrefix(a, "id-") {
				names = append(names, svcOf(a))
			}
		}
		return f.inspectJSON(names), nil
	case "start":
		for _, id := range args[1:] {
			s := f.services[svcOf(id)]
			if s.startFail != nil {
				return nil, s.startFail
			}
			s.running = true
			f.record("start " + svcOf(id))
		}
		return nil, nil
	case "exec":
		n := svcOf(args[1])
		s := f.services[n]
		f.record("probe " + n)
		if !s.running {
			return nil, &driver.ExitError{Cmd: "docker exec", Code: 1, Stderr: "container is not running"}
		}
		s.probes++
		f.now = f.now.Add(time.Second)
		if s.probe == nil {
			return nil, nil
		}
		err, state := s.probe(s.probes)
		s.state = state
		return nil, err
	case "wait":
		n := svcOf(args[1])
		f.record("wait " + n)
		return []byte(fmt.Sprintf("%d\n", f.services[n].exitCode)), nil
	}
	return nil, fmt.Errorf("unexpected docker %v", args)
}

func (f *fakeEngine) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// startWith runs the layered start of the services on a fake engine.
func startWith(t *testing.T, services map[string]*fakeService, model *types.Project) (*fakeEngine, []Event, error) {
	t.Helper()
	f := &fakeEngine{services: services, now: time.Unix(1_700_000_000, 0)}
	var mu sync.Mutex
	var events []Event
	m := &Manager{Profile: KTRDR(), Runner: f, Now: f.clock, startProbe: time.Millisecond,
		Events: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }}
	c := &driver.Compose{Runner: f, Command: []string{"docker", "compose"}}
	stack := driver.Stack{Project: "p", Dir: "/w", Files: []string{"/w/c.yml"}, EnvFile: "/w/.env"}
	err := m.startStack(t.Context(), c, stack, model, nil, false, nil, nil)
	return f, events, err
}

// failUntil fails the first n probes of a healthcheck.
func failUntil(n int) func(int) (error, string) {
	return func(k int) (error, string) {
		if k <= n {
			return &driver.ExitError{Cmd: "docker exec", Code: 1, Stderr: "not ready yet"}, ""
		}
		return nil, ""
	}
}

func TestLayeredStartFollowsTheDependencyGraph(t *testing.T) {
	f, _, err := startWith(t, map[string]*fakeService{
		"db":         {health: true, probe: failUntil(2)},
		"jaeger":     {health: true},
		"prometheus": {},
		"grafana":    {deps: "prometheus:service_started:false"},
		"backend":    {deps: "db:service_healthy:false,jaeger:service_healthy:false", health: true},
		"worker-1":   {deps: "db:service_healthy:false,backend:service_started:false"},
		"worker-2":   {deps: "backend:service_started:false"},
	}, nil)
	require.NoError(t, err)
	assert.Equal(t, 0, f.index("create"), "every container is made before any starts")
	assert.ElementsMatch(t, []string{"db", "jaeger", "prometheus", "grafana", "backend", "worker-1", "worker-2"}, f.events("start "))
	before := func(a, b string) {
		t.Helper()
		require.NotEqual(t, -1, f.index(a), a)
		require.NotEqual(t, -1, f.index(b), b)
		assert.Less(t, f.index(a), f.index(b), "%s before %s in %v", a, b, f.log)
	}
	before("start prometheus", "start grafana")
	before("start db", "probe db")
	before("probe jaeger", "start backend")
	before("start backend", "start worker-1")
	before("start backend", "start worker-2")
	assert.Len(t, f.events("probe db"), 3, "db probed until its third check passed, once for both its dependants")
	assert.Empty(t, f.events("probe backend"), "nothing waits for backend to be healthy: it is never probed")
	assert.Empty(t, f.events("probe prometheus"))
	// backend starts only after db's passing probe.
	dbProbes := 0
	for i, l := range f.log {
		if l == "probe db" {
			dbProbes++
		}
		if l == "start backend" {
			assert.Equal(t, 3, dbProbes, "backend started at log line %d after db's third probe", i)
		}
	}
}

func TestLayeredStartFailures(t *testing.T) {
	exited := func(int) (error, string) {
		return &driver.ExitError{Cmd: "docker exec", Code: 1, Stderr: "container is not running"}, "exited"
	}
	restarting := func(int) (error, string) {
		return &driver.ExitError{Cmd: "docker exec", Code: 1, Stderr: "is restarting"}, "restarting"
	}
	never := func(int) (error, string) {
		return &driver.ExitError{Cmd: "docker exec", Code: 7, Stderr: "connection refused"}, ""
	}
	tests := []struct {
		name     string
		services map[string]*fakeService
		want     []string // in the error
		started  []string
	}{
		{"a dependency that exits fails at once", map[string]*fakeService{
			"db":      {health: true, probe: exited, exitCode: 1},
			"backend": {deps: "db:service_healthy:false"},
		}, []string{"start backend of stack p", "waits for db", "exited with status 1"}, []string{"db"}},
		{"a dependency that restarts fails at once", map[string]*fakeService{
			"db":      {health: true, probe: restarting, exitCode: 2},
			"backend": {deps: "db:service_healthy:false"},
		}, []string{"waits for db", "restarting"}, []string{"db"}},
		{"a dependency unhealthy past the engine's budget", map[string]*fakeService{
			"db":      {health: true, probe: never},
			"backend": {deps: "db:service_healthy:false"},
		}, []string{"did not become healthy within 1m30s", "connection refused"}, []string{"db"}},
		{"service_healthy on a service with no healthcheck", map[string]*fakeService{
			"db":      {},
			"backend": {deps: "db:service_healthy:false"},
		}, []string{"db", "has no healthcheck"}, []string{"db"}},
		{"a job that did not complete successfully", map[string]*fakeService{
			"migrate": {exitCode: 3},
			"backend": {deps: "migrate:service_completed_successfully:false"},
		}, []string{"migrate", "exit status 3"}, []string{"migrate"}},
		{"a container the engine does not start", map[string]*fakeService{
			"db":      {startFail: &driver.ExitError{Cmd: "docker start", Code: 1, Stderr: "port is already allocated"}},
			"backend": {deps: "db:service_started:false"},
		}, []string{"start db of stack p", "port is already allocated"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, _, err := startWith(t, tc.services, nil)
			var se *StartError
			require.ErrorAs(t, err, &se)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.ElementsMatch(t, tc.started, f.events("start "), "what depends on the failure never starts")
		})
	}
}

func TestLayeredStartOptionalAndMissingDependencies(t *testing.T) {
	backend := types.ServiceConfig{Name: "backend"}
	backend.DependsOn = types.DependsOnConfig{
		"tracing": {Condition: "service_healthy", Required: false},
		"cache":   {Condition: "service_healthy", Required: true},
	}
	model := &types.Project{Services: types.Services{"backend": backend}}
	f, events, err := startWith(t, map[string]*fakeService{
		"tracing": {health: true, probe: func(int) (error, string) {
			return &driver.ExitError{Cmd: "docker exec", Code: 1}, "exited"
		}},
		// cache has no containers (scale 0, or a profile not in use): not waited for.
		"backend": {deps: "tracing:service_healthy:false,cache:service_healthy:false"},
	}, model)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"tracing", "backend"}, f.events("start "))
	require.Len(t, events, 1)
	assert.Equal(t, EvOptionalDependencySkipped, events[0].Kind)
	assert.Equal(t, "backend", events[0].Service)
	assert.Equal(t, "tracing", events[0].Source)
}

func TestLayeredStartLeavesRunningContainersAlone(t *testing.T) {
	f, _, err := startWith(t, map[string]*fakeService{
		"db":      {health: true, running: true},
		"backend": {deps: "db:service_healthy:false"},
	}, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"backend"}, f.events("start "), "db already ran")
	assert.Len(t, f.events("probe db"), 1)
}

func TestLayeredStartHooksGoThroughCompose(t *testing.T) {
	backend := types.ServiceConfig{Name: "backend"}
	backend.PostStart = []types.ServiceHook{{Command: []string{"true"}}}
	model := &types.Project{Services: types.Services{"backend": backend}}
	f := &fakeEngine{services: map[string]*fakeService{"backend": {}}}
	var composeUp []string
	r := runnerFunc(func(ctx context.Context, c driver.Cmd) ([]byte, error) {
		if slices.Contains(c.Args, "--no-deps") {
			composeUp = c.Args
			return nil, nil
		}
		return f.Run(ctx, c)
	})
	m := &Manager{Profile: KTRDR(), Runner: r, Now: f.clock}
	c := &driver.Compose{Runner: r, Command: []string{"docker", "compose"}}
	stack := driver.Stack{Project: "p", Dir: "/w", Files: []string{"/w/c.yml"}, EnvFile: "/w/.env"}
	require.NoError(t, m.startStack(t.Context(), c, stack, model, nil, false, nil, nil))
	assert.Empty(t, f.events("start "), "not started with docker start")
	assert.Equal(t, []string{"up", "-d", "--no-deps", "--no-recreate", "--no-build", "backend"}, composeUp[len(composeUp)-6:])
}

func TestLayeredStartReadyCanRefuse(t *testing.T) {
	f := &fakeEngine{services: map[string]*fakeService{"db": {}}}
	m := &Manager{Profile: KTRDR(), Runner: f, Now: f.clock}
	c := &driver.Compose{Runner: f, Command: []string{"docker", "compose"}}
	stack := driver.Stack{Project: "p", Dir: "/w", Files: []string{"/w/c.yml"}, EnvFile: "/w/.env"}
	refused := errors.New("not enough memory")
	err := m.startStack(t.Context(), c, stack, nil, nil, false, nil, func() error { return refused })
	require.ErrorIs(t, err, refused)
	assert.Empty(t, f.events("start "), "nothing started")
}

type runnerFunc func(ctx context.Context, c driver.Cmd) ([]byte, error)

func (f runnerFunc) Run(ctx context.Context, c driver.Cmd) ([]byte, error) { return f(ctx, c) }

func TestLayeredStartAsksFromOutsideWhereTheGateHasAProbe(t *testing.T) {
	f := &fakeEngine{services: map[string]*fakeService{
		"db":      {health: true},
		"backend": {deps: "db:service_healthy:false"},
	}, now: time.Unix(1_700_000_000, 0)}
	var asked int
	probes := map[string]gate.Probe{"db": func(context.Context) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		asked++
		f.record("outside db")
		if asked < 3 {
			return errors.New("connection refused")
		}
		return nil
	}}
	m := &Manager{Profile: KTRDR(), Runner: f, Now: f.clock, startProbe: time.Millisecond}
	c := &driver.Compose{Runner: f, Command: []string{"docker", "compose"}}
	stack := driver.Stack{Project: "p", Dir: "/w", Files: []string{"/w/c.yml"}, EnvFile: "/w/.env"}
	require.NoError(t, m.startStack(t.Context(), c, stack, nil, probes, false, nil, nil))
	assert.Empty(t, f.events("probe "), "no exec into db")
	assert.Len(t, f.events("outside "), 3)
	last := -1
	for i, l := range f.log {
		if l == "outside db" {
			last = i
		}
	}
	assert.Less(t, last, f.index("start backend"), "backend starts after the probe that passed")
}
