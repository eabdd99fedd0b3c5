package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withShape replaces the project's sandbox compose file with a fixture of
// testdata/<shape> and commits it: the suite must read the stack from it.
func (e *env) withShape(t testing.TB, shape string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "e2e", "testdata", shape, "docker-compose.sandbox.yml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(e.Main, "docker-compose.sandbox.yml"), data, 0o644))
	e.git(e.Main, "commit", "-q", "-am", "stack of shape "+shape)
}

// upJSON runs sandbox:up -json in dir and decodes the gate's checks.
type upOut struct {
	Gate *struct {
		Passed bool `json:"passed"`
		Checks []struct {
			Name   string `json:"name"`
			Passed bool   `json:"passed"`
		} `json:"checks"`
	} `json:"gate"`
}

func gateChecks(t *testing.T, r result) []string {
	t.Helper()
	var u upOut
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &u), r.String())
	require.NotNil(t, u.Gate, r.String())
	var names []string
	for _, c := range u.Gate.Checks {
		assert.True(t, c.Passed, c.Name)
		names = append(names, c.Name)
	}
	assert.True(t, u.Gate.Passed, r.String())
	return names
}

// A stack shaped like the application before its observability left: literal
// images with build sections, 30 s healthchecks behind service_healthy chains,
// a CMD-SHELL database check. Stand-in mode runs every service of it.
func TestJanuaryShapeRunsWithStandins(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	e.withShape(t, "january")
	name := namePrefix + "jan"
	e.must(e.Main, "sandbox:create", name, "-standin")
	dir := e.sandboxDir(name)
	r := e.sbx(dir, "sandbox:up", "-json")
	upReturned := time.Now()
	require.Equal(t, 0, r.Code, r.String())
	assert.Equal(t, []string{"Database ready", "Backend healthy", "Workers registered", "Observability ready"}, gateChecks(t, r))

	// The stack keeps the file's healthchecks (30 s), and once up has
	// returned nothing execs into it: the engine's own first check comes
	// 30 s after a container started, the suite's probes have stopped.
	project := "ktrdr--" + name
	for svc, want := range map[string]string{"db": "30s 5 30s", "backend": "30s 3 30s", "jaeger": "30s 3 0s", "backtest-worker-1": "30s 3 30s"} {
		out, err := exec.Command("docker", "inspect", "--format", "{{.Config.Healthcheck.Interval}} {{.Config.Healthcheck.Retries}} {{.Config.Healthcheck.StartPeriod}}", containerOf(t, project, svc)).Output()
		require.NoError(t, err)
		assert.Equal(t, want, strings.TrimSpace(string(out)), "%s: the file's interval, retries and start period", svc)
	}
	since := upReturned.Add(100 * time.Millisecond)
	time.Sleep(4 * time.Second)
	events, err := exec.Command("docker", "events", "--since", fmt.Sprintf("%d.%03d", since.Unix(), since.Nanosecond()/1e6),
		"--until", strconv.FormatInt(time.Now().Unix(), 10), "--filter", "type=container", "--filter", "event=exec_create",
		"--filter", "label=com.docker.compose.project="+project, "--format", "{{.Actor.Attributes.name}} {{.Action}}").Output()
	require.NoError(t, err)
	assert.Empty(t, strings.TrimSpace(string(events)), "no exec into the stack after up returned")

	st := e.must(dir, "sandbox:status", "-json")
	var s struct {
		State    string `json:"state"`
		Services []struct {
			Service string `json:"service"`
			State   string `json:"state"`
		} `json:"services"`
	}
	require.NoError(t, json.Unmarshal([]byte(st.Stdout), &s))
	assert.Len(t, s.Services, 9)
	assert.Equal(t, "running", s.State)

	l := e.must(e.Main, "sandbox:list", "-json")
	assert.Contains(t, l.Stdout, `"ktrdr--`+name+`"`)

	// Nothing of the checkout was edited: the suite's additions live in its state folder.
	assert.Empty(t, e.git(dir, "status", "--porcelain"))
	override := filepath.Join(e.Home, ".ktrdr", "sandbox", "instances", "ktrdr--"+name, "compose.override.json")
	assert.FileExists(t, override)

	e.must(dir, "sandbox:destroy", "-force")
	c, v, n := projectResources("ktrdr--" + name)
	assert.Zero(t, c+v+n)
}

// A stack shaped like the application later: external network and volume,
// agents on port variables the suite does not document, no observability.
func TestAprilShapeNamesExternalsThenRunsTwoSandboxes(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	e.withShape(t, "april")
	const network, volume = "sbx-e2e-observability", "sbx-e2e-agent-auth"
	removeExternals := func() {
		exec.Command("docker", "network", "rm", network).Run()
		exec.Command("docker", "volume", "rm", volume).Run()
	}
	removeExternals()
	t.Cleanup(removeExternals)

	a, b := namePrefix+"apr1", namePrefix+"apr2"
	e.must(e.Main, "sandbox:create", a, "-standin")
	e.must(e.Main, "sandbox:create", b, "-standin")

	r := e.sbx(e.sandboxDir(a), "sandbox:up")
	assert.Equal(t, 4, r.Code, r.String())
	assert.Contains(t, r.Stderr, "docker network create "+network)
	assert.Contains(t, r.Stderr, "docker volume create "+volume)
	c, _, _ := projectResources("ktrdr--" + a)
	assert.Zero(t, c, "nothing was started")

	require.NoError(t, exec.Command("docker", "network", "create", network).Run())
	require.NoError(t, exec.Command("docker", "volume", "create", volume).Run())
	t.Cleanup(func() {
		removeProject("ktrdr--" + a)
		removeProject("ktrdr--" + b)
	})
	for _, n := range []string{a, b} {
		r := e.sbx(e.sandboxDir(n), "sandbox:up", "-json")
		require.Equal(t, 0, r.Code, r.String())
		assert.Equal(t, []string{"Database ready", "Backend healthy", "Workers registered"}, gateChecks(t, r))
	}
	// Six registered workers (four workers, two agents) in each, none from the other.
	for _, n := range []string{a, b} {
		out := e.must(e.sandboxDir(n), "sandbox:url").Stdout
		resp, err := http.Get(strings.TrimSpace(out) + "/api/v1/workers")
		require.NoError(t, err)
		var workers []struct {
			EndpointURL string `json:"endpoint_url"`
			WorkerType  string `json:"worker_type"`
		}
		err = json.NewDecoder(resp.Body).Decode(&workers)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Len(t, workers, 6)
		for _, w := range workers {
			assert.Contains(t, w.EndpointURL, "ktrdr--"+n+"-", "a worker of this sandbox")
		}
	}

	// No port is shared: not between the two, not with the main stack's.
	ports := map[int]string{}
	for _, n := range []string{a, b} {
		data, err := os.ReadFile(filepath.Join(e.sandboxDir(n), ".env.sandbox"))
		require.NoError(t, err)
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok || !strings.HasSuffix(k, "_PORT") {
				continue
			}
			port, err := strconv.Atoi(strings.Trim(v, `"`))
			require.NoError(t, err, line)
			assert.NotContains(t, []int{8000, 5432, 5003, 5004, 5005, 5006, 5010, 5020, 8100}, port, "%s of %s is a main-stack port", k, n)
			if other, dup := ports[port]; dup {
				t.Errorf("port %d is %s and %s of %s", port, other, k, n)
			}
			ports[port] = k + " of " + n
		}
	}
	plan := e.must(e.sandboxDir(a), "sandbox:ports", "-slot=1")
	assert.Contains(t, plan.Stdout, "KTRDR_DESIGN_AGENT_PORT")
	assert.Contains(t, plan.Stdout, "(chosen)")

	for _, n := range []string{a, b} {
		e.must(e.sandboxDir(n), "sandbox:destroy", "-force")
		c, v, nw := projectResources("ktrdr--" + n)
		assert.Zero(t, c+v+nw)
	}
	assert.NoError(t, exec.Command("docker", "network", "inspect", network).Run(), "the external network is not the sandbox's to remove")
}
