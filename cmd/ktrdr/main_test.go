package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	healthJSON     = `{"status":"ok","version":"1.4.2","orphan_detector":null}`
	workersJSON    = `[{"worker_id":"backtest-worker-1","worker_type":"backtesting","endpoint_url":"http://backtest-worker-1:5003","status":"available","current_operation_id":null,"capabilities":{},"last_health_check":"2025-01-01T10:00:00Z","last_healthy_at":null,"health_check_failures":0,"metadata":{}},{"worker_id":"training-worker-1","worker_type":"training","endpoint_url":"http://training-worker-1:5005","status":"busy","current_operation_id":"op_42","capabilities":{},"last_health_check":null,"last_healthy_at":null,"health_check_failures":0,"metadata":{}}]`
	operationsJSON = `{"success":true,"data":[{"operation_id":"op_42","operation_type":"training","status":"running","created_at":"2025-01-01T09:00:00Z","progress":{"percentage":37.5}}],"total_count":3}`
)

// fakeAPI is a backend with the real HTTP shapes that counts its requests.
type fakeAPI struct {
	*httptest.Server
	hits atomic.Int64
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{}
	mux := http.NewServeMux()
	answer := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, body)
		}
	}
	mux.HandleFunc("GET /api/v1/health", answer(healthJSON))
	mux.HandleFunc("GET /api/v1/workers", answer(workersJSON))
	mux.HandleFunc("GET /api/v1/operations", answer(operationsJSON))
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) port(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(f.URL)
	require.NoError(t, err)
	return u.Port()
}

// sandboxDir makes a checkout whose .env.sandbox points at port, and returns
// a folder three levels below it.
func sandboxDir(t *testing.T, port string) (deep, envFile string) {
	t.Helper()
	root := t.TempDir()
	envFile = filepath.Join(root, ".env.sandbox")
	require.NoError(t, os.WriteFile(envFile, []byte("INSTANCE_ID=ktrdr--a\nKTRDR_API_PORT="+port+"\n"), 0o644))
	deep = filepath.Join(root, "a", "b", "c")
	require.NoError(t, os.MkdirAll(deep, 0o755))
	return deep, envFile
}

// closedPort returns a port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(l.Addr().String())
	require.NoError(t, l.Close())
	return port
}

func runClient(t *testing.T, cwd string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, cwd, &out, &errb)
	return code, out.String(), errb.String()
}

func TestClientCommands(t *testing.T) {
	api := newFakeAPI(t)
	cwd := t.TempDir()
	tests := []struct {
		name string
		args []string
		want []string // substrings of stdout
	}{
		{"health", []string{"-u", api.URL, "health"}, []string{"status   ok", "version  1.4.2", api.URL}},
		{"workers table", []string{"-u", api.URL, "workers", "list"}, []string{
			"WORKER ID          TYPE         STATUS     ENDPOINT",
			"backtest-worker-1  backtesting  available  http://backtest-worker-1:5003  -",
			"training-worker-1  training     busy       http://training-worker-1:5005  op_42",
		}},
		{"operations table", []string{"-u", api.URL, "operations", "list"}, []string{
			"OPERATION ID  TYPE      STATUS   PROGRESS  CREATED",
			"op_42         training  running  38%       2025-01-01T09:00:00Z",
			"showing 1 of 3 operations",
		}},
		{"workers json (global flag)", []string{"-u", api.URL, "--json", "workers", "list"}, []string{workersJSON + "\n"}},
		{"operations json (after the command)", []string{"-u", api.URL, "operations", "list", "--json"}, []string{operationsJSON + "\n"}},
		{"health json", []string{"--url=" + api.URL, "health", "-json"}, []string{healthJSON + "\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runClient(t, cwd, tt.args...)
			require.Equal(t, 0, code, errOut)
			assert.Empty(t, errOut)
			for _, w := range tt.want {
				assert.Contains(t, out, w)
			}
		})
	}
}

func TestClientFlagForms(t *testing.T) {
	api := newFakeAPI(t)
	port := api.port(t)
	cwd := t.TempDir()
	for _, args := range [][]string{
		{"-p", port, "health"},
		{"--port", port, "health"},
		{"-p=" + port, "health"},
		{"--port=" + port, "health"},
		{"-u", api.URL, "health"},
		{"--url", api.URL, "health"},
		{"-u=" + api.URL, "health"},
		{"-u", api.URL, "-p", closedPort(t), "health"}, // --url beats --port
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			before := api.hits.Load()
			code, _, errOut := runClient(t, cwd, args...)
			require.Equal(t, 0, code, errOut)
			assert.Equal(t, before+1, api.hits.Load())
		})
	}
}

func TestClientFindsEnvFileThreeLevelsUp(t *testing.T) {
	api := newFakeAPI(t)
	deep, _ := sandboxDir(t, api.port(t))
	code, out, errOut := runClient(t, deep, "workers", "list")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "backtest-worker-1")
	assert.Equal(t, int64(1), api.hits.Load())
}

func TestClientIgnoresEnvironment(t *testing.T) {
	sandboxAPI := newFakeAPI(t) // the one .env.sandbox names
	otherAPI := newFakeAPI(t)   // the one an exported variable names
	t.Setenv("KTRDR_API_PORT", otherAPI.port(t))
	t.Setenv("KTRDR_API_URL", otherAPI.URL)
	deep, _ := sandboxDir(t, sandboxAPI.port(t))

	code, _, errOut := runClient(t, deep, "health")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, int64(1), sandboxAPI.hits.Load(), "the file decides")
	assert.Zero(t, otherAPI.hits.Load(), "an exported KTRDR_API_PORT must be ignored")
}

func TestClientNothingAnswers(t *testing.T) {
	port := closedPort(t)
	deep, envFile := sandboxDir(t, port)
	tests := []struct {
		name       string
		args       []string
		wantSource string
	}{
		{"from the env file", []string{"health"}, "KTRDR_API_PORT in " + envFile},
		{"from --port", []string{"-p", port, "workers", "list"}, "the --port flag"},
		{"from --url", []string{"-u", "http://127.0.0.1:" + port, "operations", "list"}, "the --url flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runClient(t, deep, tt.args...)
			assert.Equal(t, 1, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, ":"+port)
			assert.Contains(t, errOut, tt.wantSource)
			assert.Contains(t, errOut, "go tool mage sandbox:up")
			assert.Contains(t, errOut, "sandbox:status")
		})
	}
}

func TestClientAPIErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/operations":
			fmt.Fprint(w, `{"success":false,"error":"database unavailable"}`)
		case "/api/v1/workers":
			fmt.Fprint(w, `{"workers":[]}`) // an object wrapper is not the real shape
		default:
			http.Error(w, "boom", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		cmd  []string
		want string
	}{
		{[]string{"health"}, "500 Internal Server Error: boom"},
		{[]string{"operations", "list"}, "database unavailable"},
		{[]string{"workers", "list"}, "unexpected answer"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.cmd, " "), func(t *testing.T) {
			code, _, errOut := runClient(t, t.TempDir(), append([]string{"-u", srv.URL}, tt.cmd...)...)
			assert.Equal(t, 1, code)
			assert.Contains(t, errOut, tt.want)
			assert.NotContains(t, errOut, "sandbox:up", "the API answered: no hint to start it")
		})
	}
}

func TestClientUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no command", nil, 2, "no command given"},
		{"unknown command", []string{"backtests", "list"}, 2, `unknown command "backtests list"`},
		{"unknown flag", []string{"--verbose", "health"}, 2, "flag provided but not defined: -verbose"},
		{"extra argument", []string{"health", "now"}, 2, "unexpected arguments"},
		{"bad port", []string{"-p", "http", "health"}, 2, "invalid value"},
		{"port out of range", []string{"-p", "70000", "health"}, 1, "out of range"},
		{"help", []string{"-h"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runClient(t, t.TempDir(), tt.args...)
			assert.Equal(t, tt.wantCode, code)
			if tt.wantErr == "" {
				assert.Contains(t, out, "usage: ktrdr")
				return
			}
			assert.Contains(t, errOut, tt.wantErr)
		})
	}
}
