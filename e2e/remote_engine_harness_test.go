package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const standinImage = "ktrdr-standin:dev"

// The second engine answers through both contexts of a temporary HOME, is
// not the system engine, runs a container whose published port the host
// reaches at the remote's address, and leaves nothing behind.
func TestRemoteEngineHarness(t *testing.T) {
	needDocker(t)
	needRemoteEngine(t, true)
	home := t.TempDir()
	base := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "NO_COLOR=1"}
	systemID := strings.TrimSpace(mustOutput(t, nil, "docker", "info", "--format", "{{.ID}}"))
	systemContexts := mustOutput(t, nil, "docker", "context", "ls", "--format", "{{.Name}}")
	sweepRemotes(t)
	tracesBefore := remoteTraces()
	runSSHDBefore := exists("/run/sshd")

	var name string
	var setup, teardown time.Duration
	var re *remoteEngine
	t.Run("engine", func(t *testing.T) {
		re = startRemoteEngine(t, remoteEngineOptions{SSH: true, Env: base})
		name = re.Name
		env := re.Env(base)
		assert.Equal(t, fmt.Sprintf("10.251.%d.2", re.N), re.Host())

		for _, ctx := range []string{re.Context(), re.SSHContext()} {
			out := mustOutput(t, env, "docker", "--context", ctx, "info", "--format", "{{.ID}}|{{.DockerRootDir}}|{{.CgroupVersion}}")
			id, root, _ := strings.Cut(strings.TrimSpace(out), "|")
			assert.NotEqual(t, systemID, id, "context %s reaches the system engine", ctx)
			assert.True(t, strings.HasPrefix(root, re.DataDir+"|"), "context %s: data-root %q, want %s", ctx, root, re.DataDir)
		}
		ls := mustOutput(t, env, "docker", "context", "ls", "--format", "{{.Name}} {{.DockerEndpoint}}")
		assert.Contains(t, ls, re.Context()+" "+re.TCPEndpoint())
		assert.Contains(t, ls, re.SSHContext()+" "+re.SSHEndpoint())
		assert.Equal(t, systemContexts, mustOutput(t, nil, "docker", "context", "ls", "--format", "{{.Name}}"),
			"the contexts go to the given HOME only")

		t.Run("published port", func(t *testing.T) {
			if err := exec.Command("docker", "image", "inspect", standinImage).Run(); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("CI needs %s (go tool mage stack:images)", standinImage)
				}
				t.Skipf("no %s image; build it with `go tool mage stack:images`", standinImage)
			}
			require.NoError(t, pipeImage(standinImage, env, "--context", re.Context()))
			// Run through the ssh context: the remote CLI talks to the second engine.
			// The port is the remote's own: 8080 on the host is not involved.
			out := mustOutput(t, env, "docker", "--context", re.SSHContext(), "run", "-d", "--name", "e2e-remote-http",
				"-p", "8080:8080", standinImage, "http")
			assert.Empty(t, dockerIDs("ps", "-aq", "--filter", "name=e2e-remote-http"), "the system engine has no such container")
			assert.Contains(t, re.Docker("ps", "-q", "--no-trunc").Stdout, strings.TrimSpace(out))
			url := "http://" + re.Host() + ":8080/health"
			var code int
			var body string
			ok := poll(20*time.Second, func() bool { code, body = get(url); return code == 200 })
			require.True(t, ok, "%s: %d %s", url, code, body)
			assert.Contains(t, body, `"status":"ok"`)
		})
		setup = re.SetupTime
	})
	assert.Equal(t, tracesBefore, remoteTraces(), "engines left after the clean-up")
	require.NotEmpty(t, name, "the engine did not start")
	teardown = re.TeardownTime
	t.Logf("remote engine %s: setup %.2fs, teardown %.2fs", name, setup.Seconds(), teardown.Seconds())
	assert.Empty(t, remoteLeftovers(name, base), "left after the clean-up")
	assert.Equal(t, systemContexts, mustOutput(t, nil, "docker", "context", "ls", "--format", "{{.Name}}"))
	if !runSSHDBefore {
		assert.NoDirExists(t, "/run/sshd", "made for the engine's sshd, and not removed")
	}
	assert.NoFileExists(t, runSSHDMarker)
}

// mustOutput runs a command that has to succeed (env nil: this process's) and returns its output.
func mustOutput(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runWithEnv(env, 2*time.Minute, nil, name, args...)
	require.NoError(t, err, "%s %s: %s", name, strings.Join(args, " "), out)
	t.Logf("$ %s %s\n%s", name, strings.Join(args, " "), out)
	return out
}
