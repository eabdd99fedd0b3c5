package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Milestone 1 and 2: two sandboxes from two worktrees run side by side, each
// on its own ports with its own database volume; stopping one leaves the other.
func TestTwoSandboxesSideBySide(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	a, b := namePrefix+"side-a", namePrefix+"side-b"
	e.must(e.Main, "sandbox:create", a, "-standin")
	e.must(e.Main, "sandbox:create", b, "-standin")
	dirA, dirB := e.sandboxDir(a), e.sandboxDir(b)

	upA := e.must(dirA, "sandbox:up")
	assert.Contains(t, upA.Stdout, "Startability Gate: PASSED")
	assert.Contains(t, upA.Stdout, "http://localhost:8001/api/v1")
	e.must(dirB, "sandbox:up")

	for port, dir := range map[int]string{8001: dirA, 8002: dirB} {
		code, body := get(fmt.Sprintf("http://localhost:%d/api/v1/health", port))
		assert.Equal(t, 200, code, "health on %d (%s): %s", port, dir, body)
		code, body = get(fmt.Sprintf("http://localhost:%d/api/v1/workers", port))
		require.Equal(t, 200, code)
		var workers []map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &workers))
		assert.Len(t, workers, 4, "4 workers registered on %d", port)
	}

	// Data in one stack's database volume is not visible in the other's.
	dbA, dbB := containerOf(t, "ktrdr--"+a, "db"), containerOf(t, "ktrdr--"+b, "db")
	_, err := standinFS(dbA, "write", "/var/lib/postgresql/data/marker", "only-in-a")
	require.NoError(t, err)
	got, err := standinFS(dbA, "read", "/var/lib/postgresql/data/marker")
	require.NoError(t, err)
	assert.Equal(t, "only-in-a", got)
	_, err = standinFS(dbB, "read", "/var/lib/postgresql/data/marker")
	assert.Error(t, err, "b's volume must not have a's file")

	// up on a running sandbox is a no-op that says so, not a port conflict.
	again := e.must(dirA, "sandbox:up")
	assert.Contains(t, again.Stdout, "already running")
	assert.Contains(t, again.Stdout, "Startability Gate: PASSED")

	// down of one leaves the other running; its data survives a down.
	e.must(dirA, "sandbox:down")
	code, _ := get("http://localhost:8001/api/v1/health")
	assert.Equal(t, 0, code, "a is down")
	code, _ = get("http://localhost:8002/api/v1/health")
	assert.Equal(t, 200, code, "b still answers")
	_, vols, _ := projectResources("ktrdr--" + a)
	assert.Equal(t, 3, vols, "down keeps a's volumes")

	list := e.must(e.Main, "sandbox:list", "-json")
	var listing struct {
		Instances []struct {
			ID, State string
			Slot      int
		}
	}
	require.NoError(t, json.Unmarshal([]byte(list.Stdout), &listing))
	states := map[string]string{}
	for _, in := range listing.Instances {
		states[in.ID] = in.State
	}
	assert.Equal(t, map[string]string{"ktrdr--" + a: "stopped", "ktrdr--" + b: "running"}, states)

	e.must(dirA, "sandbox:destroy")
	e.must(dirB, "sandbox:destroy")
	for _, name := range []string{a, b} {
		c, v, n := projectResources("ktrdr--" + name)
		assert.Zero(t, c+v+n, "nothing of %s is left: %d containers, %d volumes, %d networks", name, c, v, n)
		assert.NoDirExists(t, e.sandboxDir(name))
	}
}

// The merged main compose file with no sandbox variables is the main stack on
// the standard ports, with ./data mounted.
func TestMainStackOnStandardPorts(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	// Build the stand-in image through the target a person would use.
	e.must(e.Main, "stack:images")
	images := filepath.Join(t.TempDir(), "images.env")
	content := ""
	for _, k := range []string{"KTRDR_DB_IMAGE", "KTRDR_BACKEND_IMAGE", "KTRDR_JAEGER_IMAGE", "KTRDR_PROMETHEUS_IMAGE", "KTRDR_GRAFANA_IMAGE"} {
		content += k + "=ktrdr-standin:dev\n"
	}
	require.NoError(t, os.WriteFile(images, []byte(content), 0o644))
	compose := []string{"compose", "-p", "ktrdr-e2e-main", "--env-file", images, "-f", filepath.Join(e.Main, "docker-compose.yml")}
	env := e.Env[:0:0]
	for _, kv := range e.Env { // the plain docker compose of a person, without the hostile exports
		if !(len(kv) > 6 && (kv[:6] == "KTRDR_" || kv[:8] == "COMPOSE_")) {
			env = append(env, kv)
		}
	}
	e.Env = env
	up := e.run(e.Main, "docker", append(compose, "up", "-d", "--wait")...)
	require.Equal(t, 0, up.Code, up.String())
	t.Cleanup(func() { removeProject("ktrdr-e2e-main") })

	for url, want := range map[string]int{
		"http://localhost:8000/api/v1/health": 200, "http://localhost:5003/health": 200, "http://localhost:5006/health": 200,
		"http://localhost:3000/api/health": 200, "http://localhost:9090/-/healthy": 200, "http://localhost:16686/": 200,
	} {
		code, body := get(url)
		assert.Equal(t, want, code, "%s: %s", url, body)
	}
	// Without KTRDR_DATA_DIR the backend's /app/data is the checkout's ./data.
	_, err := standinFS(containerOf(t, "ktrdr-e2e-main", "backend"), "write", "/app/data/from-main.txt", "hello")
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(e.Main, "data", "from-main.txt"))
	require.NoError(t, err)
	assert.Equal(t, "hello", string(data))

	down := e.run(e.Main, "docker", append(compose, "down", "--volumes")...)
	require.Equal(t, 0, down.Code, down.String())
}
