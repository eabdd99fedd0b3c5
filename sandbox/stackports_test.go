package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox/composefile"
)

const apiLine = "  backend:\n    image: b\n    ports: [\"${KTRDR_API_PORT:-8000}:8000\"]\n"

func loadStackText(t *testing.T, body string) (*StackFile, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "docker-compose.sandbox.yml")
	require.NoError(t, os.WriteFile(path, []byte("services:\n"+apiLine+body), 0o644))
	return LoadStackFile(t.Context(), path, nil)
}

func TestPortPlanRefusesWhatItCannotPlan(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"variable on the container side", "  tools:\n    image: t\n    ports: [\"7000:${TOOLS_PORT:-7000}\"]\n",
			"${TOOLS_PORT} sets the container side"},
		{"one variable, two defaults, two services", "  a:\n    image: a\n    ports: [\"${SHARED_PORT:-7100}:80\"]\n  b:\n    image: b\n    ports: [\"${SHARED_PORT:-7101}:80\"]\n",
			"${SHARED_PORT} also sets the host port of a"},
		{"one variable, two container ports", "  a:\n    image: a\n    ports: [\"${A_PORT:-7100}:80\", \"${A_PORT:-7100}:81\"]\n",
			"${A_PORT} also sets the host port of a"},
		{"a variable starting a host range", "  a:\n    image: a\n    ports: [\"${R_PORT:-9000}-9002:9000-9002\"]\n",
			"a port variable must set exactly one host port"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadStackText(t, c.body)
			var pe *PortPlanError
			require.ErrorAs(t, err, &pe)
			assert.Contains(t, pe.Error(), c.want)
		})
	}
}

func TestPortPlanNamesEveryHostPort(t *testing.T) {
	sf, err := loadStackText(t, ""+
		"  ranged:\n    image: r\n    ports: [\"9100-9102:9100-9102\", \"${RANGED_PORT:-7200}:80\"]\n"+
		"  long:\n    image: l\n    ports:\n      - target: 9300\n        published: \"9300-9301\"\n"+
		"  http:\n    image: h\n    ports: [\"${HTTP_PORT:-80}:80\"]\n"+
		"  hostnet:\n    image: w\n    network_mode: host\n    expose: [\"5099\"]\n    environment: {WORKER_TYPE: backtest}\n"+
		"  tools:\n    image: t\n    profiles: [tools]\n    ports: [\"${TOOLS_PORT:-7300}:80\", \"7301:81\"]\n"+
		"volumes:\n  cache:\n    name: shared-cache\n  own:\n    name: ${COMPOSE_PROJECT_NAME:-x}_own\n  plain: {}\n")
	require.NoError(t, err)
	ranged, ok := sf.Service("ranged")
	require.True(t, ok)
	// compose reads a short-syntax range as one port per entry.
	assert.Equal(t, []FilePort{{Default: 9100, Target: 9100}, {Default: 9101, Target: 9101}, {Default: 9102, Target: 9102},
		{Var: "RANGED_PORT", Default: 7200, Target: 80}}, ranged.Ports, "a range keeps the variable of the service's other entry")
	long, _ := sf.Service("long")
	assert.Equal(t, []FilePort{{Default: 9300, Target: 9300, Range: "9300-9301"}}, long.Ports)
	tools, ok := sf.Service("tools")
	require.True(t, ok, "a profile-only service is planned too")
	assert.Equal(t, []string{"tools"}, tools.Profiles)
	assert.Equal(t, []SharedVolume{{Key: "cache", Name: "shared-cache"}}, sf.SharedVolumes)

	sp, err := KTRDR().ForStack(sf)
	require.NoError(t, err)
	http, ok := sp.Rule("HTTP_PORT")
	require.True(t, ok, "a port below 1024 gets a rule")
	assert.Equal(t, 80, http.Port(0))
	assert.GreaterOrEqual(t, http.Port(1), 1024)
	_, ok = sp.Rule("TOOLS_PORT")
	assert.True(t, ok)
	var literal []string
	for _, r := range sp.Literal {
		literal = append(literal, r.Key+" "+r.Service)
	}
	assert.ElementsMatch(t, []string{"9100:9100 ranged", "9101:9101 ranged", "9102:9102 ranged", "9300:9300 long", "9301:9301 long",
		"5099 (host network) hostnet", "7301:81 tools"}, literal)
	var warned []string
	for _, w := range sf.Warnings {
		warned = append(warned, w.Service+": "+w.Text)
	}
	joined := strings.Join(warned, "\n")
	for _, want := range []string{"ranged: publishes the literal host port 9102", "long: publishes the literal host range 9300-9301",
		"hostnet: uses the host's network", "tools: publishes the literal host port 7301", "volume cache is named shared-cache"} {
		assert.Contains(t, joined, want)
	}
	assert.NotContains(t, joined, "_own", "a name that follows the sandbox is not shared")
}

// FuzzStackPorts proves the plan against compose's own reading: for any
// ports entries compose-go accepts, either the file is refused, or in a
// sandbox slot every published host port is its variable's rule port or a
// literal port the plan names, and no two entries publish one port.
func FuzzStackPorts(f *testing.F) {
	for _, s := range [][2]string{
		{`"${A_PORT:-7100}:80"`, `"7101:81"`},
		{`"7000:${T_PORT:-7000}"`, `"${B_PORT:-7200}:80"`},
		{`"9000-9002:9000-9002"`, `"${C_PORT:-7300}:80"`},
		{`"${D_PORT:-80}:80"`, `"${D_PORT:-81}:80"`},
		{`{target: 80, published: "${E_PORT:-7400}"}`, `{target: 81, published: "9400-9401"}`},
		{`"127.0.0.1:${F_PORT:-7500}:80/udp"`, `"${F_PORT:-7500}:80/tcp"`},
		{`"${G_PORT}:80"`, `"80"`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if strings.ContainsAny(a+b, "\n\r") {
			return
		}
		sf, err := loadStackText(t, "  a:\n    image: a\n    ports: ["+a+"]\n  b:\n    image: b\n    ports: ["+b+"]\n")
		if err != nil {
			return
		}
		p := *KTRDR()
		p.MaxSlot = 3
		sp, err := p.ForStack(sf)
		if err != nil {
			return
		}
		const slot = 2
		env := map[string]string{}
		for _, r := range sp.Ports {
			env[r.Key] = strconv.Itoa(r.Port(slot))
		}
		literal := map[int]bool{}
		for _, r := range sp.Literal {
			literal[r.Slot0] = true
		}
		dir := filepath.Dir(sf.Path)
		proj, err := composefile.Load(t.Context(), composefile.Source{Root: dir, Files: []string{sf.Path}, Env: env}, "proof", composefile.Every)
		if err != nil {
			t.Fatalf("the planned env does not load: %v", err)
		}
		planned := map[int]bool{}
		for _, r := range sp.Ports {
			planned[r.Port(slot)] = true
		}
		seen := map[string]string{}
		for name, svc := range proj.Services {
			for _, port := range svc.Ports {
				first, last, ok := portRange(port.Published)
				if !ok {
					continue
				}
				for n := first; n <= last; n++ {
					if !planned[n] && !literal[n] {
						t.Fatalf("service %s publishes %d in slot %d: neither a rule's port nor a named literal (%s | %s)", name, n, slot, a, b)
					}
					key := strconv.Itoa(n) + "/" + proto(port)
					if other, dup := seen[key]; dup && other != name+"/"+strconv.Itoa(int(port.Target)) && !literal[n] {
						t.Fatalf("port %s is published twice in slot %d (%s and %s/%d)", key, slot, other, name, port.Target)
					}
					seen[key] = name + "/" + strconv.Itoa(int(port.Target))
				}
			}
		}
	})
}

func proto(p types.ServicePortConfig) string {
	if p.Protocol == "" {
		return "tcp"
	}
	return p.Protocol
}

// BenchmarkLoadStack is the cost of reading a stack (the walk, the
// readings and the uninterpolated model) for the January and April shapes:
// new (no variables set: create, ports) and in slot 1 (up: one reading more).
func BenchmarkLoadStack(b *testing.B) {
	slot1 := map[string]string{"KTRDR_API_PORT": "8001", "KTRDR_DB_PORT": "5433", "KTRDR_WORKER_PORT_1": "5010"}
	for _, shape := range []string{"january", "april"} {
		for _, c := range []struct {
			name string
			env  map[string]string
		}{{"new", nil}, {"slot1", slot1}} {
			b.Run(shape+"/"+c.name, func(b *testing.B) {
				path, err := filepath.Abs(filepath.Join("..", "e2e", "testdata", shape, "docker-compose.sandbox.yml"))
				require.NoError(b, err)
				for b.Loop() {
					if _, err := LoadStackFile(b.Context(), path, c.env); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
