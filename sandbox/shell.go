package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// ShellOptions are the inputs of Shell.
type ShellOptions struct {
	Dir     string // a folder of the sandbox
	Service string // the service to enter; "" is the API's (the backend)
	// TTY says that Stdin is a terminal: compose gives the shell one. Without
	// it the shell reads its commands from Stdin as a script (exec -T).
	TTY    bool
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// ShellSession is the shell that Shell ran.
type ShellSession struct {
	ID      string // the sandbox
	Service string
	Shell   string // "bash", or "sh" when the image has no bash
}

// ShellServiceError reports a service that the sandbox's stack does not
// have, or that is not running.
type ShellServiceError struct {
	ID, Service string
	NotRunning  bool
	Services    []string // the stack's services, or (NotRunning) those that run
}

func (e *ShellServiceError) Error() string {
	list := "none"
	if len(e.Services) > 0 {
		list = strings.Join(e.Services, ", ")
	}
	if e.NotRunning {
		return fmt.Sprintf("shell in service %s of sandbox %s: it is not running (running: %s)", e.Service, e.ID, list)
	}
	return fmt.Sprintf("shell in sandbox %s: the stack has no service %q (its services: %s)", e.ID, e.Service, list)
}

// Shell runs an interactive shell in a running service of the sandbox that
// holds o.Dir: `docker compose -p <id> --env-file <abs> -f <abs>… exec
// <service> bash`, or sh where the image has no bash (a first `exec -T
// <service> bash --version` tells, by compose's 126 or 127 for a program
// that is not there). The shell's exit status comes back as an error
// wrapping *driver.ExitError; nothing runs on the host but docker. It
// reports EvShellStarting before the shell starts.
func (m *Manager) Shell(ctx context.Context, o ShellOptions) (*ShellSession, error) {
	l, err := m.locate(o.Dir)
	if err != nil {
		return nil, err
	}
	sp, sf, err := m.locatedStack(ctx, &l)
	if err != nil {
		return nil, err
	}
	id := l.Env.InstanceID
	service := o.Service
	if service == "" {
		r, ok := sp.Rule(sp.APIPortKey)
		if !ok || r.Service == "" {
			return nil, fmt.Errorf("shell in sandbox %s: the profile names no service for the API's port %s: pass -service", id, sp.APIPortKey)
		}
		service = r.Service
	}
	var names []string
	for _, s := range sf.all() {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	if !slices.Contains(names, service) {
		return nil, &ShellServiceError{ID: id, Service: service, Services: names}
	}

	m = m.on(l.Env.Engine)
	states, err := driver.StackStates(ctx, m.Runner, m.Profile.InstanceLabel)
	if err != nil {
		return nil, fmt.Errorf("shell in service %s of sandbox %s: %w", service, id, err)
	}
	var running []string
	if st := states[id]; st != nil {
		for _, s := range st.Services {
			if s.State == "running" && !slices.Contains(running, s.Service) {
				running = append(running, s.Service)
			}
		}
	}
	slices.Sort(running)
	if !slices.Contains(running, service) {
		return nil, &ShellServiceError{ID: id, Service: service, NotRunning: true, Services: running}
	}

	c, err := m.Compose(ctx)
	if err != nil {
		return nil, err
	}
	// compose interpolates the whole file for exec too: the secrets go along.
	stack := withSecrets(m.stack(l), m.bestEffortSecrets(ctx))
	session := &ShellSession{ID: id, Service: service, Shell: "bash"}
	if _, err := c.Exec(ctx, stack, nil, "exec", "-T", service, "bash", "--version"); err != nil {
		var ee *driver.ExitError
		if !errors.As(err, &ee) || (ee.Code != 126 && ee.Code != 127) {
			return nil, fmt.Errorf("shell in service %s of sandbox %s: look for bash: %w", service, id, err)
		}
		session.Shell = "sh"
	}
	m.emit(Event{Kind: EvShellStarting, ID: id, Service: service, Source: session.Shell})
	if err := c.Attach(ctx, stack, service, o.TTY, []string{session.Shell}, o.Stdin, o.Stdout, o.Stderr); err != nil {
		var ee *driver.ExitError
		if errors.As(err, &ee) {
			return session, &ShellExitError{Session: *session, Err: ee}
		}
		return session, fmt.Errorf("%s in service %s of sandbox %s: %w", session.Shell, service, id, err)
	}
	return session, nil
}

// ShellExitError is a shell that ended with a status other than 0 (or a
// compose exec that failed: compose passes the shell's status on as its
// own). What they printed went to the terminal already.
type ShellExitError struct {
	Session ShellSession
	Err     *driver.ExitError
}

func (e *ShellExitError) Error() string {
	return fmt.Sprintf("%s in service %s of sandbox %s ended with exit status %d", e.Session.Shell, e.Session.Service, e.Session.ID, e.Err.Code)
}

func (e *ShellExitError) Unwrap() error { return e.Err }
