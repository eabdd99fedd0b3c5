package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Sandboxes on another machine's Docker engine, reached through a tcp and
// an ssh Docker context: the engine runs in a network namespace of the
// test's own (see remote_engine_test.go) and starts without the stand-in
// image, so up must load it.
func TestSandboxesOnARemoteEngine(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	re := startRemoteEngine(t, remoteEngineOptions{SSH: true, Env: e.Env})
	e.Env = re.Env(e.Env)
	host := re.Host()

	// A context that does not exist, and one whose engine does not answer, are refused at create.
	r := e.sbx(e.Main, "sandbox:create", namePrefix+"nope", "-context=no-such-context")
	assert.Equal(t, 1, r.Code, r.String())
	assert.Contains(t, r.Stderr, "docker context create")
	runWithEnv(e.Env, 30*time.Second, nil, "docker", "context", "create", "e2e-dead", "--docker", "host=tcp://"+host+":2999")
	r = e.sbx(e.Main, "sandbox:create", namePrefix+"nope", "-context=e2e-dead")
	assert.Equal(t, 1, r.Code, r.String())
	assert.Contains(t, r.Stderr, "does not answer")
	assert.NoDirExists(t, e.sandboxDir(namePrefix+"nope"))

	for _, tc := range []struct{ kind, context string }{{"tcp", re.Context()}, {"ssh", re.SSHContext()}} {
		t.Run(tc.kind, func(t *testing.T) {
			name := namePrefix + "r" + tc.kind
			id := "ktrdr--" + name
			c := e.must(e.Main, "sandbox:create", name, "-standin", "-context="+tc.context, "-json")
			var created struct {
				Engine string `json:"engine"`
				Host   string `json:"host"`
			}
			require.NoError(t, json.Unmarshal([]byte(c.Stdout), &created))
			assert.Equal(t, tc.context, created.Engine)
			assert.Equal(t, host, created.Host)
			dir := e.sandboxDir(name)
			// A file of the checkout's data folder reaches the remote stack through its volume.
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "data"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "eurusd.csv"), []byte("1,2,3\n"), 0o644))

			up := e.sbx(dir, "sandbox:up", "-json")
			require.Equal(t, 0, up.Code, up.String())
			var u struct {
				Gate *struct {
					Passed bool `json:"passed"`
				} `json:"gate"`
				URLs []struct {
					Label string `json:"label"`
					URL   string `json:"url"`
				} `json:"urls"`
			}
			require.NoError(t, json.Unmarshal([]byte(up.Stdout), &u))
			require.NotNil(t, u.Gate)
			assert.True(t, u.Gate.Passed, "the gate passes probing %s", host)
			for _, url := range u.URLs {
				assert.Contains(t, url.URL, host+":", url.Label)
			}

			st := e.must(dir, "sandbox:status")
			assert.Contains(t, st.Stdout, "http://"+host+":")
			assert.Contains(t, st.Stdout, "engine "+tc.context)
			assert.Equal(t, "http://"+host+":"+portOf(t, dir, "KTRDR_API_PORT")+"\n", e.must(dir, "sandbox:url").Stdout)

			// Nothing of it runs on the local engine; nothing on the remote one bind-mounts a local path.
			local, _, _ := projectResources(id)
			assert.Zero(t, local)
			ids := strings.Fields(re.Docker("ps", "-aq", "--filter", "label=com.docker.compose.project="+id).Stdout)
			assert.Len(t, ids, 9)
			out := re.Docker(append([]string{"inspect", "--format", "{{range .Mounts}}{{.Type}} {{.Source}};{{end}}"}, ids...)...)
			assert.NotContains(t, out.Stdout, "bind", "no bind mounts on the remote engine")
			backend := strings.TrimSpace(re.Docker("ps", "-q", "--filter", "label=com.docker.compose.project="+id, "--filter", "label=com.docker.compose.service=backend").Stdout)
			data := re.Docker("exec", backend, "/standin", "fs", "read", "/app/data/eurusd.csv")
			assert.Equal(t, "1,2,3\n", data.Stdout, data.String())

			// sandbox:sync pushes again; what only the volume holds stays,
			// unless -mirror.
			require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "gbpusd.csv"), []byte("4\n"), 0o644))
			require.NoError(t, os.Remove(filepath.Join(dir, "data", "eurusd.csv")))
			e.must(dir, "sandbox:sync")
			ls := re.Docker("exec", backend, "/standin", "fs", "ls", "/app/data")
			assert.Equal(t, "eurusd.csv\ngbpusd.csv\n", ls.Stdout, ls.String())
			e.must(dir, "sandbox:sync", "-mirror")
			ls = re.Docker("exec", backend, "/standin", "fs", "ls", "/app/data")
			assert.Equal(t, "gbpusd.csv\n", ls.Stdout, ls.String())

			l := e.must(e.Main, "sandbox:list")
			assert.Contains(t, l.Stdout, tc.context)
			var lj struct {
				Instances []struct {
					ID, State, Engine string
				} `json:"instances"`
			}
			require.NoError(t, json.Unmarshal([]byte(e.must(e.Main, "sandbox:list", "-json").Stdout), &lj))
			for _, in := range lj.Instances {
				if in.ID == id {
					assert.Equal(t, tc.context, in.Engine)
					assert.Equal(t, "running", in.State)
				}
			}

			e.must(dir, "sandbox:destroy", "-force")
			assert.Empty(t, strings.TrimSpace(re.Docker("ps", "-aq", "--filter", "label=com.docker.compose.project="+id).Stdout))
			assert.Empty(t, strings.TrimSpace(re.Docker("volume", "ls", "-q", "--filter", "name="+id).Stdout), "no volume left on the remote")
			assert.Empty(t, strings.TrimSpace(re.Docker("network", "ls", "-q", "--filter", "name="+id).Stdout))
		})
	}

	// An engine that stops answering leaves its sandboxes unknown; the list goes on.
	name := namePrefix + "rgone"
	e.must(e.Main, "sandbox:create", name, "-standin", "-context="+re.Context())
	_, err := runWithEnv(e.Env, 30*time.Second, nil, "docker", "context", "update", re.Context(), "--docker", "host=tcp://"+host+":2999")
	require.NoError(t, err)
	l := e.sbx(e.Main, "sandbox:list", "-json")
	require.Equal(t, 0, l.Code, l.String())
	assert.Contains(t, l.Stdout, `"state": "unknown"`)
	assert.Contains(t, l.Stdout, `"engine_errors"`)
	_, err = runWithEnv(e.Env, 30*time.Second, nil, "docker", "context", "update", re.Context(), "--docker", "host="+re.TCPEndpoint())
	require.NoError(t, err)
	e.must(e.Main, "sandbox:destroy", "-name="+name)
}

// portOf reads one port of a sandbox's env file.
func portOf(t *testing.T, dir, key string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ".env.sandbox"))
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	t.Fatalf("%s not in %s/.env.sandbox", key, dir)
	return ""
}
