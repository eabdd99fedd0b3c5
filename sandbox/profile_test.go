package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ktrdr/sandboxkit/sandbox/shared"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The contract's port table, slot by slot.
func contractPorts(slot int) map[string]int {
	if slot == 0 {
		return map[string]int{
			"KTRDR_API_PORT": 8000, "KTRDR_DB_PORT": 5432, "KTRDR_GRAFANA_PORT": 3000,
			"KTRDR_JAEGER_UI_PORT": 16686, "KTRDR_JAEGER_OTLP_GRPC_PORT": 4317, "KTRDR_JAEGER_OTLP_HTTP_PORT": 4318,
			"KTRDR_PROMETHEUS_PORT": 9090, "KTRDR_WORKER_PORT_1": 5003, "KTRDR_WORKER_PORT_2": 5004,
			"KTRDR_WORKER_PORT_3": 5005, "KTRDR_WORKER_PORT_4": 5006,
		}
	}
	n := slot
	return map[string]int{
		"KTRDR_API_PORT": 8000 + n, "KTRDR_DB_PORT": 5432 + n, "KTRDR_GRAFANA_PORT": 3000 + n,
		"KTRDR_JAEGER_UI_PORT": 16686 + n, "KTRDR_JAEGER_OTLP_GRPC_PORT": 4317 + 10*n, "KTRDR_JAEGER_OTLP_HTTP_PORT": 4318 + 10*n,
		"KTRDR_PROMETHEUS_PORT": 9090 + n, "KTRDR_WORKER_PORT_1": 5000 + 10*n, "KTRDR_WORKER_PORT_2": 5001 + 10*n,
		"KTRDR_WORKER_PORT_3": 5002 + 10*n, "KTRDR_WORKER_PORT_4": 5003 + 10*n,
	}
}

func TestPortTableMatchesContract(t *testing.T) {
	p := KTRDR()
	owner := map[int]string{}
	for slot := 0; slot <= 10; slot++ {
		got := p.PortsFor(slot)
		assert.Equal(t, contractPorts(slot), got, "slot %d", slot)
		for k, port := range got {
			if o, dup := owner[port]; dup {
				t.Errorf("port %d used by %s and slot %d %s", port, o, slot, k)
			}
			owner[port] = fmt.Sprintf("slot %d %s", slot, k)
		}
	}
	// Spot checks from the design's slot-2 example (OTLP corrected to +10N).
	s2 := p.PortsFor(2)
	assert.Equal(t, 8002, s2["KTRDR_API_PORT"])
	assert.Equal(t, 5434, s2["KTRDR_DB_PORT"])
	assert.Equal(t, 4337, s2["KTRDR_JAEGER_OTLP_GRPC_PORT"])
	assert.Equal(t, 5023, s2["KTRDR_WORKER_PORT_4"])
}

func TestProfileRefusesDesignOTLPRule(t *testing.T) {
	q := ktrdrProfile
	q.Ports = append([]PortRule(nil), ktrdrProfile.Ports...)
	for i := range q.Ports {
		if q.Ports[i].Key == "KTRDR_JAEGER_OTLP_GRPC_PORT" || q.Ports[i].Key == "KTRDR_JAEGER_OTLP_HTTP_PORT" {
			q.Ports[i].Step = 1 // the design's literal 4317+N / 4318+N
		}
	}
	_, err := NewProfile(q)
	var pc *PortCollisionError
	require.ErrorAs(t, err, &pc)
	// With +N, slot N's HTTP port is slot N+1's gRPC port, starting with slot 0's 4318.
	assert.Equal(t, 4318, pc.Port)
	assert.Contains(t, err.Error(), "slot 0 KTRDR_JAEGER_OTLP_HTTP_PORT")
	assert.Contains(t, err.Error(), "slot 1 KTRDR_JAEGER_OTLP_GRPC_PORT")
}

func TestProfileSlotCapacity(t *testing.T) {
	p := KTRDR()
	assert.Equal(t, 42, p.MaxCollisionFreeSlot(200), "documented in the package doc and BENCHMARKS.md")
	_, err := p.WithSlots(1, 43)
	var pc *PortCollisionError
	require.ErrorAs(t, err, &pc)
	assert.Equal(t, 5432, pc.Port, "slot 43's third worker meets the main database")
	assert.Equal(t, "KTRDR_WORKER_PORT_3", pc.KeyB)

	wide, err := wideProfile(100)
	require.NoError(t, err, "a profile with workers moved out of the way serves 100 slots")
	assert.Equal(t, 100, wide.MaxSlot)
}

// wideProfile is the default profile with worker ports moved to 20000+10N,
// which stays collision-free far beyond 100 slots.
func wideProfile(max int) (*Profile, error) {
	q := ktrdrProfile
	q.Ports = append([]PortRule(nil), ktrdrProfile.Ports...)
	for i := range q.Ports {
		if q.Ports[i].Step == 10 && q.Ports[i].Base >= 5000 && q.Ports[i].Base < 5010 {
			q.Ports[i].Base += 15000
		}
	}
	q.MaxSlot = max
	return NewProfile(q)
}

func TestProfileValidation(t *testing.T) {
	cases := map[string]func(*Profile){
		"sandbox port below 1024": func(p *Profile) { p.Ports[0].Base = 80 },
		"port above 65535":        func(p *Profile) { p.Ports[0].Base = 65530; p.Ports[0].Step = 1 },
		"duplicate key":           func(p *Profile) { p.Ports = append(p.Ports, p.Ports[0]) },
		"empty slot range":        func(p *Profile) { p.MinSlot, p.MaxSlot = 3, 2 },
		"no API rule":             func(p *Profile) { p.APIPortKey = "NOPE" },
		"no instance label":       func(p *Profile) { p.InstanceLabel = "" },
		"no stand-in key":         func(p *Profile) { p.StandinKey = "" },
		"check on unknown port": func(p *Profile) {
			p.Checks = append(p.Checks, Check{Name: "x", PortKey: "NOPE"})
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			q := ktrdrProfile
			q.Ports = append([]PortRule(nil), ktrdrProfile.Ports...)
			q.Checks = append([]Check(nil), ktrdrProfile.Checks...)
			mutate(&q)
			_, err := NewProfile(q)
			assert.Error(t, err)
		})
	}
}

func TestNameOf(t *testing.T) {
	p := KTRDR()
	for id, want := range map[string]string{"ktrdr--feat-a": "feat-a", "ktrdr--0": "0"} {
		got, ok := p.NameOf(id)
		assert.True(t, ok, id)
		assert.Equal(t, want, got, id)
	}
	for _, id := range []string{"", "ktrdr", "ktrdr--", "other--feat", "ktrdr--Feat", "ktrdr--../x", "feat-a"} {
		_, ok := p.NameOf(id)
		assert.False(t, ok, "%q is not a ktrdr instance id", id)
	}
}

func TestValidateName(t *testing.T) {
	hostile := []string{"../x", "-rf", "a b", "x;rm -rf ~", "Feat", "a/b", "", "a23456789012345678901234567890123456789012"[:41],
		"café", "feat--a", "feat-", ".hidden", "a\x00b", "a\nb", "$(id)", "`id`", "a.b", "ktrdr--x"}
	for _, name := range hostile {
		err := ValidateName(name)
		var ie *InvalidNameError
		if assert.ErrorAs(t, err, &ie, "%q must be refused", name) {
			assert.Contains(t, err.Error(), "e.g. feat-a", "the error shows an accepted form")
		}
	}
	for _, name := range []string{"a", "feat-a", "0day", "x1-y2-z3", "a234567890123456789012345678901234567890"} {
		assert.NoError(t, ValidateName(name), name)
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"feat-a", "../x", "-rf", "Feat", "a--b", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateName(s) != nil {
			return
		}
		// An accepted name is safe as a path element, a compose project and a git branch.
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				t.Fatalf("accepted %q with %q", s, r)
			}
		}
		if s[0] == '-' || len(s) > MaxNameLen || errors.Is(nil, nil) && len(s) == 0 {
			t.Fatalf("accepted %q", s)
		}
	})
}

func TestSharedOptionsAreTheProfilesFolders(t *testing.T) {
	home := t.TempDir()
	rep, err := shared.Init(t.Context(), KTRDR().SharedOptions(home))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(home, ".ktrdr", "shared"), rep.Root)
	assert.Equal(t, []string{"data", "models", "strategies"}, rep.Created)
	assert.DirExists(t, filepath.Join(home, ".ktrdr", "shared", "strategies"))
}
