package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/gate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer collects a role's log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor bounds every wait for something that must happen (a role
// listening, a worker registering, a role stopping): an upper bound only,
// generous for 2 noisy cores. No assertion depends on how fast it happens.
const waitFor = 30 * time.Second

type role struct {
	addr string // 127.0.0.1:port of the main listener
	log  *syncBuffer
	done chan int // the exit status, once
	stop context.CancelFunc
}

func (r *role) url(path string) string { return "http://" + r.addr + path }

// startRole runs a role in-process on 127.0.0.1 and a free port. With
// waitListen it returns once the port accepts connections. The role is
// stopped at cleanup, and must then exit 0 (within waitFor) unless the
// test already consumed its status.
func startRole(t *testing.T, name string, env map[string]string, waitListen bool) *role {
	t.Helper()
	port := freePort(t)
	if p, ok := env[envPort]; ok {
		port, _ = strconv.Atoi(p)
	}
	full := map[string]string{envListenHost: "127.0.0.1", envPort: strconv.Itoa(port)}
	for k, v := range env {
		full[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &role{addr: fmt.Sprintf("127.0.0.1:%d", port), log: &syncBuffer{}, done: make(chan int, 1), stop: cancel}
	go func() {
		r.done <- run(ctx, []string{"standin", name}, func(k string) string { return full[k] }, r.log, r.log)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code, ok := <-r.done:
			if ok {
				assert.Equal(t, 0, code, "exit status of %s; log:\n%s", name, r.log)
			}
		case <-time.After(waitFor):
			t.Errorf("%s did not stop within %s of the signal; log:\n%s", name, waitFor, r.log)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, r.log)
		}
	})
	if waitListen {
		require.Eventually(t, func() bool {
			c, err := net.DialTimeout("tcp", r.addr, 100*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err == nil
		}, waitFor, 10*time.Millisecond, "%s never listened on %s; log:\n%s", name, r.addr, r.log)
	}
	return r
}

func getJSON(t *testing.T, url string, into any) int {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	if into != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(into), "GET %s", url)
	}
	return resp.StatusCode
}

func getStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestStandinBackendShapes(t *testing.T) {
	b := startRole(t, "backend", nil, true)

	var health map[string]any
	require.Equal(t, 200, getJSON(t, b.url("/api/v1/health"), &health))
	assert.Equal(t, map[string]any{"status": "ok", "version": "standin", "orphan_detector": nil}, health)

	var ops map[string]any
	require.Equal(t, 200, getJSON(t, b.url("/api/v1/operations"), &ops))
	assert.Equal(t, map[string]any{"success": true, "data": []any{}, "total_count": 0.0, "active_count": 0.0}, ops)

	var workers []any
	require.Equal(t, 200, getJSON(t, b.url("/api/v1/workers"), &workers), "an empty list is still a bare array")
	assert.Empty(t, workers)

	assert.Equal(t, 404, getStatus(b.url("/nope")))
	assert.Contains(t, b.log.String(), "GET /api/v1/health 200")
}

func TestStandinRegisterIsIdempotent(t *testing.T) {
	b := startRole(t, "backend", nil, true)
	post := func(body string) int {
		resp, err := http.Post(b.url("/api/v1/workers/register"), "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, 200, post(`{"worker_id":"w1","worker_type":"backtesting","endpoint_url":"http://a:5003","capabilities":{}}`))
	assert.Equal(t, 200, post(`{"worker_id":"w1","worker_type":"backtesting","endpoint_url":"http://b:5003","capabilities":{"gpu":false}}`))
	assert.Equal(t, 422, post(`{"worker_id":"w2"}`), "missing fields are refused")

	var workers []map[string]any
	require.Equal(t, 200, getJSON(t, b.url("/api/v1/workers"), &workers))
	require.Len(t, workers, 1)
	assert.Equal(t, "http://b:5003", workers[0]["endpoint_url"])
	assert.Equal(t, map[string]any{"gpu": false}, workers[0]["capabilities"])
}

func TestStandinWorkerRegistersWithRetry(t *testing.T) {
	apiPort := freePort(t)
	w := startRole(t, "worker", map[string]string{
		"WORKER_ID": "backtest-worker-1", "WORKER_TYPE": "backtesting",
		"WORKER_ENDPOINT_URL": "http://127.0.0.1:0", // replaced below once the port is known
		"KTRDR_API_URL":       fmt.Sprintf("http://127.0.0.1:%d", apiPort),
		envRegisterBackoff:    "20ms",
	}, true)
	// The backend is not there yet: the worker must log failed attempts…
	require.Eventually(t, func() bool { return strings.Contains(w.log.String(), "registration attempt 2 ") },
		waitFor, 10*time.Millisecond, "no retries logged:\n%s", w.log)
	assert.Contains(t, w.log.String(), "retrying in 20ms")
	assert.Contains(t, w.log.String(), "retrying in 40ms", "backoff doubles")

	// …and register once it comes up.
	b := startRole(t, "backend", map[string]string{envPort: strconv.Itoa(apiPort)}, true)
	var workers []map[string]any
	require.Eventually(t, func() bool {
		workers = nil
		getJSON(t, b.url("/api/v1/workers"), &workers)
		return len(workers) == 1
	}, waitFor, 20*time.Millisecond, "worker never registered; worker log:\n%s", w.log)
	// The backend lists the worker before the worker has read the answer
	// and logged it.
	require.Eventually(t, func() bool { return strings.Contains(w.log.String(), "registered with backend") },
		waitFor, 10*time.Millisecond, "worker never logged its registration:\n%s", w.log)

	keys := make([]string, 0, len(workers[0]))
	for k := range workers[0] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	assert.Equal(t, []string{"capabilities", "current_operation_id", "endpoint_url", "health_check_failures",
		"last_health_check", "last_healthy_at", "metadata", "status", "worker_id", "worker_type"}, keys)
	assert.Equal(t, "backtest-worker-1", workers[0]["worker_id"])
	assert.Equal(t, "backtesting", workers[0]["worker_type"])
	assert.Equal(t, "available", workers[0]["status"])
	assert.Equal(t, map[string]any{}, workers[0]["metadata"])
	assert.Nil(t, workers[0]["current_operation_id"])

	var health map[string]any
	require.Equal(t, 200, getJSON(t, w.url("/health"), &health))
	assert.Equal(t, true, health["healthy"])
	assert.Equal(t, "backtesting-worker", health["service"])
}

func TestStandinBackendHealthChecksWorkers(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"healthy": true, "service": "training-worker"})
	}))
	t.Cleanup(healthy.Close)
	b := startRole(t, "backend", map[string]string{envCheckInterval: "30ms"}, true)
	for id, url := range map[string]string{"good": healthy.URL, "gone": fmt.Sprintf("http://127.0.0.1:%d", freePort(t))} {
		body := fmt.Sprintf(`{"worker_id":%q,"worker_type":"training","endpoint_url":%q,"capabilities":{}}`, id, url)
		resp, err := http.Post(b.url("/api/v1/workers/register"), "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
	}
	byID := map[string]map[string]any{}
	require.Eventually(t, func() bool {
		var workers []map[string]any
		getJSON(t, b.url("/api/v1/workers"), &workers)
		for _, w := range workers {
			byID[w["worker_id"].(string)] = w
		}
		return byID["gone"]["status"] == "temporarily_unavailable" && byID["good"]["last_healthy_at"] != nil
	}, waitFor, 20*time.Millisecond)
	assert.GreaterOrEqual(t, byID["gone"]["health_check_failures"], 3.0)
	assert.Nil(t, byID["gone"]["last_healthy_at"])
	assert.Equal(t, "available", byID["good"]["status"])
	assert.Equal(t, 0.0, byID["good"]["health_check_failures"])
	// The backend logs a change of status after it made it: the line may
	// still be on its way when the list shows the new status.
	assert.Eventually(t, func() bool { return strings.Contains(b.log.String(), "worker gone is now temporarily_unavailable") },
		waitFor, 10*time.Millisecond, "log:\n%s", b.log)
}

func TestStandinWorkerNoRegister(t *testing.T) {
	b := startRole(t, "backend", nil, true)
	w := startRole(t, "worker", map[string]string{"KTRDR_API_URL": "http://" + b.addr, envNoRegister: "1"}, true)
	require.Equal(t, 200, getStatus(w.url("/health")))
	// The worker logs its decision instead of starting to register: once
	// the line is there, no registration is under way.
	require.Eventually(t, func() bool { return strings.Contains(w.log.String(), "not registering") },
		waitFor, 10*time.Millisecond, "worker log:\n%s", w.log)
	var workers []any
	getJSON(t, b.url("/api/v1/workers"), &workers)
	assert.Empty(t, workers)
	assert.NotContains(t, w.log.String(), "registration attempt")
}

func TestStandinHealthEndpoints(t *testing.T) {
	for _, tc := range []struct{ role, path, want string }{
		{"backend", "/api/v1/health", `"status":"ok"`},
		{"worker", "/health", `"healthy":true`},
		{"jaeger", "/", "Jaeger"},
		{"prometheus", "/-/healthy", "Healthy"},
		{"grafana", "/api/health", `"database":"ok"`},
		{"http", "/health", `"status":"ok"`},
	} {
		t.Run(tc.role, func(t *testing.T) {
			env := map[string]string{envNoRegister: "1", envOTLPGRPCPort: strconv.Itoa(freePort(t)), envOTLPHTTPPort: strconv.Itoa(freePort(t))}
			r := startRole(t, tc.role, env, true)
			resp, err := http.Get(r.url(tc.path))
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, 200, resp.StatusCode)
			assert.Contains(t, string(body), tc.want)

			failing := startRole(t, tc.role, map[string]string{envNoRegister: "1", envFailHealth: "1",
				envOTLPGRPCPort: strconv.Itoa(freePort(t)), envOTLPHTTPPort: strconv.Itoa(freePort(t))}, true)
			assert.Equal(t, 503, getStatus(failing.url(tc.path)), "%s=1", envFailHealth)
		})
	}
}

func TestStandinJaegerAcceptsOTLP(t *testing.T) {
	grpc, otlpHTTP := freePort(t), freePort(t)
	j := startRole(t, "jaeger", map[string]string{envOTLPGRPCPort: strconv.Itoa(grpc), envOTLPHTTPPort: strconv.Itoa(otlpHTTP)}, true)
	// The OTLP ports open after the UI port: their log lines say when.
	for _, p := range []int{grpc, otlpHTTP} {
		require.Eventually(t, func() bool { return strings.Contains(j.log.String(), fmt.Sprintf("listening on 127.0.0.1:%d", p)) },
			waitFor, 10*time.Millisecond, "log:\n%s", j.log)
	}
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", grpc), time.Second)
	require.NoError(t, err)
	c.Close()
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/traces", otlpHTTP), "application/x-protobuf", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
}

func TestStandinReadyAt(t *testing.T) {
	// Ready in an hour: listening, but health answers 503 and the db 57P03.
	far := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	b := startRole(t, "backend", map[string]string{envReadyAt: far}, true)
	assert.Equal(t, 503, getStatus(b.url("/api/v1/health")), "listening but not ready")
	db := startRole(t, "db", map[string]string{envReadyAt: far}, true)
	var starting *gate.PostgresStartingError
	assert.ErrorAs(t, gate.ProbePostgres(t.Context(), db.addr, "ktrdr", "ktrdr"), &starting)

	// Ready soon: polled until it turns ready, every answer must agree with
	// the clock around it. "Not ready" only to a question asked before
	// READY_AT, "ready" only in an answer that came after it: this holds
	// however slowly the machine runs, with no window to hit.
	soon := func() (map[string]string, time.Time) {
		ms := time.Now().Add(300 * time.Millisecond).UnixMilli()
		return map[string]string{envReadyAt: strconv.FormatInt(ms, 10)}, time.UnixMilli(ms)
	}
	env, readyAt := soon()
	b = startRole(t, "backend", env, true)
	require.Eventually(t, func() bool {
		asked := time.Now()
		code := getStatus(b.url("/api/v1/health"))
		answered := time.Now()
		switch code {
		case 503:
			assert.True(t, asked.Before(readyAt), "503 to a question asked %s after READY_AT", asked.Sub(readyAt))
		case 200:
			assert.False(t, answered.Before(readyAt), "ready %s before READY_AT", readyAt.Sub(answered))
		default:
			t.Errorf("health answered %d", code)
		}
		return code == 200
	}, waitFor, 10*time.Millisecond)

	env, readyAt = soon()
	db = startRole(t, "db", env, true)
	require.Eventually(t, func() bool {
		asked := time.Now()
		err := gate.ProbePostgres(t.Context(), db.addr, "ktrdr", "ktrdr")
		answered := time.Now()
		switch {
		case errors.As(err, &starting):
			assert.True(t, asked.Before(readyAt), "57P03 to a probe begun %s after READY_AT", asked.Sub(readyAt))
		case err == nil:
			assert.False(t, answered.Before(readyAt), "ready %s before READY_AT", readyAt.Sub(answered))
		default:
			t.Errorf("probe: %v", err)
		}
		return err == nil
	}, waitFor, 10*time.Millisecond)
}

func TestStandinStartDelay(t *testing.T) {
	// A delay of an hour: the role logs the delay before it waits, and
	// does not listen while it waits.
	b := startRole(t, "backend", map[string]string{envStartDelay: "1h"}, false)
	require.Eventually(t, func() bool { return strings.Contains(b.log.String(), "delaying start by 1h0m0s") },
		waitFor, 10*time.Millisecond, "log:\n%s", b.log)
	c, err := net.DialTimeout("tcp", b.addr, time.Second)
	if err == nil {
		c.Close()
	}
	assert.Error(t, err, "listening before the start delay is over")

	// A short delay: it listens once the delay is over. The time since
	// before it started is at least the delay, however slow the machine.
	start := time.Now()
	b = startRole(t, "backend", map[string]string{envStartDelay: "300ms"}, false)
	require.Eventually(t, func() bool { return getStatus(b.url("/api/v1/health")) == 200 }, waitFor, 10*time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	assert.Contains(t, b.log.String(), "delaying start by 300ms")
}

func TestStandinExitAfter(t *testing.T) {
	// Not waiting for it to listen: it may exit before a test sees it do so.
	b := startRole(t, "prometheus", map[string]string{envExitAfter: "200ms"}, false)
	select {
	case code := <-b.done:
		close(b.done)
		assert.Equal(t, 3, code)
	case <-time.After(waitFor):
		t.Fatal("did not exit after KTRDR_STANDIN_EXIT_AFTER")
	}
	assert.Contains(t, b.log.String(), "exiting with status 3 after 200ms")
	assert.Equal(t, -1, getStatus(b.url("/-/healthy")), "still listening after exit")
}

func TestStandinGracefulStop(t *testing.T) {
	b := startRole(t, "backend", nil, true)
	b.stop()
	select {
	case code := <-b.done:
		close(b.done)
		assert.Equal(t, 0, code)
	case <-time.After(waitFor):
		t.Fatalf("backend did not stop within %s", waitFor)
	}
}

func TestStandinDBProtocol(t *testing.T) {
	db := startRole(t, "db", nil, true)
	require.NoError(t, gate.ProbePostgres(t.Context(), db.addr, "ktrdr", "ktrdr"))

	// A full startup, then Terminate.
	c, err := net.Dial("tcp", db.addr)
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	startup := []byte("user\x00ktrdr\x00database\x00ktrdr\x00\x00")
	_, err = c.Write(append(append(be32(uint32(8+len(startup))), be32(pgProtocol3)...), startup...))
	require.NoError(t, err)
	var types []byte
	params := map[string]string{}
	for {
		typ, body, err := readMsg(c)
		require.NoError(t, err)
		types = append(types, typ)
		if typ == 'S' {
			kv := strings.Split(string(body), "\x00")
			params[kv[0]] = kv[1]
		}
		if typ == 'Z' {
			break
		}
	}
	assert.Equal(t, byte('R'), types[0])
	assert.Contains(t, string(types), "K")
	assert.Equal(t, "UTF8", params["server_encoding"])
	require.NoError(t, writeMsg(c, 'X', nil))
	_, _, err = readMsg(c)
	assert.ErrorIs(t, err, io.EOF, "Terminate closes the connection")

	starting := startRole(t, "db", map[string]string{envDBStarting: "1h"}, true)
	var se *gate.PostgresStartingError
	require.ErrorAs(t, gate.ProbePostgres(t.Context(), starting.addr, "ktrdr", "ktrdr"), &se)
	assert.Equal(t, "the database system is starting up", se.Message)
	assert.Contains(t, starting.log.String(), "refused: the database system is starting up")
}

func standinTool(t *testing.T, argv0 string, args ...string) (int, string, string) {
	t.Helper()
	return runWith(t, nil, append([]string{argv0}, args...)...)
}

// runWith runs the stand-in with argv and the environment env, and returns
// its exit status and output.
func runWith(t *testing.T, env map[string]string, argv ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), argv, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

// helloServer answers "hello" on every path but /bad, which is a 503.
func helloServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			http.Error(w, "nope", 503)
			return
		}
		fmt.Fprint(w, "hello")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestStandinCurlMode(t *testing.T) {
	srv := helloServer(t)
	closed := fmt.Sprintf("http://127.0.0.1:%d/", freePort(t))

	code, out, _ := standinTool(t, "/usr/bin/curl", "-fsS", srv.URL+"/ok")
	assert.Equal(t, 0, code)
	assert.Equal(t, "hello", out)

	code, _, errOut := standinTool(t, "/usr/bin/curl", "-fsS", srv.URL+"/bad")
	assert.Equal(t, 22, code)
	assert.Contains(t, errOut, "503")
	code, _, _ = standinTool(t, "curl", "-f", srv.URL+"/bad")
	assert.Equal(t, 22, code)
	code, _, _ = standinTool(t, "curl", "--fail", "--silent", "-o", "/dev/null", srv.URL+"/bad")
	assert.Equal(t, 22, code)
	code, _, _ = standinTool(t, "curl", "-s", srv.URL+"/bad")
	assert.Equal(t, 0, code, "like curl, an HTTP error without -f is success")

	code, _, errOut = standinTool(t, "curl", "-fsS", closed)
	assert.Equal(t, 7, code)
	assert.Contains(t, errOut, "curl: (7)")
	code, _, errOut = standinTool(t, "curl", "-fs", closed)
	assert.Equal(t, 7, code)
	assert.Empty(t, errOut, "-s without -S is silent")

	code, _, _ = standinTool(t, "standin", "curl", "-fsS", srv.URL+"/ok")
	assert.Equal(t, 0, code, "also a subcommand")
}

func TestStandinWgetMode(t *testing.T) {
	srv := helloServer(t)

	code, out, _ := standinTool(t, "/usr/bin/wget", "-q", "--spider", srv.URL+"/ok")
	assert.Equal(t, 0, code)
	assert.Empty(t, out)
	code, out, _ = standinTool(t, "wget", "-qO-", srv.URL+"/ok")
	assert.Equal(t, 0, code)
	assert.Equal(t, "hello", out)
	code, out, _ = standinTool(t, "wget", "-q", "-O", "-", srv.URL+"/ok")
	assert.Equal(t, 0, code)
	assert.Equal(t, "hello", out)
	code, _, _ = standinTool(t, "wget", "-q", "--spider", srv.URL+"/bad")
	assert.Equal(t, 1, code)
	code, _, _ = standinTool(t, "wget", "-q", "--spider", "-T", "2", fmt.Sprintf("http://127.0.0.1:%d/", freePort(t)))
	assert.Equal(t, 1, code)
}

func TestStandinPgIsReadyMode(t *testing.T) {
	db := startRole(t, "db", nil, true)
	starting := startRole(t, "db", map[string]string{envDBStarting: "1h"}, true)
	host, port, _ := net.SplitHostPort(db.addr)
	_, sport, _ := net.SplitHostPort(starting.addr)

	code, out, _ := standinTool(t, "/usr/bin/pg_isready", "-h", host, "-p", port, "-U", "ktrdr", "-d", "ktrdr", "-t", "2")
	assert.Equal(t, 0, code)
	assert.Equal(t, host+":"+port+" - accepting connections\n", out)

	code, out, _ = standinTool(t, "pg_isready", "-h", host, "-p", sport, "-U", "ktrdr")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "rejecting connections")

	code, out, _ = standinTool(t, "pg_isready", "-q", "-h", host, "-p", strconv.Itoa(freePort(t)), "-t", "1")
	assert.Equal(t, 2, code)
	assert.Empty(t, out, "-q prints nothing")

	code, _, _ = standinTool(t, "pg_isready", "--host="+host, "--port="+port, "--username=ktrdr")
	assert.Equal(t, 0, code)
	code, _, _ = standinTool(t, "pg_isready", "-x")
	assert.Equal(t, 3, code)
}

func TestStandinFSAndVersion(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "f.txt")
	code, _, _ := standinTool(t, "standin", "fs", "write", p, "marker-1")
	require.Equal(t, 0, code)
	code, out, _ := standinTool(t, "standin", "fs", "read", p)
	assert.Equal(t, 0, code)
	assert.Equal(t, "marker-1", out)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "d"), 0o755))
	code, out, _ = standinTool(t, "standin", "fs", "ls", dir)
	assert.Equal(t, 0, code)
	assert.Equal(t, "d/\nsub/\n", out)
	code, _, errOut := standinTool(t, "standin", "fs", "read", filepath.Join(dir, "missing"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "missing")

	code, out, _ = standinTool(t, "standin", "version")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(out, "standin "), out)
}

func TestStandinBadConfig(t *testing.T) {
	code, _, errOut := standinTool(t, "standin", "nosuchrole")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "unknown role")
	var out, errb bytes.Buffer
	code = run(t.Context(), []string{"standin", "backend"}, func(k string) string {
		return map[string]string{envStartDelay: "soon"}[k]
	}, &out, &errb)
	assert.Equal(t, 2, code)
	assert.Contains(t, errb.String(), envStartDelay)
}

// TestStandinDBAgainstRealPgIsReady checks the db role with the real
// pg_isready client, when it is installed (package postgresql-client).
func TestStandinDBAgainstRealPgIsReady(t *testing.T) {
	bin, err := exec.LookPath("pg_isready")
	if err != nil {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_isready")
		if len(matches) == 0 {
			if os.Getenv("CI") != "" {
				t.Fatal("pg_isready not installed in CI")
			}
			t.Skip("pg_isready not installed")
		}
		bin = matches[len(matches)-1]
	}
	db := startRole(t, "db", nil, true)
	starting := startRole(t, "db", map[string]string{envDBStarting: "1h"}, true)
	for _, tc := range []struct {
		addr string
		want int
	}{
		{db.addr, 0},
		{starting.addr, 1},
		{fmt.Sprintf("127.0.0.1:%d", freePort(t)), 2},
	} {
		host, port, _ := net.SplitHostPort(tc.addr)
		cmd := exec.CommandContext(t.Context(), bin, "-h", host, "-p", port, "-U", "ktrdr", "-d", "ktrdr", "-t", "3")
		out, _ := cmd.CombinedOutput()
		assert.Equal(t, tc.want, cmd.ProcessState.ExitCode(), "real pg_isready against %s: %s", tc.addr, out)
	}
}

func TestStandinIgnoresRealImageCommand(t *testing.T) {
	port := freePort(t)
	env := map[string]string{envRole: "worker", envListenHost: "127.0.0.1", "WORKER_PORT": strconv.Itoa(port), envNoRegister: "1"}
	ctx, cancel := context.WithCancel(t.Context())
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"/standin", "uvicorn", "ktrdr.backtesting.backtest_worker:app", "--port", "5003"},
			func(k string) string { return env[k] }, &out, &out)
	}()
	require.Eventually(t, func() bool { return getStatus(fmt.Sprintf("http://127.0.0.1:%d/health", port)) == 200 },
		waitFor, 10*time.Millisecond, "log:\n%s", &out)
	cancel()
	assert.Equal(t, 0, <-done)
	assert.Contains(t, out.String(), "ignoring command")
}

// A restarted backend forgets its workers; they notice and register again.
func TestStandinWorkerReregistersAfterBackendRestart(t *testing.T) {
	apiPort := freePort(t)
	b := startRole(t, "backend", map[string]string{envPort: strconv.Itoa(apiPort)}, true)
	w := startRole(t, "worker", map[string]string{
		"WORKER_ID": "training-worker-1", "WORKER_TYPE": "training", "WORKER_ENDPOINT_URL": "http://127.0.0.1:1",
		"KTRDR_API_URL":    fmt.Sprintf("http://127.0.0.1:%d", apiPort),
		envRegisterBackoff: "20ms", envRecheckInterval: "30ms",
	}, true)
	listed := func(r *role) func() bool {
		return func() bool {
			var workers []map[string]any
			getJSON(t, r.url("/api/v1/workers"), &workers)
			return len(workers) == 1
		}
	}
	require.Eventually(t, listed(b), waitFor, 20*time.Millisecond, "worker log:\n%s", w.log)

	b.stop()
	require.Equal(t, 0, <-b.done)
	close(b.done)
	b2 := startRole(t, "backend", map[string]string{envPort: strconv.Itoa(apiPort)}, true)
	require.Eventually(t, listed(b2), waitFor, 20*time.Millisecond, "never re-registered; worker log:\n%s", w.log)
	assert.Contains(t, w.log.String(), "no longer lists training-worker-1")
}
