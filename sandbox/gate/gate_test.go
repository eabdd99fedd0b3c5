package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gateFakeClock is a Clock whose time moves only when the test says so.
type gateFakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []gateWaiter
}

type gateWaiter struct {
	at time.Time
	ch chan time.Time
}

func newGateFakeClock() *gateFakeClock {
	return &gateFakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *gateFakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *gateFakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, gateWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// waiting returns how many timers are pending.
func (c *gateFakeClock) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// advanceToNext moves time to the earliest pending timer and fires every timer due.
func (c *gateFakeClock) advanceToNext() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waiters) == 0 {
		return
	}
	next := c.waiters[0].at
	for _, w := range c.waiters {
		if w.at.Before(next) {
			next = w.at
		}
	}
	c.now = next
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
		} else {
			w.ch <- c.now
		}
	}
	c.waiters = kept
}

// gateDrive advances clock each time at least n timers are pending (every
// goroutine of the gate is asleep), until done is closed. Real time only
// paces the polling; no assertion depends on it.
func gateDrive(clock *gateFakeClock, n int, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		default:
		}
		if clock.waiting() >= n {
			clock.advanceToNext()
		} else {
			runtime.Gosched()
			time.Sleep(20 * time.Microsecond)
		}
	}
}

// gateRunDriven runs g with a fake clock advanced whenever n timers are pending.
func gateRunDriven(ctx context.Context, g *Gate, n int) (Result, *gateFakeClock) {
	clock := newGateFakeClock()
	g.Clock = clock
	done := make(chan struct{})
	go gateDrive(clock, n, done)
	res := g.Run(ctx)
	close(done)
	return res, clock
}

func gateOK(context.Context) error { return nil }

func gateCheck(name, service string, p Probe) Check {
	return Check{Name: name, Service: service, Probe: p}
}

func TestGateAllPass(t *testing.T) {
	var states []State
	g := &Gate{
		Clock:    newGateFakeClock(),
		Checks:   []Check{gateCheck("Database ready", "db", gateOK), gateCheck("Backend healthy", "backend", gateOK)},
		Progress: func(s State) { states = append(states, s) },
	}
	res := g.Run(t.Context())

	assert.True(t, res.Passed)
	assert.Empty(t, res.Aborted)
	assert.False(t, res.TimedOut)
	assert.Zero(t, res.Elapsed, "no clock advance was needed")
	require.Len(t, res.Checks, 2)
	for _, c := range res.Checks {
		assert.True(t, c.Passed, c.Name)
		assert.Equal(t, 1, c.Attempts, c.Name)
		assert.Empty(t, c.LastError, c.Name)
	}
	assert.Empty(t, res.FailedServices())
	require.NotEmpty(t, states)
	assert.True(t, states[len(states)-1].Done)
	assert.False(t, states[0].Done)
}

func TestGateNoChecksPasses(t *testing.T) {
	res := (&Gate{Clock: newGateFakeClock()}).Run(t.Context())
	assert.True(t, res.Passed)
}

func TestGateRunsChecksConcurrently(t *testing.T) {
	const n = 4
	var called atomic.Int32
	all := make(chan struct{})
	// Each probe blocks until every probe has been called once: only a gate
	// that runs them in parallel can pass. The safety timeout only turns a
	// deadlock into a failure.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	probe := func(ctx context.Context) error {
		if called.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var checks []Check
	for i := range n {
		checks = append(checks, gateCheck(fmt.Sprintf("check %d", i), "svc", probe))
	}
	res := (&Gate{Checks: checks, Clock: newGateFakeClock()}).Run(ctx)
	assert.True(t, res.Passed, "aborted: %s", res.Aborted)
	assert.EqualValues(t, n, called.Load())
}

func TestGateTimeoutReportsLastErrorAndAttempts(t *testing.T) {
	var attempts atomic.Int32
	g := &Gate{
		Timeout:     2 * time.Second,
		Interval:    100 * time.Millisecond,
		MaxInterval: 250 * time.Millisecond,
		Checks: []Check{
			gateCheck("Database ready", "db", gateOK),
			gateCheck("Workers registered", "backend", func(context.Context) error {
				return fmt.Errorf("array has %d entries, want ≥ 4", attempts.Add(1))
			}),
		},
	}
	// Pending timers once settled: the failing check's backoff and the overall timeout.
	res, _ := gateRunDriven(t.Context(), g, 2)

	assert.False(t, res.Passed)
	assert.True(t, res.TimedOut)
	assert.Empty(t, res.Aborted)
	assert.Equal(t, 2*time.Second, res.Elapsed)
	require.Len(t, res.Checks, 2)
	assert.True(t, res.Checks[0].Passed)
	bad := res.Checks[1]
	assert.False(t, bad.Passed)
	// Attempts at 0, 100, 250, 475, 725, 975, 1225, 1475, 1725, 1975 ms.
	assert.Equal(t, 10, bad.Attempts)
	assert.Equal(t, "array has 10 entries, want ≥ 4", bad.LastError)
	assert.Equal(t, []string{"backend"}, res.FailedServices())
}

func TestGateBackoffSchedule(t *testing.T) {
	tests := []struct {
		name          string
		interval, max time.Duration
		want          []time.Duration // spacing between attempts
	}{
		{"grows to cap", 100 * time.Millisecond, 250 * time.Millisecond,
			[]time.Duration{100, 150, 225, 250, 250, 250}},
		{"defaults", 0, 0,
			[]time.Duration{100, 150, 200, 200, 200, 200}},
		{"cap below interval", 300 * time.Millisecond, 100 * time.Millisecond,
			[]time.Duration{300, 300, 300, 300, 300, 300}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var clock Clock
			var mu sync.Mutex
			var at []time.Time
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			g := &Gate{Interval: tt.interval, MaxInterval: tt.max, Checks: []Check{
				gateCheck("never", "svc", func(context.Context) error {
					mu.Lock()
					defer mu.Unlock()
					at = append(at, clock.Now())
					if len(at) == len(tt.want)+1 {
						cancel()
					}
					return errors.New("not yet")
				}),
			}}
			fc := newGateFakeClock()
			clock = fc
			g.Clock = fc
			done := make(chan struct{})
			go gateDrive(fc, 2, done)
			res := g.Run(ctx)
			close(done)

			assert.Contains(t, res.Aborted, "interrupted")
			mu.Lock()
			defer mu.Unlock()
			var got []time.Duration
			for i := 1; i < len(at); i++ {
				got = append(got, at[i].Sub(at[i-1])/time.Millisecond)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestGateWatchAbortsEarly(t *testing.T) {
	var calls atomic.Int32
	g := &Gate{
		Timeout: 120 * time.Second,
		Checks:  []Check{gateCheck("Backend healthy", "backend", func(context.Context) error { return errors.New("connection refused") })},
		Watch: func(context.Context) error {
			if calls.Add(1) < 3 {
				return nil
			}
			return &ServiceDownError{Service: "training-worker-1", State: "exited (1)"}
		},
	}
	// Pending timers: the check's backoff, the watch tick and the overall timeout.
	res, _ := gateRunDriven(t.Context(), g, 3)

	assert.False(t, res.Passed)
	assert.False(t, res.TimedOut)
	assert.Equal(t, "service training-worker-1 is exited (1)", res.Aborted)
	assert.Equal(t, "training-worker-1", res.AbortedService)
	assert.Equal(t, 3*time.Second, res.Elapsed, "third watch call, long before the timeout")
	assert.EqualValues(t, 3, calls.Load())
	assert.Equal(t, []string{"training-worker-1", "backend"}, res.FailedServices())
	assert.Equal(t, "connection refused", res.Checks[0].LastError)
}

func TestGateContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var n atomic.Int32
	g := &Gate{Checks: []Check{gateCheck("Backend healthy", "backend", func(context.Context) error {
		if n.Add(1) == 3 {
			cancel()
		}
		return errors.New("status 503, want 200")
	})}}
	var last State
	g.Progress = func(s State) { last = s }
	res, _ := gateRunDriven(ctx, g, 2)
	assert.True(t, last.Done && last.Interrupted, "the last progress state says the gate was interrupted")
	assert.True(t, res.Interrupted)

	assert.False(t, res.Passed)
	assert.False(t, res.TimedOut)
	assert.Equal(t, "interrupted: context canceled", res.Aborted)
	// The attempt that saw the cancellation is not recorded.
	assert.Equal(t, 2, res.Checks[0].Attempts)
}

func TestGateProgressOnStateChange(t *testing.T) {
	var n atomic.Int32
	var states []State
	g := &Gate{
		Checks: []Check{gateCheck("Workers registered", "backend", func(context.Context) error {
			switch n.Add(1) {
			case 1, 2:
				return errors.New("array has 0 entries, want ≥ 4")
			case 3:
				return errors.New("array has 2 entries, want ≥ 4")
			}
			return nil
		})},
		Progress: func(s State) { states = append(states, s) },
	}
	res, _ := gateRunDriven(t.Context(), g, 2)
	require.True(t, res.Passed)

	var got []string
	for _, s := range states {
		c := s.Checks[0]
		got = append(got, fmt.Sprintf("done=%v passed=%v err=%q", s.Done, c.Passed, c.LastError))
	}
	assert.Equal(t, []string{
		`done=false passed=false err=""`,
		`done=false passed=false err="array has 0 entries, want ≥ 4"`,
		`done=false passed=false err="array has 2 entries, want ≥ 4"`,
		`done=false passed=true err=""`,
		`done=true passed=true err=""`,
	}, got, "a repeated error is not a state change")
	assert.Equal(t, 450*time.Millisecond, res.Checks[0].ReadyAfter, "attempts at 0, 100, 250, 450 ms")
}

func TestGateResultJSON(t *testing.T) {
	res := Result{Aborted: "service db is exited (1)", AbortedService: "db", Elapsed: 1500 * time.Millisecond,
		Checks: []CheckResult{{Name: "Database ready", Service: "db", Attempts: 3, LastError: "connect 127.0.0.1:5433: connection refused"}}}
	b, err := json.Marshal(res)
	require.NoError(t, err)
	assert.JSONEq(t, `{"passed":false,"aborted":"service db is exited (1)","aborted_service":"db","elapsed_ns":1500000000,
		"checks":[{"name":"Database ready","service":"db","passed":false,"attempts":3,"last_error":"connect 127.0.0.1:5433: connection refused"}]}`, string(b))
	var back Result
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, res, back)
}

// gateDetectionLatencies measures, with the real clock and the default
// intervals, the time from the moment the last of three fake services turns
// ready (an httptest server flips from 503 to 200) to Run returning PASSED.
// The flip comes 500–1000 ms after the start, so polling is at its cap and
// the flip falls at varied phases of the poll schedule.
func gateDetectionLatencies(tb testing.TB, runs int) []time.Duration {
	tb.Helper()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`[1,2]`))
	}))
	defer ok.Close()
	var ready atomic.Bool
	late := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer late.Close()

	out := make([]time.Duration, 0, runs)
	for i := range runs {
		ready.Store(false)
		g := &Gate{Timeout: 30 * time.Second, Checks: []Check{
			gateCheck("ok", "a", HTTPProbe(nil, ok.URL, 200)),
			gateCheck("array", "b", JSONArrayProbe(nil, ok.URL, 2)),
			gateCheck("late", "c", HTTPProbe(nil, late.URL, 200)),
		}}
		type ended struct {
			res Result
			at  time.Time
		}
		done := make(chan ended, 1)
		go func() {
			res := g.Run(context.Background())
			done <- ended{res, time.Now()}
		}()
		time.Sleep(500*time.Millisecond + time.Duration(i*137%500)*time.Millisecond)
		flip := time.Now()
		ready.Store(true)
		e := <-done
		if !e.res.Passed {
			tb.Fatalf("run %d: gate did not pass: %+v", i, e.res)
		}
		out = append(out, e.at.Sub(flip))
	}
	return out
}

// gatePercentile returns the p-th percentile (0–100, nearest rank) of ds.
func gatePercentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := (p*len(s)+99)/100 - 1
	return s[max(idx, 0)]
}

// BenchmarkGateDetectionLatency reports median and p95 detection latency.
// Run: go test ./sandbox/ -run '^$' -bench GateDetectionLatency -benchtime 20x
func BenchmarkGateDetectionLatency(b *testing.B) {
	lat := gateDetectionLatencies(b, b.N)
	b.ReportMetric(float64(gatePercentile(lat, 50))/float64(time.Millisecond), "median-ms")
	b.ReportMetric(float64(gatePercentile(lat, 95))/float64(time.Millisecond), "p95-ms")
	b.ReportMetric(float64(gatePercentile(lat, 100))/float64(time.Millisecond), "max-ms")
}
