// Package e2e drives the real targets the way a person does: the compiled
// magefiles run in a temporary git repository holding a copy of this
// project, with a temporary HOME, against the real Docker engine and the
// bundled stand-in images. Every test removes the containers, volumes,
// networks and worktrees it made, also when it fails.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	repoRoot  string // this project's checkout
	binDir    string // compiled mage targets and the ktrdr client
	dockerErr error  // why the engine cannot be used, if it cannot
)

// namePrefix marks every sandbox an e2e test makes, so stale ones from an
// interrupted run can be found and removed.
const namePrefix = "e2e-"

func TestMain(m *testing.M) {
	os.Exit(func() int {
		wd, err := os.Getwd()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		repoRoot = filepath.Dir(wd)
		binDir, err = os.MkdirTemp("", "sandbox-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(binDir)
		if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
			dockerErr = fmt.Errorf("docker engine unavailable: %v: %s", err, bytes.TrimSpace(out))
		}
		if err := build(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e setup:", err)
			return 1
		}
		if dockerErr == nil {
			removeStaleProjects()
		}
		return m.Run()
	}())
}

func build() error {
	cmds := [][]string{
		{"go", "tool", "mage", "-compile", filepath.Join(binDir, "sbx")},
		{"go", "build", "-o", filepath.Join(binDir, "ktrdr"), "./cmd/ktrdr"},
	}
	for _, c := range cmds {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}

// needDocker skips a test without an engine, except in CI where that is a failure.
func needDocker(t testing.TB) {
	t.Helper()
	if dockerErr == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI needs the Docker engine: %v", dockerErr)
	}
	t.Skipf("no Docker engine (%v); set CI=1 to make this a failure", dockerErr)
}

// env is one test's world: a HOME, a folder of checkouts, the main checkout.
type env struct {
	t    testing.TB
	Home string
	Dev  string // parent folder: the main checkout and its sandboxes live here
	Main string // the main checkout, a git repository holding this project
	Env  []string
}

// newEnv makes a temporary HOME and a git repository holding this project's
// files, and registers the clean-up of everything the test will start.
func newEnv(t testing.TB) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{t: t, Home: filepath.Join(root, "home"), Dev: filepath.Join(root, "dev")}
	e.Main = filepath.Join(e.Dev, "ktrdr2")
	require.NoError(t, os.MkdirAll(e.Home, 0o755))
	require.NoError(t, os.MkdirAll(e.Main, 0o755))
	copyProject(t, e.Main)
	e.Env = []string{"HOME=" + e.Home, "PATH=" + os.Getenv("PATH"), "NO_COLOR=1",
		"GOCACHE=" + goEnv(t, "GOCACHE"), "GOMODCACHE=" + goEnv(t, "GOMODCACHE"), "GOTOOLCHAIN=local",
		"GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.invalid", "GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.invalid",
		// A shell's exports must never change which stack a command touches.
		"KTRDR_API_PORT=9999", "COMPOSE_PROJECT_NAME=hijacked", "KTRDR_DB_PORT=1", "COMPOSE_FILE=/nonexistent.yml"}
	if v := os.Getenv("DOCKER_HOST"); v != "" {
		e.Env = append(e.Env, "DOCKER_HOST="+v)
	}
	e.git(e.Main, "init", "-q", "-b", "main")
	e.git(e.Main, "add", "-A")
	e.git(e.Main, "commit", "-q", "-m", "the project")
	t.Cleanup(func() { e.cleanup() })
	return e
}

var goEnvCache sync.Map

func goEnv(t testing.TB, key string) string {
	if v, ok := goEnvCache.Load(key); ok {
		return v.(string)
	}
	out, err := exec.Command("go", "env", key).Output()
	require.NoError(t, err)
	v := strings.TrimSpace(string(out))
	goEnvCache.Store(key, v)
	return v
}

// copyProject copies the files git would commit (tracked, and untracked but
// not ignored) into dst.
func copyProject(t testing.TB, dst string) {
	out, err := exec.Command("git", "-C", repoRoot, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	require.NoError(t, err)
	for _, rel := range strings.Split(string(out), "\x00") {
		if rel == "" || strings.HasPrefix(rel, "e2e/") {
			continue
		}
		src := filepath.Join(repoRoot, rel)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the working tree, or not a plain file
		}
		data, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dst, rel), data, fi.Mode().Perm()))
	}
}

func (e *env) git(dir string, args ...string) string {
	e.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = e.Env
	out, err := cmd.CombinedOutput()
	require.NoError(e.t, err, "git %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// hasBranch reports whether branch exists in the main checkout. It asks
// show-ref, which reads refs only: `git branch --list` also reads every
// worktree's record and fails on one a killed `git worktree add` left half
// written (the state the kill tests look at).
func (e *env) hasBranch(branch string) bool {
	e.t.Helper()
	cmd := exec.Command("git", "-C", e.Main, "show-ref", "--verify", "--quiet", "refs/heads/"+branch)
	cmd.Env = e.Env
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return false
	}
	require.NoError(e.t, err, "git show-ref refs/heads/%s", branch)
	return true
}

// result is what a command printed and how it ended.
type result struct {
	Stdout, Stderr string
	Code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.Code, r.Stdout, r.Stderr)
}

// sbx runs a mage target (the compiled magefiles) in dir.
func (e *env) sbx(dir string, args ...string) result {
	e.t.Helper()
	return e.run(dir, filepath.Join(binDir, "sbx"), args...)
}

// sbxIn is sbx with stdin (a pipe, not a terminal).
func (e *env) sbxIn(dir, stdin string, args ...string) result {
	e.t.Helper()
	return e.runIn(dir, strings.NewReader(stdin), filepath.Join(binDir, "sbx"), args...)
}

func (e *env) run(dir, name string, args ...string) result {
	e.t.Helper()
	return e.runIn(dir, nil, name, args...)
}

func (e *env) runIn(dir string, stdin io.Reader, name string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = e.Env
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	r, err := resultOf(cmd.Run(), out.String(), errb.String())
	if err != nil {
		e.t.Fatalf("run %s %v: %v", name, args, err)
	}
	e.t.Logf("$ %s %s  (in %s)\n%s", filepath.Base(name), strings.Join(args, " "), dir, r)
	return r
}

// resultOf turns what a finished command returned into its result; an
// error other than an exit status is returned.
func resultOf(err error, stdout, stderr string) (result, error) {
	r := result{Stdout: stdout, Stderr: stderr}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.Code = ee.ExitCode()
		return r, nil
	}
	return r, err
}

// must runs a target that has to succeed.
func (e *env) must(dir string, args ...string) result {
	e.t.Helper()
	r := e.sbx(dir, args...)
	require.Equal(e.t, 0, r.Code, "%v failed:\n%s", args, r)
	return r
}

// sandboxDir is where create puts sandbox name.
func (e *env) sandboxDir(name string) string { return filepath.Join(e.Dev, "ktrdr--"+name) }

// cleanup removes every compose project whose containers or volumes came
// from this test's folders, then lets t.TempDir remove the folders.
func (e *env) cleanup() {
	for _, project := range projectsUnder(e.Dev) {
		removeProject(project)
	}
	// Volumes outlive their containers after `down` without -volumes.
	for _, p := range e.projects() {
		removeProject(p)
	}
}

// projects lists the compose projects of the sandboxes this test registered
// or created folders for.
func (e *env) projects() []string {
	var out []string
	entries, _ := os.ReadDir(e.Dev)
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), "ktrdr--") {
			out = append(out, en.Name())
		}
	}
	data, _ := os.ReadFile(filepath.Join(e.Home, ".ktrdr", "sandbox", "instances.json"))
	for _, m := range regexp.MustCompile(`"(ktrdr--[a-z0-9-]+)"`).FindAllStringSubmatch(string(data), -1) {
		out = append(out, m[1])
	}
	return out
}

// projectsUnder lists compose projects whose working dir is below dir.
func projectsUnder(dir string) []string {
	out, _ := exec.Command("docker", "ps", "-a", "--format", `{{.Label "com.docker.compose.project"}} {{.Label "com.docker.compose.project.working_dir"}}`).Output()
	seen := map[string]bool{}
	var projects []string
	for _, line := range strings.Split(string(out), "\n") {
		project, wd, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && project != "" && strings.HasPrefix(wd, dir) && !seen[project] {
			seen[project] = true
			projects = append(projects, project)
		}
	}
	return projects
}

// removeProject removes a compose project's containers, volumes and networks by label.
func removeProject(project string) {
	filter := "label=com.docker.compose.project=" + project
	if ids := dockerIDs("ps", "-aq", "--filter", filter); len(ids) > 0 {
		exec.Command("docker", append([]string{"rm", "-f", "-v"}, ids...)...).Run()
	}
	if ids := dockerIDs("volume", "ls", "-q", "--filter", filter); len(ids) > 0 {
		exec.Command("docker", append([]string{"volume", "rm", "-f"}, ids...)...).Run()
	}
	if ids := dockerIDs("network", "ls", "-q", "--filter", filter); len(ids) > 0 {
		exec.Command("docker", append([]string{"network", "rm"}, ids...)...).Run()
	}
}

func dockerIDs(args ...string) []string {
	out, err := exec.Command("docker", args...).Output()
	if err != nil {
		return nil
	}
	return strings.Fields(string(out))
}

// removeStaleProjects removes what an interrupted earlier run left: e2e
// projects whose working folder is gone. A project whose folder still
// exists belongs to a run in progress (another package, a benchmark).
func removeStaleProjects() {
	live := map[string]bool{}
	out, _ := exec.Command("docker", "ps", "-a", "--format", `{{.Label "com.docker.compose.project"}} {{.Label "com.docker.compose.project.working_dir"}}`).Output()
	for _, line := range strings.Split(string(out), "\n") {
		project, wd, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !isE2EProject(project) {
			continue
		}
		if _, err := os.Stat(wd); err == nil && wd != "" {
			live[project] = true
		}
	}
	seen := map[string]bool{}
	for _, kind := range [][]string{{"ps", "-a", "--format", `{{.Label "com.docker.compose.project"}}`}, {"volume", "ls", "--format", `{{.Label "com.docker.compose.project"}}`}} {
		for _, p := range dockerIDs(kind...) {
			if isE2EProject(p) && !live[p] && !seen[p] {
				seen[p] = true
				removeProject(p)
			}
		}
	}
}

func isE2EProject(p string) bool {
	return strings.HasPrefix(p, "ktrdr--"+namePrefix) || strings.HasPrefix(p, "ktrdr--ci-e2e") || p == "ktrdr-e2e-main" || p == "ktrdr-main-check"
}

// projectResources counts what the engine holds for a compose project.
func projectResources(project string) (containers, volumes, networks int) {
	filter := "label=com.docker.compose.project=" + project
	return len(dockerIDs("ps", "-aq", "--filter", filter)), len(dockerIDs("volume", "ls", "-q", "--filter", filter)),
		len(dockerIDs("network", "ls", "-q", "--filter", filter))
}

// containerOf returns the id of a service's container in a project.
func containerOf(t testing.TB, project, service string) string {
	ids := dockerIDs("ps", "-q", "--filter", "label=com.docker.compose.project="+project, "--filter", "label=com.docker.compose.service="+service)
	require.Len(t, ids, 1, "one %s container in %s", service, project)
	return ids[0]
}

// standinFS runs the stand-in's file helper inside a container.
func standinFS(container string, args ...string) (string, error) {
	out, err := exec.Command("docker", append([]string{"exec", container, "/standin", "fs"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// get fetches a URL and returns the status and body ("" and 0 when nothing answers).
func get(url string) (int, string) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// writeOverride gives a sandbox a compose override file (the faults of the stand-in).
func writeOverride(t testing.TB, root, content string) {
	require.NoError(t, os.WriteFile(filepath.Join(root, "docker-compose.sandbox.override.yml"), []byte(content), 0o644))
}

// writeConfig writes the user's settings file.
func (e *env) writeConfig(content string) {
	e.t.Helper()
	path := filepath.Join(e.Home, ".ktrdr", "sandbox", "config.json")
	require.NoError(e.t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(e.t, os.WriteFile(path, []byte(content), 0o644))
}
