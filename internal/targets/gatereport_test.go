package targets

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/gate"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox"
)

func gateLogs(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "log line %02d\n", i)
	}
	return b.String()
}

func TestWriteGateReportPassed(t *testing.T) {
	var buf bytes.Buffer
	res := gate.Result{Passed: true, Elapsed: 12300 * time.Millisecond, Checks: []gate.CheckResult{{Name: "Database ready", Service: "db", Passed: true, Attempts: 1}}}
	writeGateReport(&buf, res, []sandbox.NamedURL{{Label: "API", URL: "http://localhost:8003/api/v1"}, {Label: "Grafana", URL: "http://localhost:3003"}}, nil)
	out := buf.String()

	assert.True(t, strings.HasPrefix(out, "Startability Gate: PASSED"), out)
	assert.Contains(t, out, "API      http://localhost:8003/api/v1")
	assert.Contains(t, out, "Grafana  http://localhost:3003")
	assert.NotContains(t, out, "FAILED")
}

func TestWriteGateReportFailed(t *testing.T) {
	tests := []struct {
		name       string
		res        gate.Result
		logs       map[string]string
		want       []string
		wantLogFor string // service whose last 20 lines must appear
	}{
		{
			name: "timeout",
			res: gate.Result{TimedOut: true, Elapsed: 120 * time.Second, Checks: []gate.CheckResult{
				{Name: "Database ready", Service: "db", Passed: true, Attempts: 3},
				{Name: "Workers registered", Service: "backend", Attempts: 57, LastError: "get http://127.0.0.1:8003/api/v1/workers: array has 2 entries, want ≥ 4"},
			}},
			logs:       map[string]string{"backend": gateLogs(35), "db": "db should not appear\n"},
			want:       []string{"Startability Gate: FAILED: timed out after 120.0s", "✗ Workers registered (service backend, 57 attempts)", "last error: get http://127.0.0.1:8003/api/v1/workers: array has 2 entries, want ≥ 4"},
			wantLogFor: "backend",
		},
		{
			name: "aborted by watch",
			res: gate.Result{Aborted: "service training-worker-1 is exited (1)", AbortedService: "training-worker-1", Elapsed: 3 * time.Second, Checks: []gate.CheckResult{
				{Name: "Backend healthy", Service: "backend", Attempts: 4, LastError: "get http://127.0.0.1:8003/api/v1/health: status 503, want 200"},
			}},
			logs:       map[string]string{"training-worker-1": gateLogs(21), "backend": "boot\n"},
			want:       []string{"Startability Gate: FAILED after 3.0s: service training-worker-1 is exited (1)", "✗ Backend healthy (service backend, 4 attempts)", "    boot"},
			wantLogFor: "training-worker-1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			writeGateReport(&buf, tt.res, []sandbox.NamedURL{{Label: "API", URL: "http://localhost:8003"}}, tt.logs)
			out := buf.String()
			for _, w := range tt.want {
				assert.Contains(t, out, w)
			}
			assert.NotContains(t, out, "PASSED")
			assert.NotContains(t, out, "http://localhost:8003\n", "no URLs for a failed gate")
			assert.NotContains(t, out, "db should not appear", "no logs for a passing check")

			all := gateLastLines(tt.logs[tt.wantLogFor], 1000)
			require.Greater(t, len(all), 20)
			var got []string
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "    log line ") {
					got = append(got, strings.TrimPrefix(l, "    "))
				}
			}
			assert.Equal(t, all[len(all)-20:], got, "exactly the last 20 log lines, indented")
		})
	}
}

func TestWriteGateReportSharedServiceLogsOnce(t *testing.T) {
	var buf bytes.Buffer
	res := gate.Result{TimedOut: true, Checks: []gate.CheckResult{
		{Name: "Backend healthy", Service: "backend", LastError: "x"},
		{Name: "Workers registered", Service: "backend", LastError: "y"},
	}}
	writeGateReport(&buf, res, nil, map[string]string{"backend": "only line\n"})
	assert.Equal(t, 1, strings.Count(buf.String(), "only line"))
	assert.Contains(t, buf.String(), "(logs of backend shown above)")
}

func gateProgressStates() []gate.State {
	return []gate.State{
		{Checks: []gate.CheckResult{{Name: "Database ready"}, {Name: "Backend healthy"}}},
		{Checks: []gate.CheckResult{{Name: "Database ready", LastError: "connection refused"}, {Name: "Backend healthy"}}},
		{Checks: []gate.CheckResult{{Name: "Database ready", Passed: true, ReadyAfter: 1200 * time.Millisecond}, {Name: "Backend healthy", LastError: "status 503, want 200"}}},
		{Checks: []gate.CheckResult{{Name: "Database ready", Passed: true, ReadyAfter: 1200 * time.Millisecond}, {Name: "Backend healthy", LastError: "status 503, want 200"}}},
		{Done: true, Checks: []gate.CheckResult{{Name: "Database ready", Passed: true, ReadyAfter: 1200 * time.Millisecond}, {Name: "Backend healthy", LastError: "status 503, want 200"}}},
	}
}

func TestGateProgressPlain(t *testing.T) {
	var buf bytes.Buffer
	update, stop := newGateProgress(&buf, false)
	for _, s := range gateProgressStates() {
		update(s)
	}
	stop()
	assert.Equal(t, "✓ Database ready (1.2s)\n✗ Backend healthy: status 503, want 200\n", buf.String())
	assert.NotContains(t, buf.String(), "\x1b", "no ANSI escapes off a terminal")
}

func TestGateProgressInterrupted(t *testing.T) {
	states := gateProgressStates()
	states[len(states)-1].Interrupted = true
	t.Setenv("NO_COLOR", "1")
	for _, tty := range []bool{false, true} {
		var buf bytes.Buffer
		update, stop := newGateProgress(&buf, tty)
		for _, s := range states {
			update(s)
		}
		stop()
		assert.Contains(t, buf.String(), "Backend healthy (interrupted)", "tty=%v", tty)
		assert.NotContains(t, buf.String(), "✗", "tty=%v: an interrupted check did not fail", tty)
	}
}

func TestGateProgressTerminal(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm")
	var buf bytes.Buffer
	update, stop := newGateProgress(&buf, true)
	for _, s := range gateProgressStates() {
		update(s)
	}
	stop()
	out := buf.String()
	assert.Contains(t, out, "\x1b[2A", "redraws the two-line block in place")
	assert.Contains(t, out, "\x1b[32m✓", "green tick")
	assert.Contains(t, out, "✗")
	assert.Contains(t, out, "Database ready")
}

func TestGateProgressTerminalNoColor(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	var buf bytes.Buffer
	update, stop := newGateProgress(&buf, true)
	for _, s := range gateProgressStates() {
		update(s)
	}
	stop()
	assert.NotContains(t, buf.String(), "\x1b[32m", "NO_COLOR: no colour, though the block still redraws")
	assert.Contains(t, buf.String(), "\x1b[2A")
}
