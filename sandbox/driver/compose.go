package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Compose drives the Docker Compose v2 CLI for one stack at a time. Every
// call passes -p <project>, --env-file <absolute path> and absolute -f
// paths, and runs with an environment scrubbed of the variables the env
// file decides, so a shell's exports cannot change which stack is touched.
type Compose struct {
	Runner  Runner
	Scrub   string   // prefix of the app's variables, removed from compose's environment (e.g. KTRDR_)
	Command []string // "docker", "compose" or "docker-compose"
	Version string
}

// ErrNoCompose reports that no Compose v2 CLI was found.
var ErrNoCompose = errors.New("no Docker Compose v2 CLI found")

// DetectCompose finds the Compose v2 CLI: `docker compose`, else a
// `docker-compose` that is version 2 or later.
func DetectCompose(ctx context.Context, r Runner) (*Compose, error) {
	var tried []string
	for _, cand := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		args := append(append([]string{}, cand[1:]...), "version", "--short")
		out, err := r.Run(ctx, Cmd{Name: cand[0], Args: args})
		name := strings.Join(cand, " ")
		if err != nil {
			tried = append(tried, fmt.Sprintf("`%s version`: %v", name, firstLine(err.Error())))
			continue
		}
		v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
		major, _, _ := strings.Cut(v, ".")
		if n, err := strconv.Atoi(major); err != nil || n < 2 {
			tried = append(tried, fmt.Sprintf("`%s` is version %q, not 2 or later", name, v))
			continue
		}
		return &Compose{Runner: r, Command: cand, Version: v}, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrNoCompose, strings.Join(tried, "; "))
}

// Stack is one compose project on disk.
type Stack struct {
	Project string   // compose project name (the instance id)
	Dir     string   // project directory: relative paths in the files resolve here
	Files   []string // compose files, absolute
	EnvFile string   // absolute path of the env file
	// Secrets, if any, reach compose as one more --env-file that has no
	// path on disk where it can be avoided (SecretEnv); nothing else of
	// the stack names them.
	Secrets *SecretEnv
}

// cmd is the compose command for args on stack s, and the function that
// releases what it holds (the secrets' file) once the command returned.
func (c *Compose) cmd(s Stack, args ...string) (Cmd, func(), error) {
	if s.Project == "" || s.EnvFile == "" || len(s.Files) == 0 {
		return Cmd{}, nil, fmt.Errorf("compose %s: project, env file and compose files are required", strings.Join(args, " "))
	}
	if !filepath.IsAbs(s.Dir) {
		return Cmd{}, nil, fmt.Errorf("compose: project directory %q is not absolute", s.Dir)
	}
	if !filepath.IsAbs(s.EnvFile) {
		return Cmd{}, nil, fmt.Errorf("compose: env file %q is not absolute", s.EnvFile)
	}
	full := append([]string{}, c.Command[1:]...)
	full = append(full, "-p", s.Project)
	cmd := Cmd{Name: c.Command[0], Dir: s.Dir, Env: composeEnv(s.EnvFile, c.Scrub, s.Secrets.Keys())}
	release := func() {}
	if s.Secrets != nil {
		// Before the sandbox's own file: where both set a key, it wins.
		var path string
		var err error
		if cmd, path, release, err = s.Secrets.attach(cmd); err != nil {
			return Cmd{}, nil, fmt.Errorf("compose %s: %w", strings.Join(args, " "), err)
		}
		full = append(full, "--env-file", path)
	}
	full = append(full, "--env-file", s.EnvFile, "--project-directory", s.Dir)
	for _, f := range s.Files {
		if !filepath.IsAbs(f) {
			release()
			return Cmd{}, nil, fmt.Errorf("compose: file %q is not absolute", f)
		}
		full = append(full, "-f", f)
	}
	cmd.Args = append(full, args...)
	return cmd, release, nil
}

// InterpolationEnv is what compose interpolates a sandbox's files with: the
// caller's environment without the variables that the env file decides
// (those with the app's prefix, and COMPOSE_*), then the env file's values
// (vals; nil for a new sandbox), which win. The stack model is read with
// exactly these, so that it is the stack compose runs.
func InterpolationEnv(vals map[string]string, prefix string) map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "COMPOSE_") || prefix != "" && strings.HasPrefix(k, prefix) {
			continue
		}
		env[k] = v
	}
	for k, v := range vals {
		env[k] = v
	}
	return env
}

// composeEnv is the caller's environment without the variables that the
// env file and the secrets decide, and without COMPOSE_* settings that
// would redirect compose.
func composeEnv(envFile, prefix string, secretKeys []string) []string {
	decided := map[string]bool{}
	for _, k := range secretKeys {
		decided[k] = true
	}
	if data, err := os.ReadFile(envFile); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "export "))
			if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
				decided[strings.TrimSpace(k)] = true
			}
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if decided[k] || strings.HasPrefix(k, "COMPOSE_") || prefix != "" && strings.HasPrefix(k, prefix) {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (c *Compose) Exec(ctx context.Context, s Stack, out io.Writer, args ...string) ([]byte, error) {
	cmd, release, err := c.cmd(s, args...)
	if err != nil {
		return nil, err
	}
	defer release()
	cmd.Stdout, cmd.Stderr = out, out
	if out == nil {
		cmd.Stdout, cmd.Stderr = nil, nil
	}
	return c.Runner.Run(ctx, cmd)
}

// Attach runs argv in the running container of service (docker compose
// exec) with stdin, stdout and stderr passed through, e.g. an interactive
// shell. tty asks compose for a terminal, which needs stdin to be one;
// without it exec gets -T and stdin may be a pipe or a file. The command's
// own exit status comes back as an *ExitError, as compose passes it on.
func (c *Compose) Attach(ctx context.Context, s Stack, service string, tty bool, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if service == "" || len(argv) == 0 {
		return fmt.Errorf("compose exec in stack %s: a service and a command are required", s.Project)
	}
	args := []string{"exec"}
	if !tty {
		args = append(args, "-T")
	}
	cmd, release, err := c.cmd(s, append(append(args, service), argv...)...)
	if err != nil {
		return err
	}
	defer release()
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	_, err = c.Runner.Run(ctx, cmd)
	return err
}

// Up starts the stack detached, building images when build is set.
func (c *Compose) Up(ctx context.Context, s Stack, build bool, out io.Writer) error {
	args := []string{"up", "-d", "--remove-orphans"}
	if build {
		args = append(args, "--build")
	}
	_, err := c.Exec(ctx, s, out, args...)
	if err != nil {
		return fmt.Errorf("start stack %s: %w", s.Project, err)
	}
	return nil
}

// Create makes the stack's networks, volumes and containers without
// starting any (up --no-start), building images when build is set.
func (c *Compose) Create(ctx context.Context, s Stack, build bool, out io.Writer) error {
	args := []string{"up", "--no-start", "--remove-orphans"}
	if build {
		args = append(args, "--build")
	}
	if _, err := c.Exec(ctx, s, out, args...); err != nil {
		return fmt.Errorf("create the containers of stack %s: %w", s.Project, err)
	}
	return nil
}

// Down stops and removes the stack's containers and network, and its
// volumes when volumes is set.
func (c *Compose) Down(ctx context.Context, s Stack, volumes bool, out io.Writer) error {
	return c.DownTimeout(ctx, s, volumes, out, 10)
}

// down is Down with the seconds containers get to stop (a cleanup after an
// interrupt has about five seconds in all before mage exits).
func (c *Compose) DownTimeout(ctx context.Context, s Stack, volumes bool, out io.Writer, stopSeconds int) error {
	args := []string{"down", "--remove-orphans", "--timeout", strconv.Itoa(stopSeconds)}
	if volumes {
		args = append(args, "--volumes")
	}
	if _, err := c.Exec(ctx, s, out, args...); err != nil {
		return fmt.Errorf("stop stack %s: %w", s.Project, err)
	}
	return nil
}

// Logs streams the stack's logs (one service or all) to out.
func (c *Compose) Logs(ctx context.Context, s Stack, service string, follow bool, tail int, out io.Writer) error {
	args := []string{"logs", "--no-color"}
	if follow {
		args = append(args, "--follow")
	}
	if tail > 0 {
		args = append(args, "--tail", strconv.Itoa(tail))
	}
	if service != "" {
		args = append(args, "--", service)
	}
	_, err := c.Exec(ctx, s, out, args...)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of stack %s: %w", s.Project, err)
	}
	return nil
}

// LogTail returns the last n log lines of one service.
func (c *Compose) LogTail(ctx context.Context, s Stack, service string, n int) (string, error) {
	out, err := c.Exec(ctx, s, nil, "logs", "--no-color", "--no-log-prefix", "--tail", strconv.Itoa(n), service)
	if err != nil {
		return "", fmt.Errorf("logs of %s in stack %s: %w", service, s.Project, err)
	}
	return string(out), nil
}

// ServiceState is one container of a stack as docker reports it.
type ServiceState struct {
	Service  string `json:"service"`
	State    string `json:"state"`  // running, exited, restarting, created, …
	Health   string `json:"health"` // healthy, unhealthy, starting, or ""
	Status   string `json:"status"` // docker's words, e.g. "Up 3 minutes (healthy)"
	Instance string `json:"-"`      // the org.ktrdr.sandbox.instance label
}

// StackState is every container of one compose project.
type StackState struct {
	Project     string
	WorkingDirs []string // the folders compose ran in (checkout roots), from the containers' labels
	Services    map[string]ServiceState
	RunningIDs  []string // the full ids of its running containers (to join docker stats with)
}

// Running counts the services whose container is running.
func (s *StackState) Running() int {
	n := 0
	if s == nil {
		return 0
	}
	for _, st := range s.Services {
		if st.State == "running" {
			n++
		}
	}
	return n
}

// psStateFormat makes docker ps print one JSON object per container with
// only the fields StackStates reads: {{json .}} renders every field and is
// about five times slower.
const psStateFormat = `{"ID":{{json .ID}},"Labels":{{json .Labels}},"State":{{json .State}},"Status":{{json .Status}}}`

// StackStates returns the state of every compose project on the engine,
// from one `docker ps` call.
// instanceLabel is the profile's InstanceLabel: every container of a stack
// carries it, naming its instance, and teardown proves ownership with it.
func StackStates(ctx context.Context, r Runner, instanceLabel string) (map[string]*StackState, error) {
	out, err := r.Run(ctx, Cmd{Name: "docker", Args: []string{"ps", "-a", "--no-trunc",
		"--filter", "label=com.docker.compose.project", "--format", psStateFormat}})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return ParseDockerPS(out, instanceLabel)
}

func ParseDockerPS(out []byte, instanceLabel string) (map[string]*StackState, error) {
	states := map[string]*StackState{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var row struct {
			ID     string
			Labels string
			State  string
			Status string
		}
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			return nil, fmt.Errorf("parse docker ps line %q: %w", firstLine(line), err)
		}
		labels := ParseLabels(row.Labels)
		project := labels["com.docker.compose.project"]
		if project == "" {
			continue
		}
		st := states[project]
		if st == nil {
			st = &StackState{Project: project, Services: map[string]ServiceState{}}
			states[project] = st
		}
		if wd := labels["com.docker.compose.project.working_dir"]; wd != "" && !slices.Contains(st.WorkingDirs, wd) {
			st.WorkingDirs = append(st.WorkingDirs, wd)
		}
		svc := labels["com.docker.compose.service"]
		health := ""
		switch {
		case strings.Contains(row.Status, "(healthy)"):
			health = "healthy"
		case strings.Contains(row.Status, "(unhealthy)"):
			health = "unhealthy"
		case strings.Contains(row.Status, "(health: starting)"):
			health = "starting"
		}
		if row.State == "running" && row.ID != "" {
			st.RunningIDs = append(st.RunningIDs, row.ID)
		}
		st.Services[svc] = ServiceState{Service: svc, State: row.State, Health: health, Status: row.Status, Instance: labels[instanceLabel]}
	}
	return states, nil
}

// ParseLabels splits docker's "k=v,k=v" label list. Values may contain
// commas; a part without "=" continues the previous value.
func ParseLabels(s string) map[string]string {
	m := map[string]string{}
	last := ""
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.ContainsAny(k, " ") {
			if last != "" {
				m[last] += "," + part
			}
			continue
		}
		m[k] = v
		last = k
	}
	return m
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
