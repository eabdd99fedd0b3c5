package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
	"github.com/ktrdr/sandboxkit/sandbox/gate"
)

// Hooks after start. A hook is a command that runs in a service of the
// stack once the stack is started and the checks of what that service
// depends on have passed, and before the gate can pass: a database
// migration, a seed. Each is a gate check of its own (gate.Check.Once):
// run once, its time in the report, its failure the gate's failure with
// the tail of its output. Hooks come from three places, in this order:
//
//   - derived from the file, as the rest of the stack is: a service that
//     bind-mounts the checkout's alembic/ folder runs ktrdr's migration,
//     `/app/.venv/bin/alembic upgrade head` (the API's service first when
//     several mount it);
//   - the compose file's extension, for a project:
//     x-sandbox: {hooks: [{name: seed, service: backend, command: [python, seed.py]}]};
//   - the user's config.json, for a person: {"hooks": [{…same…}]}.
//
// A hook with the name of an earlier one replaces it (a project may
// redefine "migrations"). Hooks run one after the other, in that order; a
// command is an argument list run with `docker compose exec -T` (a string is
// run by the container's sh -c, never by a shell here).

// Hook is one step after start.
type Hook struct {
	Name    string   `json:"name"`
	Service string   `json:"service"`
	Command []string `json:"command"`
	// Timeout bounds the hook (default DefaultHookTimeout); the gate's own
	// timeout bounds it too.
	Timeout time.Duration `json:"timeout_ns,omitempty"`
	Source  string        `json:"source"` // "derived (mounts alembic/)", "x-sandbox", "config.json"
}

// DefaultHookTimeout bounds a hook that names no timeout.
const DefaultHookTimeout = 5 * time.Minute

// MigrationCommand is ktrdr's migration, run where the checkout's alembic/
// is mounted.
var MigrationCommand = []string{"/app/.venv/bin/alembic", "upgrade", "head"}

// HookSpec is how the compose extension and config.json write a hook.
type HookSpec struct {
	Name    string          `json:"name"`
	Service string          `json:"service"`
	Command json.RawMessage `json:"command"`
	Timeout string          `json:"timeout,omitempty"` // "90s", "5m"
}

// HookError refuses a hook declaration.
type HookError struct {
	Source string
	Hook   string
	Reason string
}

func (e *HookError) Error() string {
	return fmt.Sprintf("hook %q of %s: %s", e.Hook, e.Source, e.Reason)
}

func (h HookSpec) hook(source string, services map[string]types.ServiceConfig) (Hook, error) {
	bad := func(format string, a ...any) (Hook, error) {
		return Hook{}, &HookError{Source: source, Hook: h.Name, Reason: fmt.Sprintf(format, a...)}
	}
	if h.Name == "" {
		return bad("it has no name")
	}
	if _, ok := services[h.Service]; !ok {
		return bad("service %q is not a service of the stack (%s)", h.Service, strings.Join(slices.Sorted(func(yield func(string) bool) {
			for n := range services {
				if !yield(n) {
					return
				}
			}
		}), ", "))
	}
	hk := Hook{Name: h.Name, Service: h.Service, Source: source}
	var list []string
	var line string
	switch {
	case json.Unmarshal(h.Command, &list) == nil && len(list) > 0 && list[0] != "":
		hk.Command = list
	case json.Unmarshal(h.Command, &line) == nil && strings.TrimSpace(line) != "":
		hk.Command = []string{"sh", "-c", line} // in the container, as compose's own string commands
	default:
		return bad("command must be a non-empty list of arguments (or one string for the container's sh)")
	}
	if h.Timeout != "" {
		d, err := time.ParseDuration(h.Timeout)
		if err != nil || d <= 0 {
			return bad("timeout %q is not a duration such as \"90s\"", h.Timeout)
		}
		hk.Timeout = d
	}
	return hk, nil
}

// stackHooks lists the hooks of the stack sf of the checkout at root (sp
// its adapted profile), then the user's.
func stackHooks(sp *Profile, sf *StackFile, root string, user []HookSpec) ([]Hook, error) {
	var hooks []Hook
	add := func(h Hook) {
		if i := slices.IndexFunc(hooks, func(o Hook) bool { return o.Name == h.Name }); i >= 0 {
			hooks[i] = h
			return
		}
		hooks = append(hooks, h)
	}
	if h, ok := migrationHook(sp, sf, root); ok {
		add(h)
	}
	specs, err := extensionHooks(sf)
	if err != nil {
		return nil, err
	}
	for _, s := range specs {
		h, err := s.hook("x-sandbox of "+filepath.Base(sf.Path), sf.project.Services)
		if err != nil {
			return nil, err
		}
		add(h)
	}
	for _, s := range user {
		h, err := s.hook("config.json", sf.project.Services)
		if err != nil {
			return nil, err
		}
		add(h)
	}
	return hooks, nil
}

// migrationHook is ktrdr's migration, for the service that mounts the
// checkout's alembic/ (the API's service first).
func migrationHook(sp *Profile, sf *StackFile, root string) (Hook, bool) {
	alembic := filepath.Join(root, "alembic")
	var mounts []string
	for name, svc := range sf.project.Services {
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeBind && filepath.Clean(v.Source) == alembic {
				mounts = append(mounts, name)
				break
			}
		}
	}
	if len(mounts) == 0 {
		return Hook{}, false
	}
	slices.Sort(mounts)
	svc := mounts[0]
	if api, ok := sp.Rule(sp.APIPortKey); ok && slices.Contains(mounts, api.Service) {
		svc = api.Service
	}
	return Hook{Name: "migrations", Service: svc, Command: slices.Clone(MigrationCommand), Source: "derived (mounts alembic/)"}, true
}

// extensionHooks reads x-sandbox.hooks of the file.
func extensionHooks(sf *StackFile) ([]HookSpec, error) {
	ext, ok := sf.project.Extensions["x-sandbox"]
	if !ok {
		return nil, nil
	}
	data, err := json.Marshal(ext)
	if err != nil {
		return nil, err
	}
	var x struct {
		Hooks []HookSpec `json:"hooks"`
	}
	if err := json.Unmarshal(data, &x); err != nil {
		return nil, &HookError{Source: "x-sandbox of " + filepath.Base(sf.Path), Reason: "hooks must be a list of {name, service, command}: " + err.Error()}
	}
	return x.Hooks, nil
}

// HookFailedError is a hook that ran and failed: its exit code and the last
// lines of its output.
type HookFailedError struct {
	Hook Hook
	Err  error
	Tail string
}

func (e *HookFailedError) Error() string {
	msg := fmt.Sprintf("%s in %s (%s): %v", strings.Join(e.Hook.Command, " "), e.Hook.Service, e.Hook.Source, e.Err)
	if e.Tail != "" {
		msg += "\n" + e.Tail
	}
	return msg
}

// HookLines is how many lines of a failed hook's output the report keeps.
const HookLines = 20

// hookChecks turns hooks into gate checks: each needs the checks of the
// services its service depends on, and the hook before it.
func hookChecks(c *driver.Compose, stack driver.Stack, sf *StackFile, checks []gate.Check, hooks []Hook) []gate.Check {
	var out []gate.Check
	prev := ""
	for _, h := range hooks {
		var needs []string
		deps := sf.project.Services[h.Service].DependsOn
		for _, ch := range checks {
			if _, ok := deps[ch.Service]; ok {
				needs = append(needs, ch.Name)
			}
		}
		if prev != "" {
			needs = append(needs, prev)
		}
		name := "Hook " + h.Name + " (" + h.Service + ")"
		prev = name
		out = append(out, gate.Check{Name: name, Service: h.Service, Once: true, Needs: needs, Probe: hookProbe(c, stack, h)})
	}
	return out
}

func hookProbe(c *driver.Compose, stack driver.Stack, h Hook) gate.Probe {
	return func(ctx context.Context) error {
		timeout := h.Timeout
		if timeout <= 0 {
			timeout = DefaultHookTimeout
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		var out bytes.Buffer
		args := append([]string{"exec", "-T", h.Service}, h.Command...)
		if _, err := c.Exec(ctx, stack, &out, args...); err != nil {
			return &HookFailedError{Hook: h, Err: hookCause(err), Tail: lastLinesOf(out.String(), HookLines)}
		}
		return nil
	}
}

// hookCause is the short reason of a failed exec: its exit status.
func hookCause(err error) error {
	var ee *driver.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("exit status %d", ee.Code)
	}
	return err
}

// lastLinesOf is the last n lines of s.
func lastLinesOf(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
