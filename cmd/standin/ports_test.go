package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStandinPortsConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		role  string
		env   map[string]string
		port  int
		extra []int
		err   string
	}{
		{name: "http default", role: "http", port: 8080},
		{name: "http takes the first of its ports", role: "http", env: map[string]string{envPorts: "3100, 3101,,3100/tcp"}, port: 3100, extra: []int{3101}},
		{name: "http with a main port override", role: "http", env: map[string]string{envPorts: "3100", envPort: "9999"}, port: 9999, extra: []int{3100}},
		{name: "backend extra ports", role: "backend", env: map[string]string{envPorts: "8000,8001 , 9000"}, port: 8000, extra: []int{8001, 9000}},
		{name: "worker main port from WORKER_PORT is not doubled", role: "worker", env: map[string]string{"WORKER_PORT": "5005", envPorts: "5005,5006"}, port: 5005, extra: []int{5006}},
		{name: "jaeger OTLP ports are not doubled", role: "jaeger", env: map[string]string{envPorts: "16686,4317,4318,14268"}, port: 16686, extra: []int{14268}},
		{name: "db", role: "db", env: map[string]string{envPorts: "5432"}, port: 5432},
		{name: "not a number", role: "http", env: map[string]string{envPorts: "80,http"}, err: `"http" is not a TCP port`},
		{name: "out of range", role: "grafana", env: map[string]string{envPorts: "70000"}, err: envPorts},
		{name: "zero", role: "grafana", env: map[string]string{envPorts: "0"}, err: envPorts},
		{name: "udp", role: "grafana", env: map[string]string{envPorts: "53/udp"}, err: envPorts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(tc.role, func(k string) string { return tc.env[k] })
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.port, cfg.port)
			assert.Equal(t, tc.extra, cfg.extraPorts)
		})
	}
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// Every role, and the http role, answer the generic 200 on every extra
// port and any path; each role's main port keeps its own behaviour.
func TestStandinExtraPorts(t *testing.T) {
	for _, tc := range []struct {
		role     string
		mainPath string // answered 404 on the main port, unless the http role
	}{
		{"backend", "/nope"}, {"worker", "/nope"}, {"jaeger", "/nope"},
		{"prometheus", "/nope"}, {"grafana", "/nope"}, {"db", ""}, {"http", "/anything"},
	} {
		t.Run(tc.role, func(t *testing.T) {
			p1, p2 := freePort(t), freePort(t)
			env := map[string]string{envNoRegister: "1", envPorts: fmt.Sprintf("%d,%d", p1, p2),
				envOTLPGRPCPort: strconv.Itoa(freePort(t)), envOTLPHTTPPort: strconv.Itoa(freePort(t))}
			r := startRole(t, tc.role, env, true) // the main port listens last
			for _, p := range []int{p1, p2} {
				for _, path := range []string{"/health", "/", "/api/v1/health", "/x/y?z=1"} {
					code, body := getBody(t, fmt.Sprintf("http://127.0.0.1:%d%s", p, path))
					assert.Equal(t, 200, code, "port %d path %s", p, path)
					assert.Contains(t, body, `"status":"ok"`)
					assert.Contains(t, body, `"service":"`+tc.role+`"`)
				}
				resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/anything", p), "application/json", strings.NewReader("{}"))
				require.NoError(t, err)
				resp.Body.Close()
				assert.Equal(t, 200, resp.StatusCode, "any method")
			}
			switch tc.role {
			case "db":
				assert.Contains(t, r.log.String(), "listening on")
			case "http":
				code, body := getBody(t, r.url(tc.mainPath))
				assert.Equal(t, 200, code)
				assert.Contains(t, body, `"path":"/anything"`)
			default:
				assert.Equal(t, 404, getStatus(r.url(tc.mainPath)), "the main port is unchanged")
			}
		})
	}
}

func TestStandinExtraPortsHonourHealthKnobs(t *testing.T) {
	p := freePort(t)
	startRole(t, "http", map[string]string{envPorts: strconv.Itoa(p), envFailHealth: "1"}, true)
	code, body := getBody(t, fmt.Sprintf("http://127.0.0.1:%d/health", p))
	assert.Equal(t, 503, code)
	assert.Contains(t, body, envFailHealth)
}

// A port already taken fails the role at once, naming the port.
func TestStandinExtraPortBusy(t *testing.T) {
	busy := startRole(t, "http", nil, true)
	_, busyPort, _ := strings.Cut(busy.addr, ":")
	env := map[string]string{envListenHost: "127.0.0.1", envPort: strconv.Itoa(freePort(t)), envPorts: busyPort}
	var out syncBuffer
	code := run(t.Context(), []string{"standin", "grafana"}, func(k string) string { return env[k] }, &out, &out)
	assert.Equal(t, 1, code)
	assert.Contains(t, out.String(), busy.addr)
}
