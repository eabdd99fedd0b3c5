package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStandinWorkerIdentityEnv(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		env                    map[string]string
		typ, id, endpoint, api string
		port                   int
		hostDefaults           bool // id and endpoint come from the host name
	}{
		{name: "defaults", env: map[string]string{}, typ: "backtesting", api: "http://backend:8000", port: 5003, hostDefaults: true},
		{name: "January", env: map[string]string{"WORKER_TYPE": "training", "WORKER_ID": "training-worker-1", "WORKER_PORT": "5005",
			"WORKER_ENDPOINT_URL": "http://training-worker-1:5005", "KTRDR_API_URL": "http://backend:8000"},
			typ: "training", id: "training-worker-1", endpoint: "http://training-worker-1:5005", api: "http://backend:8000", port: 5005},
		{name: "April", env: map[string]string{"KTRDR_WORKER_TYPE": "agent_design", "KTRDR_WORKER_ID": "design-agent-1", "KTRDR_WORKER_PORT": "5010",
			"KTRDR_WORKER_PUBLIC_URL": "http://design-agent-1:5010", "KTRDR_API_CLIENT_BASE_URL": "http://backend:8000/api/v1"},
			typ: "agent_design", id: "design-agent-1", endpoint: "http://design-agent-1:5010", api: "http://backend:8000", port: 5010},
		{name: "both: the unprefixed names win", env: map[string]string{"WORKER_TYPE": "backtesting", "KTRDR_WORKER_TYPE": "agent_assessment",
			"WORKER_ID": "w-jan", "KTRDR_WORKER_ID": "w-apr", "WORKER_PORT": "5003", "KTRDR_WORKER_PORT": "5020",
			"WORKER_ENDPOINT_URL": "http://jan:5003", "KTRDR_WORKER_PUBLIC_URL": "http://apr:5020"},
			typ: "backtesting", id: "w-jan", endpoint: "http://jan:5003", api: "http://backend:8000", port: 5003},
		{name: "suite override over April file", env: map[string]string{"KTRDR_WORKER_TYPE": "agent_assessment", "WORKER_ID": "assessment-agent-1",
			"WORKER_PORT": "5020", "WORKER_ENDPOINT_URL": "http://assessment-agent-1:5020", "KTRDR_API_URL": "http://backend:8000",
			"KTRDR_API_CLIENT_BASE_URL": "http://elsewhere:1/api/v1"},
			typ: "agent_assessment", id: "assessment-agent-1", endpoint: "http://assessment-agent-1:5020", api: "http://backend:8000", port: 5020},
		{name: "KTRDR_BACKEND_URL", env: map[string]string{"KTRDR_BACKEND_URL": "http://api:8000/"}, typ: "backtesting", api: "http://api:8000", port: 5003, hostDefaults: true},
		{name: "API URL with /api/v1", env: map[string]string{"KTRDR_API_URL": "http://backend:8000/api/v1/"}, typ: "backtesting", api: "http://backend:8000", port: 5003, hostDefaults: true},
		{name: "old public base URL", env: map[string]string{"WORKER_PUBLIC_BASE_URL": "http://old:5003", "WORKER_ID": "x"},
			typ: "backtesting", id: "x", endpoint: "http://old:5003", api: "http://backend:8000", port: 5003},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig("worker", func(k string) string { return tc.env[k] })
			require.NoError(t, err)
			assert.Equal(t, tc.typ, cfg.workerType)
			assert.Equal(t, tc.api, cfg.apiURL)
			assert.Equal(t, tc.port, cfg.port)
			if tc.hostDefaults {
				assert.NotEmpty(t, cfg.workerID)
				assert.Contains(t, cfg.workerEndpoint, ":5003")
				return
			}
			assert.Equal(t, tc.id, cfg.workerID)
			assert.Equal(t, tc.endpoint, cfg.workerEndpoint)
		})
	}
}

// A worker configured only with April's names registers with its type.
func TestStandinWorkerRegistersWithAprilNames(t *testing.T) {
	b := startRole(t, "backend", nil, true)
	w := startRole(t, "worker", map[string]string{
		"KTRDR_WORKER_TYPE": "agent_design", "KTRDR_WORKER_ID": "design-agent-1",
		"KTRDR_WORKER_PUBLIC_URL":   "http://127.0.0.1:1",
		"KTRDR_API_CLIENT_BASE_URL": "http://" + b.addr + "/api/v1",
	}, true)
	var workers []map[string]any
	require.Eventually(t, func() bool {
		workers = nil
		getJSON(t, b.url("/api/v1/workers"), &workers)
		return len(workers) == 1
	}, waitFor, 20*time.Millisecond, "worker never registered; worker log:\n%s", w.log)
	assert.Equal(t, "design-agent-1", workers[0]["worker_id"])
	assert.Equal(t, "agent_design", workers[0]["worker_type"])
	assert.Equal(t, "http://127.0.0.1:1", workers[0]["endpoint_url"])

	var health map[string]any
	require.Equal(t, 200, getJSON(t, w.url("/health"), &health))
	assert.Equal(t, "agent_design-worker", health["service"])
}
