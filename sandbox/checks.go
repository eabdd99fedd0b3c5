package sandbox

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/ktrdr/sandboxkit/sandbox/gate"
)

// GateChecks builds the gate's checks from the profile's Check data: each
// probes host at the port its PortKey names in ports. A JSON-array check
// with MinItems 0 wants one entry per worker service.
func (p *Profile) GateChecks(host string, ports map[string]int) []gate.Check {
	out := make([]gate.Check, 0, len(p.Checks))
	for _, c := range p.Checks {
		probe := p.probeFor(c, host, ports)
		if c.Kind == CheckPostgres && c.Password != "" {
			// The gate authenticates; the start's readiness (below) only
			// asks whether the server accepts connections, as pg_isready.
			probe = p.authProbe(c, host, ports)
		}
		out = append(out, gate.Check{Name: c.Name, Service: c.Service, Probe: probe})
	}
	return out
}

// authProbe is the database check that logs in with the file's user and
// password.
func (p *Profile) authProbe(c Check, host string, ports map[string]int) gate.Probe {
	port, ok := ports[c.PortKey]
	if !ok || port <= 0 {
		return p.probeFor(c, host, ports)
	}
	return gate.PostgresAuthProbe(net.JoinHostPort(host, strconv.Itoa(port)), c.User, c.Password, c.Database)
}

func (p *Profile) probeFor(c Check, host string, ports map[string]int) gate.Probe {
	port, ok := ports[c.PortKey]
	if !ok || port <= 0 {
		err := fmt.Errorf("check %q: no port for %s", c.Name, c.PortKey)
		return func(context.Context) error { return err }
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	u := "http://" + addr + c.Path
	switch c.Kind {
	case CheckHTTP:
		return gate.HTTPProbe(nil, u, c.Status)
	case CheckJSONArray:
		want := c.MinItems
		if want == 0 {
			want = p.WorkerCount()
		}
		return gate.JSONArrayProbe(nil, u, want)
	case CheckTCP:
		return gate.TCPProbe(addr)
	case CheckPostgres:
		return gate.PostgresProbe(addr, c.User, c.Database)
	default:
		err := fmt.Errorf("check %q: unknown kind %q", c.Name, c.Kind)
		return func(context.Context) error { return err }
	}
}

// ReadinessProbes are the gate's own checks of the services that answer
// from outside, by service: what the layered start asks, instead of
// running a healthcheck inside the container, when something waits for
// one of them to be healthy. Each tests what the file's healthchecks test
// (PostgreSQL accepts the file's user and database, the API's health
// endpoint answers, the Jaeger UI answers); the workers' registration is
// not the backend's health and is left out.
func (p *Profile) ReadinessProbes(host string, ports map[string]int) map[string]gate.Probe {
	probes := map[string][]gate.Probe{}
	for _, c := range p.Checks {
		if c.Kind == CheckJSONArray {
			continue
		}
		probes[c.Service] = append(probes[c.Service], p.probeFor(c, host, ports))
	}
	out := make(map[string]gate.Probe, len(probes))
	for svc, ps := range probes {
		out[svc] = func(ctx context.Context) error {
			for _, probe := range ps {
				if err := probe(ctx); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return out
}
