package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Container is one container of a compose project as the engine reports
// it: what compose made it from (service, dependencies, healthcheck) and
// where it stands.
type Container struct {
	ID      string
	Name    string
	Service string
	// DependsOn is compose's own record of the service's depends_on
	// (its com.docker.compose.depends_on label): what the container waits
	// for, whatever files and overrides decided it.
	DependsOn   []Dependency
	Healthcheck *Healthcheck // nil: the container has none (neither the file nor the image gives one)
	State       ContainerState
}

// Dependency is one depends_on entry of a service.
type Dependency struct {
	Service   string
	Condition string // service_started, service_healthy, service_completed_successfully
}

// Healthcheck is a container's healthcheck as the engine runs it.
type Healthcheck struct {
	Test        []string // ["CMD", …], ["CMD-SHELL", "…"]; ["NONE"] is turned into a nil Healthcheck
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

// ContainerState is where a container stands.
type ContainerState struct {
	Status     string // created, running, restarting, exited, dead, paused, removing
	ExitCode   int
	Restarting bool
	Restarts   int // the engine's restart count
}

// Down reports a container that has stopped for good or keeps restarting:
// what it waits for will not come.
func (s ContainerState) Down() bool {
	return s.Restarting || s.Status == "exited" || s.Status == "dead" || s.Status == "restarting"
}

// String is the state in docker's words, with the exit status when it has one.
func (s ContainerState) String() string {
	switch {
	case s.Restarting || s.Status == "restarting":
		return fmt.Sprintf("restarting (last exit status %d)", s.ExitCode)
	case s.Status == "exited" || s.Status == "dead":
		return fmt.Sprintf("%s with status %d", s.Status, s.ExitCode)
	}
	return s.Status
}

// Interval, timeout and start period as docker defaults them (0 in the
// container's config means the default).
const (
	DefaultHealthInterval = 30 * time.Second
	DefaultHealthTimeout  = 30 * time.Second
	DefaultHealthRetries  = 3
)

// Budget is how long the engine takes at most to call a starting container
// unhealthy: its start period, then retries failed checks an interval apart.
func (h *Healthcheck) Budget() time.Duration {
	interval := h.Interval
	if interval <= 0 {
		interval = DefaultHealthInterval
	}
	retries := h.Retries
	if retries <= 0 {
		retries = DefaultHealthRetries
	}
	return h.StartPeriod + interval*time.Duration(retries)
}

// ProjectContainers lists the containers of a compose project (one-off
// `compose run` containers left out) with their dependencies, healthchecks
// and states: one docker ps and one docker inspect call.
func ProjectContainers(ctx context.Context, r Runner, project string) ([]Container, error) {
	out, err := r.Run(ctx, Cmd{Name: "docker", Args: []string{"ps", "-a", "-q", "--no-trunc",
		"--filter", "label=com.docker.compose.project=" + project,
		"--filter", "label=com.docker.compose.oneoff=False"}})
	if err != nil {
		return nil, fmt.Errorf("list the containers of %s: %w", project, err)
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return nil, nil
	}
	out, err = r.Run(ctx, Cmd{Name: "docker", Args: append([]string{"inspect", "--type", "container"}, ids...)})
	if err != nil {
		return nil, fmt.Errorf("inspect the containers of %s: %w", project, err)
	}
	return ParseInspect(out)
}

// inspected is the part of `docker inspect` output ParseInspect reads.
type inspected struct {
	ID           string `json:"Id"`
	Name         string
	RestartCount int
	State        struct {
		Status     string
		Restarting bool
		ExitCode   int
	}
	Config struct {
		Labels      map[string]string
		Healthcheck *struct {
			Test        []string
			Interval    int64
			Timeout     int64
			StartPeriod int64
			Retries     int
		}
	}
}

// ParseInspect reads the JSON array `docker inspect` prints for containers.
func ParseInspect(data []byte) ([]Container, error) {
	var raw []inspected
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse docker inspect output: %w", err)
	}
	out := make([]Container, 0, len(raw))
	for _, c := range raw {
		if c.ID == "" {
			return nil, errors.New("parse docker inspect output: a container without an Id")
		}
		k := Container{
			ID:      c.ID,
			Name:    strings.TrimPrefix(c.Name, "/"),
			Service: c.Config.Labels["com.docker.compose.service"],
			State:   ContainerState{Status: c.State.Status, ExitCode: c.State.ExitCode, Restarting: c.State.Restarting, Restarts: c.RestartCount},
		}
		deps, err := ParseDependsOn(c.Config.Labels["com.docker.compose.depends_on"])
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", k.Name, err)
		}
		k.DependsOn = deps
		if h := c.Config.Healthcheck; h != nil && len(h.Test) > 0 && h.Test[0] != "NONE" {
			if h.Interval < 0 || h.Timeout < 0 || h.StartPeriod < 0 || h.Retries < 0 {
				return nil, fmt.Errorf("container %s: a healthcheck with a negative setting", k.Name)
			}
			k.Healthcheck = &Healthcheck{Test: h.Test, Interval: time.Duration(h.Interval), Timeout: time.Duration(h.Timeout),
				StartPeriod: time.Duration(h.StartPeriod), Retries: h.Retries}
		}
		out = append(out, k)
	}
	return out, nil
}

// ParseDependsOn reads compose's depends_on label: comma-separated
// "service:condition[:restart[:required]]" entries.
func ParseDependsOn(label string) ([]Dependency, error) {
	if strings.TrimSpace(label) == "" {
		return nil, nil
	}
	var deps []Dependency
	for _, part := range strings.Split(label, ",") {
		f := strings.Split(part, ":")
		if len(f) < 2 || f[0] == "" {
			return nil, fmt.Errorf("depends_on label entry %q is not service:condition", part)
		}
		switch f[1] {
		case "service_started", "service_healthy", "service_completed_successfully":
		default:
			return nil, fmt.Errorf("depends_on label entry %q: unknown condition %q", part, f[1])
		}
		deps = append(deps, Dependency{Service: f[0], Condition: f[1]})
	}
	return deps, nil
}

// StartContainers starts the containers ids (docker start; one that runs
// already stays as it is).
func StartContainers(ctx context.Context, r Runner, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := r.Run(ctx, Cmd{Name: "docker", Args: append([]string{"start"}, ids...)}); err != nil {
		return fmt.Errorf("start container %s: %w", strings.Join(shortIDs(ids), ", "), err)
	}
	return nil
}

// RunHealthTest runs a healthcheck's test once in container id with docker
// exec, as the engine would: ["CMD", prog, args…] runs prog, ["CMD-SHELL",
// cmd] runs /bin/sh -c cmd. It returns nil when the test passes; a failing
// test is an *ExitError carrying its output.
func RunHealthTest(ctx context.Context, r Runner, id string, h *Healthcheck) error {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultHealthTimeout
	}
	var argv []string
	switch {
	case len(h.Test) >= 2 && h.Test[0] == "CMD":
		argv = h.Test[1:]
	case len(h.Test) == 2 && h.Test[0] == "CMD-SHELL":
		argv = []string{"/bin/sh", "-c", h.Test[1]}
	default:
		return fmt.Errorf("healthcheck test %q: not a CMD or CMD-SHELL test", h.Test)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := r.Run(ctx, Cmd{Name: "docker", Args: append([]string{"exec", id}, argv...)})
	return err
}

// InspectState returns where container id stands.
func InspectState(ctx context.Context, r Runner, id string) (ContainerState, error) {
	out, err := r.Run(ctx, Cmd{Name: "docker", Args: []string{"inspect", "--type", "container", id}})
	if err != nil {
		return ContainerState{}, fmt.Errorf("inspect container %s: %w", shortID(id), err)
	}
	cs, err := ParseInspect(out)
	if err != nil {
		return ContainerState{}, err
	}
	if len(cs) != 1 {
		return ContainerState{}, fmt.Errorf("inspect container %s: %d answers", shortID(id), len(cs))
	}
	return cs[0].State, nil
}

// WaitContainer waits until container id stops and returns its exit status.
func WaitContainer(ctx context.Context, r Runner, id string) (int, error) {
	out, err := r.Run(ctx, Cmd{Name: "docker", Args: []string{"wait", id}})
	if err != nil {
		return 0, fmt.Errorf("wait for container %s: %w", shortID(id), err)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("wait for container %s: exit status %q is not a number", shortID(id), strings.TrimSpace(string(out)))
	}
	return code, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func shortIDs(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = shortID(id)
	}
	return out
}

// ProjectVolumes lists the names of the volumes compose made for project.
func ProjectVolumes(ctx context.Context, r Runner, project string) ([]string, error) {
	out, err := r.Run(ctx, Cmd{Name: "docker", Args: []string{"volume", "ls", "-q", "--filter", "label=com.docker.compose.project=" + project}})
	if err != nil {
		return nil, fmt.Errorf("list the volumes of %s: %w", project, err)
	}
	return strings.Fields(string(out)), nil
}
