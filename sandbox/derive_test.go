package sandbox

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func loadShape(t *testing.T, path string) (*Profile, *StackFile) {
	t.Helper()
	sf, err := LoadStackFile(t.Context(), path, nil)
	require.NoError(t, err)
	sp, err := KTRDR().ForStack(sf)
	require.NoError(t, err)
	return sp, sf
}

func serviceNames(p *Profile) []string {
	var out []string
	for _, s := range p.Services {
		out = append(out, s.Name)
	}
	return out
}

func checkNames(p *Profile) []string {
	var out []string
	for _, c := range p.Checks {
		out = append(out, c.Name+"@"+c.Service+":"+c.PortKey)
	}
	return out
}

func TestForStackOnThisProjectsFileIsTheDocumentedProfile(t *testing.T) {
	sp, _ := loadShape(t, filepath.Join("..", "docker-compose.sandbox.yml"))
	base := KTRDR()
	assert.Equal(t, base.Ports, sp.Ports)
	assert.Equal(t, base.Services, sp.Services)
	want := slices.Clone(base.Checks)
	want[0].Password = "localdev" // the file's: the gate logs in with it
	assert.Equal(t, want, sp.Checks)
	assert.Equal(t, base.PortsFor(3), sp.PortsFor(3))
}

func TestForStackJanuaryShape(t *testing.T) {
	sp, sf := loadShape(t, filepath.Join("..", "e2e", "testdata", "january", "docker-compose.sandbox.yml"))
	assert.Equal(t, []string{"db", "backend", "jaeger", "prometheus", "grafana", "backtest-worker-1", "backtest-worker-2", "training-worker-1", "training-worker-2"}, serviceNames(sp))
	assert.Equal(t, 4, sp.WorkerCount())
	assert.Equal(t, KTRDR().PortsFor(2), sp.PortsFor(2), "every variable is documented: the documented rules")
	assert.Equal(t, []string{"Database ready@db:KTRDR_DB_PORT", "Backend healthy@backend:KTRDR_API_PORT", "Workers registered@backend:KTRDR_API_PORT", "Observability ready@jaeger:KTRDR_JAEGER_UI_PORT"}, checkNames(sp))
	assert.Equal(t, "ktrdr", sp.Checks[0].User, "the database user comes from the file's POSTGRES_USER")
	assert.Empty(t, sf.ExternalNetworks)
	db, _ := sf.Service("db")
	assert.True(t, db.Healthy)
	backend, _ := sf.Service("backend")
	assert.True(t, backend.HasBuild)
}

func TestForStackAprilShape(t *testing.T) {
	sp, sf := loadShape(t, filepath.Join("..", "e2e", "testdata", "april", "docker-compose.sandbox.yml"))
	assert.Equal(t, []string{"db", "backend", "backtest-worker-1", "backtest-worker-2", "training-worker-1", "training-worker-2", "assessment-agent-1", "design-agent-1", "mcp-local"}, serviceNames(sp))
	assert.Equal(t, 6, sp.WorkerCount(), "agents register as workers")
	assert.Equal(t, []string{"Database ready@db:KTRDR_DB_PORT", "Backend healthy@backend:KTRDR_API_PORT", "Workers registered@backend:KTRDR_API_PORT"}, checkNames(sp), "no Jaeger UI in the file: no observability check")
	assert.Equal(t, []string{"sbx-e2e-observability"}, sf.ExternalNetworks)
	assert.Equal(t, []string{"sbx-e2e-agent-auth"}, sf.ExternalVolumes)

	// The main stack publishes 5010 and 5020 for its agents: the documented
	// worker rule that would give slot 1 port 5010 does not hold here.
	for _, key := range []string{"KTRDR_DESIGN_AGENT_PORT", "KTRDR_ASSESSMENT_AGENT_PORT", "KTRDR_MCP_PORT", "KTRDR_WORKER_PORT_1"} {
		r, ok := sp.Rule(key)
		require.True(t, ok, key)
		assert.True(t, r.Chosen, key)
	}
	for _, key := range []string{"KTRDR_API_PORT", "KTRDR_DB_PORT", "KTRDR_WORKER_PORT_2"} {
		r, _ := sp.Rule(key)
		assert.False(t, r.Chosen, key)
	}
	design, _ := sp.Rule("KTRDR_DESIGN_AGENT_PORT")
	assert.Equal(t, 5010, design.Slot0)
	urls := map[string]int{}
	for _, e := range sp.Endpoints {
		urls[e.PortKey]++
	}
	assert.Equal(t, 1, urls["KTRDR_WORKER_PORT_1"], "a re-chosen documented port keeps its one URL")
	assert.Equal(t, 1, urls["KTRDR_DESIGN_AGENT_PORT"])

	// Collision-free over slots 0–100 for the chosen rules, and against every slot-0 port.
	slot0 := map[int]string{}
	for _, r := range sp.Ports {
		slot0[r.Port(0)] = r.Key
	}
	for _, r := range sp.Ports {
		if !r.Chosen {
			continue
		}
		for s := 1; s <= RuleSlots; s++ {
			_, clash := slot0[r.Port(s)]
			assert.False(t, clash, "%s slot %d port %d is a slot-0 port", r.Key, s, r.Port(s))
			for _, o := range sp.Ports {
				for os := 0; os <= RuleSlots; os++ {
					if o.Key != r.Key && (o.Chosen || os <= sp.MaxSlot) && o.Port(os) == r.Port(s) {
						t.Errorf("%s slot %d and %s slot %d share port %d", r.Key, s, o.Key, os, r.Port(s))
					}
				}
			}
		}
	}
	// Deterministic.
	again, _ := loadShape(t, filepath.Join("..", "e2e", "testdata", "april", "docker-compose.sandbox.yml"))
	assert.Equal(t, sp.Ports, again.Ports)
}

func TestForStackNeedsTheAPIPort(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker-compose.sandbox.yml"), []byte("services:\n  web:\n    image: x\n    ports: [\"${WEB_PORT:-8080}:80\"]\n"), 0o644))
	sf, err := LoadStackFile(t.Context(), filepath.Join(dir, "docker-compose.sandbox.yml"), nil)
	require.NoError(t, err)
	_, err = KTRDR().ForStack(sf)
	assert.ErrorContains(t, err, "KTRDR_API_PORT")
}

func TestOverrideForStandinAprilShape(t *testing.T) {
	sp, sf := loadShape(t, filepath.Join("..", "e2e", "testdata", "april", "docker-compose.sandbox.yml"))
	data, err := overrideDoc(sp, sf, "ktrdr--x", true, nil, nil)
	require.NoError(t, err)
	var doc struct {
		Services map[string]struct {
			Labels      map[string]string `json:"labels"`
			Image       string            `json:"image"`
			PullPolicy  string            `json:"pull_policy"`
			Entrypoint  []string          `json:"entrypoint"`
			Command     []string          `json:"command"`
			Environment map[string]string `json:"environment"`
			Healthcheck map[string]any    `json:"healthcheck"`
		} `json:"services"`
	}
	require.NoError(t, json.Unmarshal(data, &doc))
	require.Len(t, doc.Services, 9)
	roles := map[string]string{}
	for name, s := range doc.Services {
		assert.Equal(t, "ktrdr--x", s.Labels["org.ktrdr.sandbox.instance"], name)
		assert.Equal(t, "never", s.PullPolicy, name)
		if name == "db" {
			// A real PostgreSQL: its own entrypoint; the file's command and environment stay.
			assert.Equal(t, "ktrdr-postgres:dev", s.Image)
			assert.Equal(t, []string{"/standin", "pg-entrypoint"}, s.Entrypoint)
			assert.Nil(t, s.Command)
			assert.Nil(t, s.Environment)
			continue
		}
		assert.Equal(t, "ktrdr-standin:dev", s.Image, name)
		roles[name] = s.Command[0]
	}
	assert.Equal(t, map[string]string{"backend": "backend", "backtest-worker-1": "worker", "backtest-worker-2": "worker",
		"training-worker-1": "worker", "training-worker-2": "worker", "design-agent-1": "worker", "assessment-agent-1": "worker", "mcp-local": "http"}, roles)
	assert.Equal(t, "agent_design", doc.Services["design-agent-1"].Environment["WORKER_TYPE"])
	assert.Equal(t, "http://ktrdr--x-backend-1:8000", doc.Services["design-agent-1"].Environment["KTRDR_API_URL"], "a container name: unique on a shared network")
	assert.Equal(t, "http://ktrdr--x-design-agent-1-1:5010", doc.Services["design-agent-1"].Environment["WORKER_ENDPOINT_URL"])
	assert.Equal(t, "8100", doc.Services["mcp-local"].Environment["KTRDR_STANDIN_PORTS"])
	for name, svc := range doc.Services {
		assert.Nil(t, svc.Healthcheck, "%s keeps the file's own healthcheck and cadence", name)
	}
	assert.False(t, strings.Contains(string(data), "${"), "nothing left for compose to interpolate")

	// Without a database image the stand-in plays the db too.
	sp.StandinDBImage = ""
	data, err = overrideDoc(sp, sf, "ktrdr--x", true, nil, nil)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &doc))
	assert.Equal(t, "ktrdr-standin:dev", doc.Services["db"].Image)
	assert.Equal(t, []string{"db"}, doc.Services["db"].Command)
}

// Widening the range to 100 slots moves no port of the usual slots, and
// every port of every slot stays distinct (ForStack validates it).
func TestForStackWideRangeMovesNoEarlierPort(t *testing.T) {
	for _, shape := range []string{"january", "april"} {
		t.Run(shape, func(t *testing.T) {
			narrow, sf := loadShape(t, filepath.Join("..", "e2e", "testdata", shape, "docker-compose.sandbox.yml"))
			wide := *KTRDR()
			wide.MaxSlot = 100
			sp, err := wide.ForStack(sf)
			require.NoError(t, err)
			for _, r := range narrow.Ports {
				w, ok := sp.Rule(r.Key)
				require.True(t, ok, r.Key)
				for slot := 1; slot <= narrow.MaxSlot; slot++ {
					assert.Equal(t, r.Port(slot), w.Port(slot), "%s slot %d", r.Key, slot)
				}
			}
		})
	}
}

func TestLiteralHostPortsAreKnownAndChecked(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	require.NoError(t, err)
	defer l.Close()
	lit := l.Addr().(*net.TCPAddr).Port
	file := "services:\n  backend:\n    image: x\n    ports: [\"${KTRDR_API_PORT:-8000}:8000\", \"" + strconv.Itoa(lit) + ":9229\"]\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker-compose.sandbox.yml"), []byte(file), 0o644))
	sf, err := LoadStackFile(t.Context(), filepath.Join(dir, "docker-compose.sandbox.yml"), nil)
	require.NoError(t, err)
	sp, err := KTRDR().ForStack(sf)
	require.NoError(t, err)
	require.Len(t, sp.Literal, 1)
	assert.Equal(t, lit, sp.Literal[0].Slot0)
	assert.Equal(t, "backend", sp.Literal[0].Service)

	// The preflight names the literal port's holder.
	ports := map[string]int{"KTRDR_API_PORT": freePort(t)}
	err = PreflightPorts(t.Context(), nil, sp, 1, ports, "ktrdr--x")
	var pe *PortInUseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, lit, pe.Conflicts[0].Port)
	assert.Equal(t, "backend", pe.Conflicts[0].Service)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
