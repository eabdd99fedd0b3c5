package sandbox

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
	"github.com/ktrdr/sandboxkit/sandbox/gate"
)

// The layered start.
//
// A stack's healthchecks are the file's own (ktrdr's run every 30 s), and
// they stay so for the stack's life: a sandbox that is up costs what the
// file says and nothing more. `docker compose up` would then hold every
// service behind a `service_healthy` dependency until the engine's first
// check of that dependency, a whole interval after it started, and
// engines before Docker 25 (this suite's floor is 20.10) have no
// start_interval to check more often during the start only. So the suite
// starts the stack itself, in the order compose would:
//
//  1. `compose up --no-start` creates the networks, volumes and every
//     container at once (building and pulling as compose does), so the
//     start costs what the file's containers cost and compose's own rules
//     for what to (re)create stay in force.
//  2. Each service is started (`docker start`, or `compose up --no-deps`
//     for a service with post_start hooks, which only compose runs) as soon
//     as each of its dependencies is ready, as compose records them on the
//     containers it made (their com.docker.compose.depends_on label, so a
//     checkout's own override file counts): service_started once the
//     dependency was started, service_healthy once the dependency's own
//     healthcheck test passes, service_completed_successfully once it has
//     exited with status 0. A service with no dependencies starts at once:
//     what depends on nothing does not wait for anything, so the start is a
//     dependency graph walked as fast as it allows, not layers in lock step.
//  3. "Healthy" is decided the way the engine would decide it, only sooner.
//     Where the gate has a check of the dependency that tests what its
//     healthcheck tests (the database accepting the file's user and
//     database, the API's health endpoint, the Jaeger UI), that check asks
//     from outside every outsideProbeEvery, costing the stack nothing;
//     otherwise the dependency's healthcheck test (from the container, so
//     the image's own HEALTHCHECK counts too) runs with `docker exec` every
//     startProbeEvery until it passes. A dependency that exits, dies or
//     restarts fails the start at once; one that has not passed within the
//     engine's own budget (start period + interval × retries) fails it too.
//     A dependency marked `required: false` that fails is reported and
//     skipped, as compose does; one that has no containers (scale 0, a
//     service of an inactive profile) is not waited for.
//
// Once every service runs, nothing of the suite probes the stack any more:
// the gate runs its own checks from outside until it passes, and then the
// stack is left alone with the file's cadence (`docker inspect` shows the
// file's interval).

// startProbeEvery is how often a dependency's healthcheck test runs while
// a service waits for it (compose itself looks every 500 ms).
const startProbeEvery = 200 * time.Millisecond

// outsideProbeEvery is how often a readiness probe from outside runs.
const outsideProbeEvery = 50 * time.Millisecond

// probeTimeout bounds one readiness probe from outside.
const probeTimeout = 2 * time.Second

// stillWaitingAfter is when a wait is first reported, and how often again.
const stillWaitingAfter = 5 * time.Second

// StartError reports that a service of the stack could not be started
// because a dependency failed (or it failed itself).
type StartError struct {
	Project string
	Service string // the service that was to start ("" when the start itself failed)
	Waited  string // the dependency it waited for
	Err     error
}

func (e *StartError) Error() string {
	if e.Waited == "" {
		return fmt.Sprintf("start %s of stack %s: %v", e.Service, e.Project, e.Err)
	}
	return fmt.Sprintf("start %s of stack %s: it waits for %s, which %v", e.Service, e.Project, e.Waited, e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

// startStack creates every container of stack and starts them in
// dependency order (see above). ready, when set, is called after the
// containers exist and before the first one starts: a check that may
// still refuse (the memory budget).
//
// probes, by service, decide from outside when a service is healthy (the
// gate's own checks, Profile.ReadinessProbes); a service without one is
// asked with its healthcheck test, run inside it.
func (m *Manager) startStack(ctx context.Context, c *driver.Compose, stack driver.Stack, model *types.Project, probes map[string]gate.Probe, build bool, out io.Writer, ready func() error) error {
	if err := c.Create(ctx, stack, build, out); err != nil {
		return err
	}
	if ready != nil {
		if err := ready(); err != nil {
			return err
		}
	}
	containers, err := driver.ProjectContainers(ctx, m.Runner, stack.Project)
	if err != nil {
		return err
	}
	s := newStarter(m, c, stack, model, containers, out)
	s.probes = probes
	return s.run(ctx)
}

// starter walks one stack's dependency graph.
type starter struct {
	m       *Manager
	c       *driver.Compose
	stack   driver.Stack
	model   *types.Project
	out     io.Writer
	every   time.Duration
	byName  map[string][]driver.Container // service → its containers
	order   []string                      // services, sorted
	started map[string]chan struct{}      // closed once the service was started
	checks  sync.Map                      // "service/condition" → *readiness
	fail    context.CancelCauseFunc       // stops the walk, with the first failure as the cause
	probes  map[string]gate.Probe         // readiness from outside, by service
}

// readiness is the outcome of one dependency condition, decided once for
// every service that waits for it.
type readiness struct {
	once sync.Once
	err  error
}

func newStarter(m *Manager, c *driver.Compose, stack driver.Stack, model *types.Project, containers []driver.Container, out io.Writer) *starter {
	s := &starter{m: m, c: c, stack: stack, model: model, out: out, every: m.startProbe,
		byName: map[string][]driver.Container{}, started: map[string]chan struct{}{}}
	if s.every <= 0 {
		s.every = startProbeEvery
	}
	for _, k := range containers {
		if k.Service == "" {
			continue
		}
		if _, ok := s.byName[k.Service]; !ok {
			s.order = append(s.order, k.Service)
			s.started[k.Service] = make(chan struct{})
		}
		s.byName[k.Service] = append(s.byName[k.Service], k)
	}
	slices.Sort(s.order)
	return s
}

// run starts every service once what it depends on is ready; the first
// failure stops the walk.
func (s *starter) run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.fail = cancel
	var wg sync.WaitGroup
	for _, svc := range s.order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.startService(ctx, svc); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// startService waits for svc's dependencies, then starts its containers.
func (s *starter) startService(ctx context.Context, svc string) error {
	// Every dependency is awaited at once: a service that waits for two
	// healthy ones waits for the slower, not for both in turn; a required
	// one that fails stops the whole start at once.
	var wg sync.WaitGroup
	for _, d := range s.byName[svc][0].DependsOn {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.await(ctx, svc, d)
			switch {
			case err == nil || ctx.Err() != nil:
			case !s.required(svc, d.Service):
				s.m.emit(Event{Kind: EvOptionalDependencySkipped, ID: s.stack.Project, Service: svc, Source: d.Service, Err: err.Error()})
			default:
				s.fail(&StartError{Project: s.stack.Project, Service: svc, Waited: d.Service, Err: err})
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var ids []string
	for _, k := range s.byName[svc] {
		if k.State.Status != "running" {
			ids = append(ids, k.ID)
		}
	}
	var err error
	switch {
	case len(ids) == 0:
	case s.hasHooks(svc):
		// Only compose runs post_start hooks.
		_, err = s.c.Exec(ctx, s.stack, s.out, "up", "-d", "--no-deps", "--no-recreate", "--no-build", svc)
	default:
		err = driver.StartContainers(ctx, s.m.Runner, ids...)
	}
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return &StartError{Project: s.stack.Project, Service: svc, Err: err}
	}
	close(s.started[svc])
	return nil
}

// await waits until dependency d of svc is ready. A dependency with no
// containers (scale 0, an inactive profile) is not waited for.
func (s *starter) await(ctx context.Context, svc string, d driver.Dependency) error {
	ch, ok := s.started[d.Service]
	if !ok {
		return nil
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if d.Condition == "service_started" {
		return nil
	}
	v, _ := s.checks.LoadOrStore(d.Service+"/"+d.Condition, &readiness{})
	r := v.(*readiness)
	r.once.Do(func() {
		stop := s.reportWaits(ctx, svc, d)
		defer stop()
		for _, k := range s.byName[d.Service] {
			if d.Condition == "service_healthy" {
				r.err = s.healthy(ctx, k)
			} else {
				r.err = s.completed(ctx, k)
			}
			if r.err != nil {
				return
			}
		}
	})
	return r.err
}

// healthy runs k's healthcheck test until it passes.
func (s *starter) healthy(ctx context.Context, k driver.Container) error {
	if k.Healthcheck == nil {
		return fmt.Errorf("has no healthcheck to tell when it is healthy (container %s)", k.Name)
	}
	deadline := s.m.Now().Add(k.Healthcheck.Budget())
	test := func(ctx context.Context) error { return driver.RunHealthTest(ctx, s.m.Runner, k.ID, k.Healthcheck) }
	every := s.every
	if probe, ok := s.probes[k.Service]; ok {
		test = func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			return probe(ctx)
		}
		every = min(every, outsideProbeEvery) // a probe from outside costs the stack nothing
	}
	for {
		err := test(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		st, serr := driver.InspectState(ctx, s.m.Runner, k.ID)
		if serr == nil && st.Down() {
			return fmt.Errorf("is %s (container %s)", st, k.Name)
		}
		if !s.m.Now().Before(deadline) {
			return fmt.Errorf("did not become healthy within %s, its start period + interval × retries (container %s): %s",
				k.Healthcheck.Budget(), k.Name, lastLine(err.Error()))
		}
		select {
		case <-time.After(every):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// completed waits until k has exited, with status 0.
func (s *starter) completed(ctx context.Context, k driver.Container) error {
	code, err := driver.WaitContainer(ctx, s.m.Runner, k.ID)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return err
	}
	if code != 0 {
		return fmt.Errorf("did not complete successfully: exit status %d (container %s)", code, k.Name)
	}
	return nil
}

// reportWaits reports a wait that lasts, every stillWaitingAfter.
func (s *starter) reportWaits(ctx context.Context, svc string, d driver.Dependency) (stop func()) {
	done := make(chan struct{})
	start := s.m.Now()
	go func() {
		t := time.NewTicker(stillWaitingAfter)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.m.emit(Event{Kind: EvStillWaiting, ID: s.stack.Project, Service: svc, Source: d.Service,
					Condition: d.Condition, Elapsed: s.m.Now().Sub(start).Round(time.Second)})
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done) }
}

// required reports whether svc's dependency on dep is required (the
// compose file's `required`, true unless it says false).
func (s *starter) required(svc, dep string) bool {
	if s.model == nil {
		return true
	}
	sc, ok := s.model.Services[svc]
	if !ok {
		return true
	}
	d, ok := sc.DependsOn[dep]
	return !ok || d.Required
}

// hasHooks reports whether the file gives svc post_start hooks.
func (s *starter) hasHooks(svc string) bool {
	if s.model == nil {
		return false
	}
	sc, ok := s.model.Services[svc]
	return ok && len(sc.PostStart) > 0
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
