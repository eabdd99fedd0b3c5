package sandbox

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// servePort serves body with status 200 on a local port and returns the port.
func servePort(t *testing.T, body string) int {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(body)) }))
	t.Cleanup(s.Close)
	_, p, err := net.SplitHostPort(s.Listener.Addr().String())
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}

func TestGateChecksFromProfile(t *testing.T) {
	p := KTRDR()
	ports := p.PortsFor(3)
	checks := p.GateChecks("127.0.0.1", ports)
	require.Len(t, checks, len(p.Checks))
	for i, c := range checks {
		assert.Equal(t, p.Checks[i].Name, c.Name)
		assert.Equal(t, p.Checks[i].Service, c.Service)
		assert.NotNil(t, c.Probe, c.Name)
	}
}

// The probes are built from the Check data alone: point a profile's checks
// at httptest servers by port and see each kind judged correctly.
func TestGateChecksProbeKinds(t *testing.T) {
	health := servePort(t, `{"status":"ok"}`)
	workers := servePort(t, `[1,2,3]`)
	p := &Profile{
		Services: []Service{{Name: "api"}, {Name: "w1", Worker: true}, {Name: "w2", Worker: true}, {Name: "w3", Worker: true}, {Name: "w4", Worker: true}},
		Checks: []Check{
			{Name: "health", Service: "api", Kind: CheckHTTP, PortKey: "A", Path: "/h"},
			{Name: "workers (profile count)", Service: "api", Kind: CheckJSONArray, PortKey: "W", Path: "/w"},
			{Name: "workers (explicit)", Service: "api", Kind: CheckJSONArray, PortKey: "W", Path: "/w", MinItems: 3},
			{Name: "tcp", Service: "api", Kind: CheckTCP, PortKey: "A"},
			{Name: "no port", Service: "api", Kind: CheckHTTP, PortKey: "MISSING"},
			{Name: "odd kind", Service: "api", Kind: "smoke-signal", PortKey: "A"},
		},
	}
	checks := p.GateChecks("127.0.0.1", map[string]int{"A": health, "W": workers})
	want := []string{
		"",
		"array has 3 entries, want ≥ 4",
		"",
		"",
		`check "no port": no port for MISSING`,
		`check "odd kind": unknown kind "smoke-signal"`,
	}
	require.Len(t, checks, len(want))
	for i, c := range checks {
		err := c.Probe(t.Context())
		if want[i] == "" {
			assert.NoError(t, err, c.Name)
		} else if assert.Error(t, err, c.Name) {
			assert.Contains(t, err.Error(), want[i], c.Name)
		}
	}
}
