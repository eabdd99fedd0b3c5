package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// DownAllConcurrency is how many stacks DownAll stops at once by default:
// compose's stop of a stack mostly waits on its containers, and two at a
// time keep a small machine responsive.
const DownAllConcurrency = 2

// DownAllOptions are the inputs of DownAll.
type DownAllOptions struct {
	Concurrency int       // stacks stopped at once; 0 is DownAllConcurrency
	Out         io.Writer // compose's own output; nil discards it
}

// StopResult is one running sandbox DownAll stopped, or tried to.
type StopResult struct {
	ID      string `json:"id"`
	Path    string `json:"path"`
	Engine  string `json:"engine"`
	Stopped bool   `json:"stopped"`
	Error   string `json:"error,omitempty"`
}

// DownAllResult says what DownAll did: every sandbox that was running, by id.
type DownAllResult struct {
	Sandboxes []StopResult `json:"sandboxes"`
}

// DownAllError names the running sandboxes DownAll could not stop (or whose
// engine could not say whether they run).
type DownAllError struct {
	Failed []StopResult
	Of     int // how many it tried
}

func (e *DownAllError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "could not stop %d of %d sandbox(es):", len(e.Failed), e.Of)
	for _, f := range e.Failed {
		fmt.Fprintf(&b, "\n  %s (%s): %s", f.ID, f.Path, f.Error)
	}
	return b.String()
}

// DownAll stops every sandbox of the registry whose stack has a running
// (or restarting, or paused) container, on whichever engine it runs; their
// data (volumes) is kept. Each is stopped as Down stops it from its folder,
// or, when the folder no longer holds it, from its registry entry and the
// copy of its files kept for teardown (as destroy -name finds it), after
// checking that every container of the project carries its label. A few
// run at once (o.Concurrency). Each outcome is reported as an Event
// (EvStackStopped, EvStackStopFailed) as it happens; a *DownAllError names
// those that failed.
func (m *Manager) DownAll(ctx context.Context, o DownAllOptions) (*DownAllResult, error) {
	instances, err := m.Registry().Instances()
	if err != nil {
		return nil, err
	}
	todo, failed := m.runningSandboxes(ctx, instances)
	res := &DownAllResult{Sandboxes: []StopResult{}}
	for _, f := range failed {
		m.emit(Event{Kind: EvStackStopFailed, ID: f.ID, Path: f.Path, Engine: f.Engine, Err: f.Error})
	}
	res.Sandboxes = append(res.Sandboxes, failed...)

	n := o.Concurrency
	if n <= 0 {
		n = DownAllConcurrency
	}
	jobs := make(chan StopResult)
	results := make(chan StopResult)
	var wg sync.WaitGroup
	for range min(n, max(len(todo), 1)) {
		wg.Go(func() {
			for r := range jobs {
				if err := ctx.Err(); err != nil {
					r.Error = fmt.Sprintf("not stopped: %v", context.Cause(ctx))
				} else if err := m.stopRegistered(ctx, r.ID, instances[r.ID], o.Out); err != nil {
					r.Error = err.Error()
				} else {
					r.Stopped = true
				}
				results <- r
			}
		})
	}
	go func() {
		for _, r := range todo {
			jobs <- r
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()
	for r := range results {
		if r.Stopped {
			m.emit(Event{Kind: EvStackStopped, ID: r.ID, Path: r.Path, Engine: r.Engine})
		} else {
			m.emit(Event{Kind: EvStackStopFailed, ID: r.ID, Path: r.Path, Engine: r.Engine, Err: r.Error})
		}
		res.Sandboxes = append(res.Sandboxes, r)
	}
	slices.SortFunc(res.Sandboxes, func(a, b StopResult) int { return strings.Compare(a.ID, b.ID) })
	var bad []StopResult
	for _, r := range res.Sandboxes {
		if !r.Stopped {
			bad = append(bad, r)
		}
	}
	if len(bad) > 0 {
		return res, &DownAllError{Failed: bad, Of: len(res.Sandboxes)}
	}
	return res, nil
}

// runningSandboxes asks every engine the registry names (one docker ps
// each, all at once) which sandboxes have running containers. A sandbox
// whose engine did not answer, or whose project holds a container without
// its label, is returned as failed.
func (m *Manager) runningSandboxes(ctx context.Context, instances map[string]Instance) (todo, failed []StopResult) {
	engines := map[string]Engine{}
	for _, in := range instances {
		engines[in.Engine.Context] = in.Engine
	}
	type look struct {
		states map[string]*driver.StackState
		err    error
	}
	looks := map[string]*look{}
	var wg sync.WaitGroup
	for c, e := range engines {
		l := &look{}
		looks[c] = l
		wg.Go(func() {
			l.states, l.err = driver.StackStates(ctx, m.on(e).Runner, m.Profile.InstanceLabel)
		})
	}
	wg.Wait()
	for id, in := range instances {
		r := StopResult{ID: id, Path: in.Path, Engine: in.Engine.Name()}
		l := looks[in.Engine.Context]
		if l.err != nil {
			r.Error = (&EngineUnreachableError{Engine: in.Engine, Err: l.err}).Error()
			failed = append(failed, r)
			continue
		}
		st := l.states[id]
		if !active(st) {
			continue
		}
		for _, s := range st.Services {
			if s.Instance != id {
				r.Error = (&NotOwnedError{Project: id, Service: s.Service, Key: m.Profile.InstanceLabel, Label: s.Instance}).Error()
				break
			}
		}
		if r.Error != "" {
			failed = append(failed, r)
			continue
		}
		todo = append(todo, r)
	}
	slices.SortFunc(todo, func(a, b StopResult) int { return strings.Compare(a.ID, b.ID) })
	return todo, failed
}

// active reports whether a stack has a container that runs, restarts or is
// paused: one that uses the machine.
func active(st *driver.StackState) bool {
	if st == nil {
		return false
	}
	for _, s := range st.Services {
		switch s.State {
		case "running", "restarting", "paused":
			return true
		}
	}
	return false
}

// stopRegistered stops the stack of registered instance id, keeping its
// volumes: with Down from its folder when that still holds it, else from
// the copy of its files kept for teardown.
func (m *Manager) stopRegistered(ctx context.Context, id string, in Instance, out io.Writer) error {
	if m.holdsInstance(in.Path, id) {
		_, err := m.Down(ctx, DownOptions{Dir: in.Path, Out: out})
		return err
	}
	em := m.on(in.Engine)
	stack, ok := em.teardownStack(id, in)
	if !ok {
		return errors.New("cannot stop the stack of " + id + ": neither its folder nor the kept copy has its env and compose files")
	}
	c, err := em.Compose(ctx)
	if err != nil {
		return err
	}
	sec := em.bestEffortSecrets(ctx)
	if err := c.Down(ctx, withSecrets(stack, sec), false, out); err != nil && !em.onlyNetworksLeft(ctx, id, err) {
		return sec.MaskError(&ComposeError{Err: err})
	}
	return nil
}
