package driver

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStandinImageExists(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		want    bool
		wantErr bool
	}{
		{name: "present", want: true},
		{name: "absent", err: &ExitError{Cmd: "docker image inspect", Code: 1, Stderr: "Error: No such image: ktrdr-standin:dev\n"}},
		{name: "engine down", err: &ExitError{Cmd: "docker image inspect", Code: 1, Stderr: "Cannot connect to the Docker daemon"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeRunner{handle: func(Cmd) ([]byte, error) { return nil, tc.err }}
			got, err := StandinImageExists(t.Context(), f, "ktrdr-standin:dev")
			assert.Equal(t, tc.want, got)
			if tc.wantErr {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "ktrdr-standin:dev")
			} else {
				assert.NoError(t, err)
			}
			require.Len(t, f.calls, 1)
			assert.Equal(t, "docker image inspect --format {{.Id}} ktrdr-standin:dev", f.calls[0].String())
		})
	}
}

func TestStandinImageBuildCommands(t *testing.T) {
	var layer []byte
	f := &fakeRunner{handle: func(c Cmd) ([]byte, error) {
		switch c.Name {
		case "go":
			out := c.Args[len(c.Args)-2]
			return nil, os.WriteFile(out, []byte("fake binary"), 0o755)
		case "docker":
			if c.Stdin == nil {
				return nil, nil // image inspect: the tag names nothing yet
			}
			var err error
			layer, err = io.ReadAll(c.Stdin)
			return nil, err
		}
		return nil, nil
	}}
	var progress bytes.Buffer
	require.NoError(t, BuildStandinImage(t.Context(), f, "/repo", "./cmd/standin", "ktrdr-standin:x", &progress))

	require.Len(t, f.calls, 3)
	build := f.calls[0]
	assert.Equal(t, "/repo", build.Dir)
	assert.Contains(t, build.Env, "CGO_ENABLED=0")
	assert.Equal(t, []string{"build", "-trimpath", "-ldflags=-s -w", "-o"}, build.Args[:4])
	assert.Equal(t, "./cmd/standin", build.Args[len(build.Args)-1])
	assert.Equal(t, "docker image inspect --format {{.Id}} ktrdr-standin:x", f.calls[1].String(), "what the tag named before")
	assert.Equal(t, []string{"import", "--change", `ENTRYPOINT ["/standin"]`, "--change", "LABEL sandbox.standin=1", "-", "ktrdr-standin:x"}, f.calls[2].Args)
	_, err := os.Stat(filepath.Dir(build.Args[4]))
	assert.True(t, os.IsNotExist(err), "the temp build folder is removed")

	entries := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		entries[h.Name] = h
		if h.Name == "standin" {
			b, _ := io.ReadAll(tr)
			assert.Equal(t, "fake binary", string(b))
		}
	}
	require.Contains(t, entries, "standin")
	assert.Equal(t, int64(0o755), entries["standin"].Mode)
	for _, l := range []string{"usr/bin/curl", "usr/bin/wget", "usr/bin/pg_isready", "usr/bin/grep", "usr/bin/cat",
		"usr/bin/sh", "bin/sh", "bin/grep", "bin/cat"} {
		require.Contains(t, entries, l)
		assert.Equal(t, byte(tar.TypeLink), entries[l].Typeflag)
		assert.Equal(t, "standin", entries[l].Linkname)
	}
	require.Contains(t, entries, "bin/")
	assert.Equal(t, byte(tar.TypeDir), entries["bin/"].Typeflag)
	require.Contains(t, entries, "tmp/")
	assert.Equal(t, int64(0o1777), entries["tmp/"].Mode)
	assert.Contains(t, progress.String(), "built ktrdr-standin:x")
}

func TestStandinImageBuildErrorsNameInput(t *testing.T) {
	f := &fakeRunner{handle: func(c Cmd) ([]byte, error) {
		return nil, &ExitError{Cmd: c.String(), Code: 1, Stderr: "no Go files"}
	}}
	err := BuildStandinImage(t.Context(), f, "/repo", "./cmd/nothing", "img:1", nil)
	require.Error(t, err)
	for _, want := range []string{"img:1", "./cmd/nothing", "/repo", "no Go files"} {
		assert.Contains(t, err.Error(), want)
	}
}

// imageEngine is a fake engine for the replaced-image cleanup: one tag,
// one older image with its tags, label and containers.
type imageEngine struct {
	tagID      string // what the tag names ("" none)
	old        string // the older image's id ("" gone)
	oldTags    []string
	oldLabel   string   // its sandbox.standin label
	users      []string // containers made from it
	psErr      error
	rmErr      error
	removed    []string
	importedID string // what the tag names after docker import
}

func (e *imageEngine) run(c Cmd) ([]byte, error) {
	if c.Name == "go" {
		return nil, os.WriteFile(c.Args[len(c.Args)-2], []byte("fake binary"), 0o755)
	}
	notFound := func(what string) error {
		return &ExitError{Cmd: c.String(), Code: 1, Stderr: "Error: No such image: " + what + "\n"}
	}
	args := c.Args
	switch {
	case args[0] == "import":
		_, _ = io.Copy(io.Discard, c.Stdin)
		e.tagID = e.importedID
		return []byte(e.importedID + "\n"), nil
	case args[0] == "image" && args[1] == "inspect" && args[3] == "{{.Id}}":
		if e.tagID == "" {
			return nil, notFound(args[4])
		}
		return []byte(e.tagID + "\n"), nil
	case args[0] == "image" && args[1] == "inspect" && args[3] == "{{json .}}":
		if e.old == "" || args[4] != e.old {
			return nil, notFound(args[4])
		}
		img := map[string]any{"Id": e.old, "RepoTags": e.oldTags, "Config": map[string]any{"Labels": map[string]string{"sandbox.standin": e.oldLabel}}}
		if e.oldLabel == "" {
			img["Config"] = map[string]any{"Labels": nil}
		}
		return json.Marshal(img)
	case args[0] == "ps":
		if e.psErr != nil {
			return nil, e.psErr
		}
		return []byte(strings.Join(e.users, "\n") + "\n"), nil
	case args[0] == "image" && args[1] == "rm":
		if e.rmErr != nil {
			return nil, e.rmErr
		}
		e.removed = append(e.removed, args[2:]...)
		return nil, nil
	}
	return nil, errors.New("fake engine: unexpected " + c.String())
}

func TestRemoveReplacedStandin(t *testing.T) {
	const old, newer = "sha256:0ld0000000000000000000000000000000000000000000000000000000000000", "sha256:new"
	user := "3a4b5c6d7e8f90123456789abcdef0123456789abcdef0123456789abcdef012"
	cases := []struct {
		name        string
		engine      imageEngine
		previous    string
		wantRemoved bool
		wantErr     string
		wantLine    string // on progress
	}{
		{name: "the tag named nothing before", engine: imageEngine{tagID: newer}},
		{name: "the tag still names it", engine: imageEngine{tagID: old, old: old, oldLabel: "1"}, previous: old},
		{name: "unused: removed", engine: imageEngine{tagID: newer, old: old, oldLabel: "1"}, previous: old, wantRemoved: true,
			wantLine: "removed image " + old + ", which ktrdr-standin:dev named before (no container used it)"},
		{name: "already gone", engine: imageEngine{tagID: newer}, previous: old},
		{name: "another tag names it", engine: imageEngine{tagID: newer, old: old, oldLabel: "1", oldTags: []string{"ktrdr-standin:keep"}}, previous: old,
			wantLine: "ktrdr-standin:keep names it"},
		{name: "not built by this suite", engine: imageEngine{tagID: newer, old: old}, previous: old,
			wantLine: "lacks the label sandbox.standin=1"},
		{name: "a stopped container uses it", engine: imageEngine{tagID: newer, old: old, oldLabel: "1", users: []string{user}}, previous: old,
			wantLine: "container 3a4b5c6d7e8f uses it (docker image rm " + old + " removes it once it is gone)"},
		{name: "two containers use it", engine: imageEngine{tagID: newer, old: old, oldLabel: "1", users: []string{user, "b" + user[1:]}}, previous: old,
			wantLine: "containers 3a4b5c6d7e8f, ba4b5c6d7e8f use it (docker image rm " + old + " removes it once they are gone)"},
		{name: "docker refuses: a container made meanwhile", previous: old,
			engine:   imageEngine{tagID: newer, old: old, oldLabel: "1", rmErr: &ExitError{Cmd: "docker image rm", Code: 1, Stderr: "Error response from daemon: conflict: unable to delete 0ld000000000 (must be forced) - image is being used by stopped container 3a4b5c6d7e8f\n"}},
			wantLine: "image is being used by stopped container 3a4b5c6d7e8f"},
		{name: "the containers cannot be listed", previous: old,
			engine:  imageEngine{tagID: newer, old: old, oldLabel: "1", psErr: &ExitError{Cmd: "docker ps", Code: 1, Stderr: "Cannot connect to the Docker daemon"}},
			wantErr: "list the containers made from image " + old + ", which ktrdr-standin:dev named before"},
		{name: "removing fails", previous: old,
			engine:  imageEngine{tagID: newer, old: old, oldLabel: "1", rmErr: &ExitError{Cmd: "docker image rm", Code: 1, Stderr: "Cannot connect to the Docker daemon"}},
			wantErr: "remove image " + old},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := c.engine
			f := &fakeRunner{handle: e.run}
			var progress bytes.Buffer
			err := RemoveReplacedStandin(t.Context(), f, "ktrdr-standin:dev", c.previous, &progress)
			if c.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.wantErr)
			} else {
				require.NoError(t, err)
			}
			if c.wantRemoved {
				assert.Equal(t, []string{old}, e.removed)
			} else {
				assert.Empty(t, e.removed)
			}
			for _, call := range f.calls {
				assert.NotContains(t, call.Args, "-f", "never forced: %s", call)
				assert.NotContains(t, call.Args, "--force", "never forced: %s", call)
			}
			if c.wantLine != "" {
				assert.Contains(t, progress.String(), c.wantLine)
			}
		})
	}
}

// A rebuild removes the build it replaced; the first build has none.
func TestStandinImageRebuildRemovesTheReplacedImage(t *testing.T) {
	const old = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	e := &imageEngine{tagID: old, old: old, oldLabel: "1", importedID: "sha256:2222222222222222222222222222222222222222222222222222222222222222"}
	var progress bytes.Buffer
	require.NoError(t, BuildStandinImage(t.Context(), &fakeRunner{handle: e.run}, "/repo", "./cmd/standin", "ktrdr-standin:dev", &progress))
	assert.Equal(t, []string{old}, e.removed)
	assert.Contains(t, progress.String(), "removed image "+old)

	// The cleanup's failure leaves the new image standing and says so.
	e = &imageEngine{tagID: old, old: old, oldLabel: "1", importedID: "sha256:3", psErr: errors.New("engine gone")}
	progress.Reset()
	require.NoError(t, BuildStandinImage(t.Context(), &fakeRunner{handle: e.run}, "/repo", "./cmd/standin", "ktrdr-standin:dev", &progress))
	assert.Empty(t, e.removed)
	assert.Contains(t, progress.String(), "note: list the containers made from image "+old)
}

// pgTestDocker skips (laptop) or fails (CI) without a Docker engine.
func pgTestDocker(t *testing.T) {
	t.Helper()
	if err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("docker engine not available in CI: %v", err)
		}
		t.Skipf("docker engine not available: %v", err)
	}
}

func pgTestDockerRun(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := ExecRunner{}.Run(ctx, Cmd{Name: "docker", Args: args})
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

// TestStandinImageRealBuild builds the image for real, runs it, and checks
// the argv[0] tools and SIGTERM handling inside a FROM-scratch container.
func TestStandinImageRealBuild(t *testing.T) {
	pgTestDocker(t)
	repoRoot, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	image := "ktrdr-standin:pgtest-" + hex.EncodeToString(suffix)
	r := ExecRunner{}
	t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "-f", image).Run() })

	ok, err := StandinImageExists(t.Context(), r, image)
	require.NoError(t, err)
	require.False(t, ok)

	var progress bytes.Buffer
	require.NoError(t, BuildStandinImage(t.Context(), r, repoRoot, "./cmd/standin", image, &progress), progress.String())
	ok, err = StandinImageExists(t.Context(), r, image)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "1", pgTestDockerRun(t, "image", "inspect", "--format", `{{index .Config.Labels "sandbox.standin"}}`, image))

	assert.Contains(t, pgTestDockerRun(t, "run", "--rm", image, "version"), "standin ")

	cid := pgTestDockerRun(t, "run", "-d", "-p", "127.0.0.1::8000", "-e", "KTRDR_STANDIN_ROLE=backend", image)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", cid).Run() })
	hostAddr := pgTestDockerRun(t, "port", cid, "8000/tcp")
	hostAddr = strings.Split(hostAddr, "\n")[0]

	var health map[string]any
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + hostAddr + "/api/v1/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&health) == nil
	}, 20*time.Second, 100*time.Millisecond, "backend never healthy on %s", hostAddr)
	assert.Equal(t, "ok", health["status"])

	// Healthchecks written for the real images work in the scratch image.
	pgTestDockerRun(t, "exec", cid, "curl", "-fsS", "http://localhost:8000/api/v1/health")
	pgTestDockerRun(t, "exec", cid, "wget", "-q", "--spider", "http://localhost:8000/api/v1/health")
	_, err = r.Run(t.Context(), Cmd{Name: "docker", Args: []string{"exec", cid, "curl", "-fsS", "http://localhost:8000/missing"}})
	var ee *ExitError
	require.True(t, errors.As(err, &ee), "want an exit error, got %v", err)
	assert.Equal(t, 22, ee.Code)
	pgTestDockerRun(t, "exec", cid, "/standin", "fs", "write", "/tmp/marker", "hello")
	assert.Equal(t, "hello", pgTestDockerRun(t, "exec", cid, "/standin", "fs", "read", "/tmp/marker"))

	// ["CMD-SHELL", …] healthchecks run through /bin/sh.
	assert.Equal(t, "up", pgTestDockerRun(t, "exec", cid, "/bin/sh", "-c", "wget -q --spider http://localhost:8000/api/v1/health && echo up"))
	_, err = r.Run(t.Context(), Cmd{Name: "docker", Args: []string{"exec", cid, "/bin/sh", "-c", "python -c 'print(1)'"}})
	require.True(t, errors.As(err, &ee), "want an exit error, got %v", err)
	assert.Equal(t, 127, ee.Code)
	assert.Contains(t, ee.Stderr, "sh: python: not found")

	// A real shell: pipes and redirections in CMD-SHELL, and a session on
	// stdin (docker exec -i … sh) that finds grep and cat on PATH too.
	assert.Equal(t, "up", pgTestDockerRun(t, "exec", cid, "/bin/sh", "-c",
		`curl -fsS http://localhost:8000/api/v1/health | grep -q '"status": *"ok"' && wget -q -O - http://localhost:8000/api/v1/health > /tmp/h 2>&1 && cat /tmp/h | grep -c ok > /dev/null && echo up`))
	var session bytes.Buffer
	_, err = r.Run(t.Context(), Cmd{Name: "docker", Args: []string{"exec", "-i", cid, "sh"},
		Stdin: strings.NewReader("echo hello | cat\nexit 3\n"), Stdout: &session})
	require.True(t, errors.As(err, &ee), "want an exit error, got %v", err)
	assert.Equal(t, 3, ee.Code)
	assert.Equal(t, "hello\n", session.String())
	pgTestDockerRun(t, "exec", cid, "grep", "-q", "ok", "/tmp/h")
	assert.Contains(t, pgTestDockerRun(t, "exec", cid, "cat", "/tmp/h"), "standin")

	// The generic http role as the main process, given a real image's shell
	// command, which it ignores, with and without an init at PID 1; Docker
	// runs the CMD-SHELL healthcheck with the image's /bin/sh.
	for _, init := range []bool{false, true} {
		args := []string{"run", "-d", "-e", "KTRDR_STANDIN_ROLE=http", "-e", "KTRDR_STANDIN_PORTS=3100,3101",
			"--health-cmd", "curl -f http://localhost:3100/health || exit 1", "--health-interval", "1s", "--health-retries", "30"}
		if init {
			args = append(args, "--init")
		}
		hid := pgTestDockerRun(t, append(args, image, "sh", "-c", "alembic upgrade head && exit 9")...)
		t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", hid).Run() })
		require.Eventually(t, func() bool {
			out, err := ExecRunner{}.Run(t.Context(), Cmd{Name: "docker", Args: []string{"inspect", "--format", "{{.State.Health.Status}}", hid}})
			return err == nil && strings.TrimSpace(string(out)) == "healthy"
		}, 60*time.Second, 200*time.Millisecond, "init=%v: never healthy; state: %s", init,
			pgTestDockerRun(t, "inspect", "--format", "{{json .State}}", hid))
		assert.Contains(t, pgTestDockerRun(t, "exec", hid, "curl", "-fsS", "http://localhost:3101/anything"), `"status":"ok"`)
		assert.Contains(t, pgTestDockerRun(t, "logs", hid), "ignoring command")
	}

	// PID 1 handles SIGTERM: it exits 0, where a process that ignored it
	// would be killed after docker stop's timeout (exit code 137).
	pgTestDockerRun(t, "stop", "-t", "10", cid)
	assert.Equal(t, "0", pgTestDockerRun(t, "inspect", "--format", "{{.State.ExitCode}}", cid))
}
