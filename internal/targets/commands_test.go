package targets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/magefile/mage/mg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// The command tests run the targets as mage does (the methods, with their
// flags), with a temporary HOME and git repositories and real git; docker
// is a fake: compose is v2, every other call answers nothing unless the
// test says otherwise.

// fakeDocker passes git to the real runner and answers docker (and go) with
// answer, or with nothing.
type fakeDocker struct {
	mu     sync.Mutex
	calls  []string
	answer func(c driver.Cmd) ([]byte, error, bool) // ok false: the default answer
}

func (f *fakeDocker) Run(ctx context.Context, c driver.Cmd) ([]byte, error) {
	if c.Name == "git" {
		return driver.ExecRunner{}.Run(ctx, c)
	}
	f.mu.Lock()
	f.calls = append(f.calls, c.String())
	answer := f.answer
	f.mu.Unlock()
	if answer != nil {
		if out, err, ok := answer(c); ok {
			return out, err
		}
	}
	if slices.Equal(c.Args, []string{"compose", "version", "--short"}) {
		return []byte("v2.40.3\n"), nil
	}
	return nil, nil
}

// syncBuffer is an output buffer that the library's goroutines (events
// from checks that run concurrently) may write while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Bytes is a copy of what was written.
func (b *syncBuffer) Bytes() []byte { return []byte(b.String()) }

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// world is one test's machine: HOME, a dev folder, the main checkout.
type world struct {
	home, dev, main string
	docker          *fakeDocker
	out, errOut     *syncBuffer
}

func newWorld(t *testing.T) *world {
	t.Helper()
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	for _, k := range []string{"GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"} {
		t.Setenv(k, "test")
	}
	for _, k := range []string{"GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"} {
		t.Setenv(k, "test@example.invalid")
	}
	root, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	w := &world{home: filepath.Join(root, "home"), dev: filepath.Join(root, "dev"), docker: &fakeDocker{},
		out: &syncBuffer{}, errOut: &syncBuffer{}}
	w.main = filepath.Join(w.dev, "ktrdr2")
	require.NoError(t, os.MkdirAll(w.home, 0o755))
	t.Setenv("HOME", w.home)
	w.repo(t, w.main, true, true)
	oldOut, oldErr, oldRunner := stdout, stderr, runner
	stdout, stderr, runner = w.out, w.errOut, w.docker
	t.Cleanup(func() { stdout, stderr, runner = oldOut, oldErr, oldRunner })
	return w
}

// repo makes a git repository at dir, with the project's sandbox compose
// file if withCompose, and committed if commit.
func (w *world) repo(t *testing.T, dir string, withCompose, commit bool) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	git(t, dir, "init", "-q", "-b", "main")
	write(t, filepath.Join(dir, ".gitignore"), ".env.sandbox\n")
	if withCompose {
		data, err := os.ReadFile("../../docker-compose.sandbox.yml")
		require.NoError(t, err)
		write(t, filepath.Join(dir, "docker-compose.sandbox.yml"), string(data))
	}
	if commit {
		git(t, dir, "add", "-A")
		git(t, dir, "commit", "-q", "-m", "initial")
	}
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

// adopt makes the main checkout a sandbox (sandbox:init) in slot.
func (w *world) adopt(t *testing.T, slot int) {
	t.Helper()
	t.Chdir(w.main)
	require.NoError(t, Sandbox{}.Init(t.Context(), &slot, nil, nil, nil))
}

// mainCompose commits the project's docker-compose.yml to the main
// checkout and changes into it.
func (w *world) mainCompose(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	write(t, filepath.Join(w.main, "docker-compose.yml"), string(data))
	git(t, w.main, "add", "-A")
	git(t, w.main, "commit", "-q", "-m", "main stack")
	t.Chdir(w.main)
}

// hold listens on the API port of slot until the test ends.
func hold(t *testing.T, slot int) {
	t.Helper()
	port := sandbox.KTRDR().PortsFor(slot)["KTRDR_API_PORT"]
	l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		t.Logf("port %d is already held by another process: %v", port, err)
		return
	}
	t.Cleanup(func() { l.Close() })
}

func ptr[T any](v T) *T { return &v }

func isCompose(c driver.Cmd, sub string) bool {
	return c.Name == "docker" && slices.Contains(c.Args, "compose") && slices.Contains(c.Args, sub)
}

// Every exit code of the README's target table, at command level: the
// target run as mage runs it, its exit status as mage would exit.
func TestTargetExitCodes(t *testing.T) {
	composeFails := func(sub string, code int) func(c driver.Cmd) ([]byte, error, bool) {
		return func(c driver.Cmd) ([]byte, error, bool) {
			if isCompose(c, sub) {
				return nil, &driver.ExitError{Cmd: c.String(), Code: code, Stderr: "compose says no"}, true
			}
			return nil, nil, false
		}
	}
	tests := []struct {
		target, name string
		run          func(t *testing.T, w *world) error
		code         int
		says         string // part of the error (or, for exit 0, of stdout)
	}{
		{tCreate, "created", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Sandbox{}.Create(t.Context(), "feat", nil, ptr(9), nil, nil, nil, nil, nil)
		}, 0, "Created sandbox ktrdr--feat in slot 9"},
		{tCreate, "slot out of range", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Sandbox{}.Create(t.Context(), "feat", nil, ptr(99), nil, nil, nil, nil, nil)
		}, 1, "slot 99"},
		{tCreate, "worktree failed: no commit to branch from", func(t *testing.T, w *world) error {
			fresh := filepath.Join(w.dev, "fresh")
			w.repo(t, fresh, true, false)
			t.Chdir(fresh)
			return Sandbox{}.Create(t.Context(), "feat", nil, ptr(9), nil, nil, nil, nil, nil)
		}, 2, "no commit to branch from"},
		{tCreate, "worktree failed: branch in use", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Sandbox{}.Create(t.Context(), "feat", ptr("main"), ptr(9), nil, nil, nil, nil, nil)
		}, 2, "main"},
		{tCreate, "folder exists", func(t *testing.T, w *world) error {
			require.NoError(t, os.MkdirAll(filepath.Join(w.dev, "ktrdr--feat"), 0o755))
			t.Chdir(w.main)
			return Sandbox{}.Create(t.Context(), "feat", nil, ptr(9), nil, nil, nil, nil, nil)
		}, 3, "ktrdr--feat"},
		{tCreate, "-up: gate failed, the sandbox stays", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Sandbox{}.Create(t.Context(), "feat", nil, ptr(9), nil, nil, nil, ptr(true), ptr(time.Second))
		}, 2, "created ktrdr--feat, but starting it failed: startability gate failed"},
		{tCreate, "-up: compose failed, one JSON document", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			w.docker.answer = composeFails("up", 1)
			err := Sandbox{}.Create(t.Context(), "feat", nil, ptr(9), nil, nil, ptr(true), ptr(true), nil)
			var doc map[string]any
			require.NoError(t, json.Unmarshal(w.out.Bytes(), &doc), "stdout is one JSON document: %s", w.out)
			assert.Equal(t, "ktrdr--feat", doc["id"])
			assert.Equal(t, "http://localhost:8009", doc["api_url"])
			require.IsType(t, map[string]any{}, doc["error"])
			failure := doc["error"].(map[string]any)
			assert.Equal(t, float64(1), failure["exit_code"], "the failure, as the exit says it")
			assert.Contains(t, failure["hint"], "run again with -v to see compose's output; the sandbox stays created")
			assert.Contains(t, failure["message"], "compose says no")
			assert.DirExists(t, filepath.Join(w.dev, "ktrdr--feat"), "the sandbox stays")
			return err
		}, 1, "run again with -v to see compose's output; the sandbox stays created: cd"},
		{tMCP, "client closed", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			oldIn := stdin
			stdin = strings.NewReader("")
			t.Cleanup(func() { stdin = oldIn })
			return Sandbox{}.Mcp(t.Context())
		}, 0, ""},
		{tMCP, "no home folder", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			t.Setenv("HOME", "")
			return Sandbox{}.Mcp(t.Context())
		}, 1, "home"},
		{tInit, "adopted", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Sandbox{}.Init(t.Context(), ptr(9), nil, nil, nil)
		}, 0, "Adopted clone"},
		{tInit, "already a sandbox", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			return Sandbox{}.Init(t.Context(), ptr(8), nil, nil, nil)
		}, 1, "already"},
		{tInit, "not a checkout of this project", func(t *testing.T, w *world) error {
			other := filepath.Join(w.dev, "other")
			w.repo(t, other, false, true)
			t.Chdir(other)
			return Sandbox{}.Init(t.Context(), nil, nil, nil, nil)
		}, 2, "docker-compose.sandbox.yml"},
		{tInit, "port conflict", func(t *testing.T, w *world) error {
			hold(t, 7)
			t.Chdir(w.main)
			return Sandbox{}.Init(t.Context(), ptr(7), nil, nil, nil)
		}, 3, "8007"},
		{tUp, "started without waiting", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			return Sandbox{}.Up(t.Context(), ptr(true), nil, nil, nil, nil)
		}, 0, "Started ktrdr--ktrdr2 without waiting"},
		{tUp, "compose failed", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			w.docker.answer = composeFails("up", 1)
			return Sandbox{}.Up(t.Context(), ptr(true), nil, nil, nil, nil)
		}, 1, "compose says no"},
		{tUp, "gate failed", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			return Sandbox{}.Up(t.Context(), nil, nil, ptr(time.Second), nil, nil)
		}, 2, "gate"},
		{tUp, "port conflict", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			hold(t, 9)
			return Sandbox{}.Up(t.Context(), ptr(true), nil, nil, nil, nil)
		}, 3, "8009"},
		{tUp, "external network missing", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			f, err := os.OpenFile(filepath.Join(w.main, "docker-compose.sandbox.yml"), os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteString("\nnetworks:\n  outside:\n    external: true\n    name: e2e-outside-net\n")
			require.NoError(t, err)
			require.NoError(t, f.Close())
			w.docker.answer = func(c driver.Cmd) ([]byte, error, bool) {
				if slices.Equal(c.Args[:min(2, len(c.Args))], []string{"network", "inspect"}) {
					return nil, &driver.ExitError{Cmd: c.String(), Code: 1, Stderr: "no such network"}, true
				}
				return nil, nil, false
			}
			return Sandbox{}.Up(t.Context(), ptr(true), nil, nil, nil, nil)
		}, 4, "e2e-outside-net"},
		{tUp, "not enough free memory", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			w.registerRunning(t, "big", 7)
			write(t, filepath.Join(w.home, ".ktrdr", "sandbox", "config.json"), `{"min_free_memory": "1000GiB"}`)
			w.docker.answer = engineWith(8<<30, 100<<20, []string{"ktrdr--big"})
			return Sandbox{}.Up(t.Context(), ptr(true), nil, nil, nil, nil)
		}, 5, "ktrdr--big uses 900MiB"},
		{tUp, "secrets file others may read", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			path := filepath.Join(w.home, ".ktrdr", "sandbox", "secrets.env")
			require.NoError(t, os.WriteFile(path, []byte("KTRDR_AUTH_JWT_SECRET=s3cret-value\n"), 0o644))
			err := Sandbox{}.Up(t.Context(), ptr(true), nil, nil, nil, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "hint: nothing was started: chmod 600 "+path)
			assert.NotContains(t, err.Error()+w.out.String()+w.errOut.String(), "s3cret-value")
			return err
		}, 6, "may be read or written by others (mode 0644)"},
		{tUp, "-allowSync names a relative folder", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			return Sandbox{}.Up(t.Context(), ptr(true), nil, nil, nil, ptr("/srv/data, data"))
		}, 1, `allow sync of "data": not an absolute path`},
		{tDown, "all stopped", func(t *testing.T, w *world) error {
			w.registerRunning(t, "big", 7)
			w.registerRunning(t, "small", 8)
			w.docker.answer = engineWith(8<<30, 100<<20, []string{"ktrdr--big", "ktrdr--small"})
			t.Chdir(w.main)
			return Sandbox{}.Down(t.Context(), nil, ptr(true), nil)
		}, 0, "Stopped 2 sandbox(es) (data kept)"},
		{tDown, "all: one could not be stopped", func(t *testing.T, w *world) error {
			w.registerRunning(t, "big", 7)
			w.registerRunning(t, "small", 8)
			w.docker.answer = engineWith(8<<30, 100<<20, []string{"ktrdr--big", "ktrdr--small"}, "ktrdr--big")
			t.Chdir(w.main)
			return Sandbox{}.Down(t.Context(), nil, ptr(true), nil)
		}, 1, "could not stop 1 of 2 sandbox(es):\n  ktrdr--big"},
		{tDown, "stopped", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			return Sandbox{}.Down(t.Context(), nil, nil, nil)
		}, 0, "Stopped ktrdr--ktrdr2"},
		{tDown, "compose failed", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			w.docker.answer = composeFails("down", 1)
			return Sandbox{}.Down(t.Context(), nil, nil, nil)
		}, 1, "compose says no"},
		{tDown, "not a sandbox", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Sandbox{}.Down(t.Context(), nil, nil, nil)
		}, 1, "not inside a sandbox"},
		{tDestroy, "refused: uncommitted work", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			require.NoError(t, Sandbox{}.Create(t.Context(), "feat", nil, ptr(9), nil, nil, nil, nil, nil))
			write(t, filepath.Join(w.dev, "ktrdr--feat", "work.txt"), "precious\n")
			return Sandbox{}.Destroy(t.Context(), nil, nil, ptr("feat"), nil)
		}, 1, "would lose work"},
		{tDestroy, "destroyed", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			require.NoError(t, Sandbox{}.Create(t.Context(), "feat", nil, ptr(9), nil, nil, nil, nil, nil))
			return Sandbox{}.Destroy(t.Context(), nil, nil, ptr("feat"), nil)
		}, 0, "Destroyed ktrdr--feat"},
		{tList, "listed", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			return Sandbox{}.List(t.Context(), nil)
		}, 0, "ktrdr--ktrdr2"},
		{tList, "damaged registry", func(t *testing.T, w *world) error {
			write(t, filepath.Join(w.home, ".ktrdr", "sandbox", "instances.json"), `{"version":1,"instances":{`)
			t.Chdir(w.main)
			return Sandbox{}.List(t.Context(), nil)
		}, 1, "left untouched"},
		{tStatus, "shown", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			return Sandbox{}.Status(t.Context(), nil)
		}, 0, "Sandbox ktrdr--ktrdr2"},
		{tStatus, "not a sandbox", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Sandbox{}.Status(t.Context(), nil)
		}, 1, "not inside a sandbox"},
		{tLogs, "compose's code passes through", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			w.docker.answer = composeFails("logs", 7)
			return Sandbox{}.Logs(t.Context(), ptr("backend"), nil, nil)
		}, 7, "compose says no"},
		{tLogs, "not a sandbox", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Sandbox{}.Logs(t.Context(), nil, nil, nil)
		}, 1, "not inside a sandbox"},
		{tShell, "entered", func(t *testing.T, w *world) error {
			w.shellSandbox(t, nil)
			return Sandbox{}.Shell(t.Context(), nil)
		}, 0, "hello from sh"},
		{tShell, "the shell's status passes through", func(t *testing.T, w *world) error {
			w.shellSandbox(t, &driver.ExitError{Code: 7})
			return Sandbox{}.Shell(t.Context(), ptr("db"))
		}, 7, "sh in service db of sandbox ktrdr--feat ended with exit status 7"},
		{tShell, "no such service", func(t *testing.T, w *world) error {
			w.shellSandbox(t, nil)
			return Sandbox{}.Shell(t.Context(), ptr("nosuch"))
		}, 1, `no service "nosuch"`},
		{tShell, "not a sandbox", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Sandbox{}.Shell(t.Context(), nil)
		}, 1, "not inside a sandbox"},
		{tSync, "local engine: nothing to sync", func(t *testing.T, w *world) error {
			w.adopt(t, 9)
			return Sandbox{}.Sync(t.Context(), nil, nil, nil)
		}, 0, "nothing to sync"},
		{tSync, "not a sandbox", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Sandbox{}.Sync(t.Context(), nil, nil, nil)
		}, 1, "not inside a sandbox"},
		{tPorts, "plan", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Sandbox{}.Ports(t.Context(), ptr(3), nil)
		}, 0, "KTRDR_API_PORT"},
		{tPorts, "not a checkout of this project", func(t *testing.T, w *world) error {
			t.Chdir(w.dev)
			return Sandbox{}.Ports(t.Context(), nil, nil)
		}, 1, "not a git checkout"},
		{tInitShared, "minimal", func(t *testing.T, w *world) error {
			return Sandbox{}.InitShared(t.Context(), nil, ptr(true), nil)
		}, 0, "shared folders in"},
		{tInitShared, "backup missing", func(t *testing.T, w *world) error {
			return Sandbox{}.InitShared(t.Context(), ptr(filepath.Join(w.dev, "no-backup")), nil, nil)
		}, 1, "no-backup"},
		{tURL, "resolved", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Sandbox{}.URL(nil, ptr(8005), nil)
		}, 0, "http://localhost:8005"},
		{tURL, "env file damaged", func(t *testing.T, w *world) error {
			write(t, filepath.Join(w.main, ".env.sandbox"), "KTRDR_API_PORT=+8001\n")
			t.Chdir(w.main)
			return Sandbox{}.URL(nil, nil, nil)
		}, 1, "+8001"},
		{tImages, "built", func(t *testing.T, w *world) error {
			if _, err := driver.FindHostPostgres(""); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("CI needs the host's PostgreSQL for the database image (.ci/run installs it): %v", err)
				}
				t.Skipf("the database image needs the host's PostgreSQL: %v", err)
			}
			w.docker.answer = fakeGoBuild(nil)
			t.Chdir(w.main)
			return Stack{}.Images(t.Context())
		}, 0, "Built ktrdr-postgres:dev"},
		{tImages, "no PostgreSQL on the host", func(t *testing.T, w *world) error {
			old := pgHostRoot
			pgHostRoot = t.TempDir()
			t.Cleanup(func() { pgHostRoot = old })
			w.docker.answer = fakeGoBuild(nil)
			t.Chdir(w.main)
			return Stack{}.Images(t.Context())
		}, 1, "apt-get install postgresql"},
		{tImages, "docker refused the image", func(t *testing.T, w *world) error {
			w.docker.answer = fakeGoBuild(&driver.ExitError{Cmd: "docker import", Code: 1, Stderr: "no space left"})
			t.Chdir(w.main)
			return Stack{}.Images(t.Context())
		}, 1, "no space left"},
		{tApply, "applied", func(t *testing.T, w *world) error {
			w.mainCompose(t)
			return Merge{}.Apply(t.Context(), nil, nil)
		}, 0, "rollback point"},
		{tVerify, "pass", func(t *testing.T, w *world) error {
			w.mainCompose(t)
			require.NoError(t, Merge{}.Apply(t.Context(), nil, nil))
			w.out.Reset()
			return Merge{}.Verify(t.Context(), nil, nil, nil, nil, nil)
		}, 0, "all"},
		{tApply, "refused: uncommitted main file", func(t *testing.T, w *world) error {
			write(t, filepath.Join(w.main, "docker-compose.yml"), "services: {}\n")
			t.Chdir(w.main)
			return Merge{}.Apply(t.Context(), nil, nil)
		}, 1, "docker-compose.yml"},
		{tVerify, "fail: nothing merged", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Merge{}.Verify(t.Context(), nil, nil, nil, nil, nil)
		}, 1, "items failed"},
		{tRollback, "nothing to do", func(t *testing.T, w *world) error {
			t.Chdir(w.main)
			return Merge{}.Rollback(t.Context())
		}, 0, "nothing to do"},
		{tRollback, "not a checkout", func(t *testing.T, w *world) error {
			t.Chdir(w.dev)
			return Merge{}.Rollback(t.Context())
		}, 1, "not a git repository"},
	}
	covered := map[string][]int{}
	for _, tt := range tests {
		t.Run(tt.target+" "+tt.name, func(t *testing.T) {
			w := newWorld(t)
			err := tt.run(t, w)
			t.Logf("stdout:\n%s\nstderr:\n%s\nerror: %v", w.out, w.errOut, err)
			assert.Equal(t, tt.code, mg.ExitStatus(err))
			if tt.code == 0 {
				assert.Contains(t, w.out.String(), tt.says)
			} else {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.says)
			}
		})
		covered[tt.target] = append(covered[tt.target], tt.code)
		if strings.HasPrefix(tt.name, "-up:") {
			covered[tt.target] = append(covered[tt.target], upCode)
		}
	}
	// Every code of the table has its test here (compose's: any code of compose).
	for target, codes := range exitCodes {
		for _, c := range codes {
			if c.Code == composeCode {
				assert.Contains(t, covered[target], 7, "%s passes compose's code through", target)
				continue
			}
			assert.Contains(t, covered[target], c.Code, "a test of %s exit %d (%s)", target, c.Code, c.Meaning)
		}
	}
}

// fakeGoBuild answers `go build -o BIN` by writing a small BIN, and the
// docker calls that follow with dockerErr.
func fakeGoBuild(dockerErr error) func(c driver.Cmd) ([]byte, error, bool) {
	return func(c driver.Cmd) ([]byte, error, bool) {
		if c.Name == "go" {
			i := slices.Index(c.Args, "-o")
			if i < 0 || i+1 >= len(c.Args) {
				return nil, errors.New("fake go: no -o"), true
			}
			return nil, os.WriteFile(c.Args[i+1], []byte("binary"), 0o755), true
		}
		if c.Name == "docker" && dockerErr != nil && !strings.Contains(c.String(), "version") {
			return nil, dockerErr, true
		}
		return nil, nil, false
	}
}

// sandbox:list -json keeps its shape: each orphan with the command that
// removes it, now added at the edge.
func TestListJSONNamesTheOrphansRemedy(t *testing.T) {
	l := &sandbox.Listing{Instances: []sandbox.ListEntry{}, Orphans: []sandbox.Orphan{{Project: "ktrdr--ghost", Containers: 2}}}
	var out bytes.Buffer
	stdout = &out
	t.Cleanup(func() { stdout = os.Stdout })
	require.NoError(t, printJSON(listingJSON(l)))
	var got struct {
		Instances []any `json:"instances"`
		Orphans   []map[string]any
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	assert.Equal(t, []map[string]any{{"project": "ktrdr--ghost", "containers": float64(2), "remedy": "docker compose -p ktrdr--ghost down --volumes"}}, got.Orphans)
	assert.NotNil(t, got.Instances)
}

// shellSandbox registers sandbox feat (its folder holds the project's
// compose file) with every service running, changes into it, and answers
// compose exec as an image without bash whose sh prints a greeting on the
// given stdout and ends with shellErr.
func (w *world) shellSandbox(t *testing.T, shellErr error) {
	t.Helper()
	dir := w.registerRunning(t, "feat", 7)
	data, err := os.ReadFile("../../docker-compose.sandbox.yml")
	require.NoError(t, err)
	write(t, filepath.Join(dir, "docker-compose.sandbox.yml"), string(data))
	t.Chdir(dir)
	engine := engineWith(8<<30, 100<<20, []string{"ktrdr--feat"})
	w.docker.answer = func(c driver.Cmd) ([]byte, error, bool) {
		switch {
		case !isCompose(c, "exec"):
			return engine(c)
		case slices.Contains(c.Args, "bash"):
			return nil, &driver.ExitError{Cmd: c.String(), Code: 126, Stderr: `exec: "bash": executable file not found in $PATH`}, true
		}
		fmt.Fprintln(c.Stdout, "hello from sh")
		return nil, shellErr, true
	}
}
