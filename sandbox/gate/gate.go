// Package gate is the startability gate: it runs a set of checks, each a
// probe of one service from outside its container, concurrently, each
// polling with backoff until it passes once, and ends when all have passed,
// when its timeout elapses, when a watcher reports a dead service, or when
// the caller cancels. It knows nothing of compose or of the stack: the
// caller builds the checks (the sandbox package builds them from its
// profile) and renders the result.
//
// The probes (probe.go, postgres.go) face whatever answers on a port: each
// attempt is bounded by ProbeTimeout and reads a bounded amount.
package gate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Gate defaults. Detection latency (from the last service becoming ready to
// Run returning) is bounded by MaxInterval plus one probe round trip.
const (
	DefaultTimeout     = 120 * time.Second
	DefaultInterval    = 100 * time.Millisecond
	DefaultMaxInterval = 200 * time.Millisecond
	backoffFactor      = 1.5
	watchInterval      = time.Second
)

// Clock is the gate's view of time; tests replace it with a fake.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Check is one thing the gate waits for, and the probe that decides it.
type Check struct {
	Name    string // "Database ready"
	Service string // the compose service behind it, whose logs explain a failure
	Probe   Probe
	// A probe error with a Permanent() method that returns true ends the
	// gate at once, failed (waiting does not cure it).
	//
	// Once makes the check a step rather than a poll (a hook after start:
	// a migration): its probe runs once, after every check named in Needs
	// has passed, bounded by the gate's timeout only; its failure ends the
	// gate at once, failed, with the probe's error as the reason.
	Once  bool
	Needs []string // names of the checks that must pass before a Once check runs
}

// Gate is the startability gate: it runs every check concurrently, each
// polling its probe with backoff (Interval growing to MaxInterval) until it
// passes once, and ends when all have passed, when Timeout elapses, when
// Watch reports a dead service, or when the context is cancelled.
type Gate struct {
	Checks      []Check
	Timeout     time.Duration // overall; 0 means DefaultTimeout
	Interval    time.Duration // first poll spacing; 0 means DefaultInterval
	MaxInterval time.Duration // backoff cap; 0 means DefaultMaxInterval
	// Watch, if set, is called about once a second; a non-nil error means a
	// service container exited or is restart-looping, and ends the gate at
	// once with that reason. A *ServiceDownError also names the service.
	Watch    func(ctx context.Context) error
	Clock    Clock       // nil means the real clock
	Progress func(State) // optional; called from Run's goroutine at the start, whenever a check passes or its error changes, and at the end (Done)
}

// CheckResult is the outcome of one check.
type CheckResult struct {
	Name       string        `json:"name"`
	Service    string        `json:"service"`
	Passed     bool          `json:"passed"`
	Attempts   int           `json:"attempts"`
	LastError  string        `json:"last_error,omitempty"`
	ReadyAfter time.Duration `json:"ready_after_ns,omitempty"` // since the gate started; set when Passed
}

// Result is the outcome of one gate run.
type Result struct {
	Passed         bool          `json:"passed"`
	TimedOut       bool          `json:"timed_out,omitempty"`
	Aborted        string        `json:"aborted,omitempty"`         // why it ended early, if it did
	AbortedService string        `json:"aborted_service,omitempty"` // the service Watch reported, if known
	Interrupted    bool          `json:"interrupted,omitempty"`     // the caller cancelled it before every check passed
	Elapsed        time.Duration `json:"elapsed_ns"`
	Checks         []CheckResult `json:"checks"`
}

// State is a snapshot for progress display. Done is set on the final call.
type State struct {
	Elapsed time.Duration `json:"elapsed_ns"`
	Done    bool          `json:"done"`
	// Interrupted is set on the last state when the caller cancelled the
	// gate: the checks that had not passed are unknown, not failed.
	Interrupted bool          `json:"interrupted,omitempty"`
	Checks      []CheckResult `json:"checks"`
}

// ServiceDownError is what a Watch function returns when a service container
// has exited or is restart-looping.
type ServiceDownError struct {
	Service string
	State   string // "exited (1)", "restarting" …
}

func (e *ServiceDownError) Error() string {
	return fmt.Sprintf("service %s is %s", e.Service, e.State)
}

// FailedServices returns the services behind failed checks, and the service
// Watch reported, each once, in check order (the reported one first).
func (r Result) FailedServices() []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	add(r.AbortedService)
	for _, c := range r.Checks {
		if !c.Passed {
			add(c.Service)
		}
	}
	return out
}

type event struct {
	idx int
	err error
	at  time.Time
}

// Run runs the gate and reports what happened; it returns only after every
// probe it started has returned.
func (g *Gate) Run(ctx context.Context) Result {
	clock := g.Clock
	if clock == nil {
		clock = realClock{}
	}
	timeout := orDefault(g.Timeout, DefaultTimeout)
	interval := orDefault(g.Interval, DefaultInterval)
	maxInterval := max(orDefault(g.MaxInterval, DefaultMaxInterval), interval)

	start := clock.Now()
	res := Result{Checks: make([]CheckResult, len(g.Checks))}
	for i, c := range g.Checks {
		res.Checks[i] = CheckResult{Name: c.Name, Service: c.Service}
	}
	interrupted := false
	progress := func(done bool) {
		if g.Progress != nil {
			g.Progress(State{Elapsed: clock.Now().Sub(start), Done: done, Interrupted: interrupted,
				Checks: append([]CheckResult(nil), res.Checks...)})
		}
	}
	progress(false)

	deadline := clock.After(timeout)
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	events := make(chan event)                     // unbuffered: an attempt is recorded before its prober waits again
	passed := make([]chan struct{}, len(g.Checks)) // closed when check i passes
	index := map[string]int{}
	for i, c := range g.Checks {
		passed[i] = make(chan struct{})
		index[c.Name] = i
	}
	// attempt runs c's probe once and records it; done: the gate ended meanwhile.
	attempt := func(i int, c Check) (ok, done bool) {
		err := c.Probe(runCtx)
		if runCtx.Err() != nil {
			return false, true
		}
		select {
		case events <- event{idx: i, err: err, at: clock.Now()}:
			return err == nil, false
		case <-runCtx.Done():
			return false, true
		}
	}
	for i, c := range g.Checks {
		if c.Once {
			wg.Go(func() {
				for _, n := range c.Needs {
					j, ok := index[n]
					if !ok {
						continue
					}
					select {
					case <-passed[j]:
					case <-runCtx.Done():
						return
					}
				}
				attempt(i, c)
			})
			continue
		}
		wg.Go(func() {
			wait := interval
			for {
				if ok, done := attempt(i, c); done || ok {
					return
				}
				select {
				case <-clock.After(wait):
				case <-runCtx.Done():
					return
				}
				wait = min(time.Duration(float64(wait)*backoffFactor), maxInterval)
			}
		})
	}
	watchErr := make(chan error)
	if g.Watch != nil {
		wg.Go(func() {
			for {
				select {
				case <-clock.After(watchInterval):
				case <-runCtx.Done():
					return
				}
				if err := g.Watch(runCtx); err != nil && runCtx.Err() == nil {
					select {
					case watchErr <- err:
					case <-runCtx.Done():
					}
					return
				}
			}
		})
	}

	pending := len(g.Checks)
	for pending > 0 {
		select {
		case ev := <-events:
			cr := &res.Checks[ev.idx]
			cr.Attempts++
			if ev.err == nil {
				cr.Passed = true
				cr.LastError = ""
				cr.ReadyAfter = ev.at.Sub(start)
				close(passed[ev.idx])
				pending--
				progress(false)
				continue
			}
			if msg := ev.err.Error(); msg != cr.LastError {
				cr.LastError = msg
				progress(false)
			}
			var perm interface{ Permanent() bool }
			if c := g.Checks[ev.idx]; c.Once || errors.As(ev.err, &perm) && perm.Permanent() {
				// A step that failed, or a refusal such as credentials the
				// database does not accept, does not get better by waiting.
				res.Aborted = fmt.Sprintf("%s failed: %s", c.Name, firstLine(ev.err.Error()))
				res.AbortedService = c.Service
				break
			}
			continue
		case err := <-watchErr:
			res.Aborted = err.Error()
			var sd *ServiceDownError
			if errors.As(err, &sd) {
				res.AbortedService = sd.Service
			}
		case <-deadline:
			res.TimedOut = true
		case <-ctx.Done():
			res.Aborted = fmt.Sprintf("interrupted: %v", context.Cause(ctx))
		}
		break
	}
	cancel()
	wg.Wait()
	// However the loop ended, a cancelled caller sees an interrupted gate
	// (up reports it so): checks still pending are unknown, not failed.
	interrupted = ctx.Err() != nil && pending > 0
	res.Interrupted = interrupted
	res.Passed = pending == 0
	res.Elapsed = clock.Now().Sub(start)
	progress(true)
	return res
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
