package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/ktrdr/sandboxkit/sandbox/apiurl"
)

// A sandbox runs on one Docker engine: the local one, or another machine's
// reached through a Docker context (`docker context create big --docker
// host=ssh://me@big`). Create and init record the context in .env.sandbox
// (SANDBOX_CONTEXT) and the registry; every docker and compose call for the
// sandbox then carries --context, and every URL, gate probe and port check
// uses the engine's host: the context endpoint's host for tcp:// and
// ssh://, localhost for a local socket. On a remote engine nothing binds
// local ports, and the checkout's folders are not bind-mounted (they do not
// exist there): see sync.go.

// Engine is the Docker engine a sandbox runs on.
type Engine struct {
	Context string `json:"context,omitempty"` // "" is the local engine (docker's own default)
	Host    string `json:"host,omitempty"`    // where its published ports are reached; "" is localhost
}

// Remote reports whether the engine is reached over the network, so that
// its published ports live on another host.
func (e Engine) Remote() bool { return e.Host != "" && e.Host != "localhost" }

// Name is how a person calls the engine: its context, or "local".
func (e Engine) Name() string {
	if e.Context == "" {
		return "local"
	}
	return e.Context
}

// URLHost is the host part of URLs to the engine's published ports.
func (e Engine) URLHost() string {
	if !e.Remote() {
		return "localhost"
	}
	if strings.Contains(e.Host, ":") {
		return "[" + e.Host + "]"
	}
	return e.Host
}

// ProbeHost is the address the gate probes: 127.0.0.1 locally.
func (e Engine) ProbeHost() string {
	if !e.Remote() {
		return "127.0.0.1"
	}
	return e.Host
}

// ContextError reports a Docker context that cannot be used for a sandbox.
type ContextError struct {
	Context string
	Reason  string
	Err     error
}

func (e *ContextError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("docker context %s: %s: %v", e.Context, e.Reason, e.Err)
	}
	return fmt.Sprintf("docker context %s: %s", e.Context, e.Reason)
}
func (e *ContextError) Unwrap() error { return e.Err }

// ResolveEngine looks up a Docker context and checks that its engine
// answers. "" is the local engine and is not looked up.
func ResolveEngine(ctx context.Context, r driver.Runner, name string) (Engine, error) {
	if name == "" {
		return Engine{}, nil
	}
	if strings.HasPrefix(name, "-") || strings.ContainsAny(name, " \t\n/") {
		return Engine{}, &ContextError{Context: name, Reason: "not a context name"}
	}
	out, err := r.Run(ctx, driver.Cmd{Name: "docker", Args: []string{"context", "inspect", "--format", "{{.Endpoints.docker.Host}}", name}})
	if err != nil {
		var ee *driver.ExitError
		if errors.As(err, &ee) && strings.Contains(strings.ToLower(ee.Stderr), "not found") {
			return Engine{}, &ContextError{Context: name, Reason: "does not exist", Err: err}
		}
		return Engine{}, &ContextError{Context: name, Reason: "cannot be read (docker context inspect failed)", Err: err}
	}
	host, err := endpointHost(strings.TrimSpace(string(out)))
	if err != nil {
		return Engine{}, &ContextError{Context: name, Reason: "its endpoint cannot be used", Err: err}
	}
	e := Engine{Context: name, Host: host}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := r.Run(pctx, driver.Cmd{Name: "docker", Args: []string{"--context", name, "version", "--format", "{{.Server.Version}}"}}); err != nil {
		return Engine{}, &ContextError{Context: name, Reason: "its engine does not answer", Err: err}
	}
	return e, nil
}

// endpointHost is the host of a Docker endpoint: tcp://h:2375 and
// ssh://user@h:22 give h; a unix socket or npipe is this machine ("").
func endpointHost(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	switch u.Scheme {
	case "unix", "npipe":
		return "", nil
	case "tcp", "ssh", "http", "https":
		h := u.Hostname()
		if h == "" {
			return "", fmt.Errorf("endpoint %q has no host", endpoint)
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() || h == "localhost" {
			return "", nil
		}
		if !apiurl.ValidHost(h) {
			return "", fmt.Errorf("endpoint %q: %q is not a host name or IP address", endpoint, h)
		}
		return h, nil
	}
	return "", fmt.Errorf("endpoint %q: scheme %q is not tcp, ssh or unix", endpoint, u.Scheme)
}

// on returns a manager whose docker and compose calls go to engine e.
func (m *Manager) on(e Engine) *Manager {
	if e == m.engine {
		return m
	}
	base := m.base
	if base == nil {
		base = m.Runner
	}
	n := &Manager{Profile: m.Profile, Home: m.Home, Events: m.Events, Log: m.Log, Now: m.Now, Subnets: m.Subnets, MinFreeMemory: m.MinFreeMemory, AllowSync: m.AllowSync, SecretsCommand: m.SecretsCommand, lazySecrets: m.lazySecrets, engine: e, base: base, Runner: base, startProbe: m.startProbe}
	if e.Context != "" {
		n.Runner = driver.ContextRunner{Runner: base, Context: e.Context}
	}
	return n
}
