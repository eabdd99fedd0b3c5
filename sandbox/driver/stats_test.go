package driver

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"0B", 0, ""},
		{"512", 512, ""},
		{"2147483648", 2 << 30, ""},
		{"1.461MiB", 1531970, ""}, // docker stats' memory use
		{"23.54GiB", 25275882537, ""},
		{"12.5MiB", 13107200, ""},
		{"2GiB", 2 << 30, ""},
		{"2 GiB", 2 << 30, ""},
		{"2gib", 2 << 30, ""},
		{"2g", 2 << 30, ""}, // as docker run -m
		{"512MB", 512e6, ""},
		{"1.2kB", 1200, ""}, // docker's decimal units (network, block I/O)
		{"646B", 646, ""},
		{"1TB", 1e12, ""},
		{"1KiB", 1024, ""},
		{" 3MiB ", 3 << 20, ""},
		{"--", 0, "no value"},
		{"", 0, "not a number"},
		{"MiB", 0, "not a number"},
		{"-1GiB", 0, "unknown unit"},
		{"1.2.3MB", 0, "not a number"},
		{"1e9", 0, "unknown unit"},
		{"0x10", 0, "unknown unit"},
		{"NaN", 0, "unknown unit"},
		{"5 apples", 0, "unknown unit"},
		{"99999999999EiB", 0, "unknown unit"},
		{"99999999999PiB", 0, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParsePercent(t *testing.T) {
	for in, want := range map[string]float64{"0.00%": 0, "1.25%": 1.25, "150.3%": 150.3, "--": 0, "": 0, "7": 7} {
		got, err := ParsePercent(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"-1%", "abc%", "1e400%", "NaN%", "Inf%", "1.2.3%"} {
		_, err := ParsePercent(in)
		assert.Error(t, err, in)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1023: "1023B", 1024: "1KiB", 1536: "1.5KiB", 2 << 30: "2GiB",
		25276071936: "23.5GiB", 512 << 20: "512MiB", -(3 << 20): "-3MiB", math.MaxInt64: "8192PiB"} {
		assert.Equal(t, want, FormatSize(n), n)
	}
}

func TestParseStats(t *testing.T) {
	// Lines as docker 28 prints them for statsFormat, including a container
	// that stopped during the call.
	out := `{"ID":"cf0cf35d8e7ec90d4198060075c6fc4c7f5622d5432d25eb58d3ae6f71168048","CPUPerc":"0.35%","MemUsage":"1.461MiB / 23.54GiB"}
{"ID":"0d57fc0f0273aa","CPUPerc":"--","MemUsage":"-- / --"}

{"ID":"abc","CPUPerc":"101.50%","MemUsage":"1.2GiB / 2GiB"}
`
	got, err := ParseStats([]byte(out))
	require.NoError(t, err)
	assert.Equal(t, map[string]ContainerStats{
		"cf0cf35d8e7ec90d4198060075c6fc4c7f5622d5432d25eb58d3ae6f71168048": {ID: "cf0cf35d8e7ec90d4198060075c6fc4c7f5622d5432d25eb58d3ae6f71168048", CPUPercent: 0.35, MemoryBytes: 1531970},
		"0d57fc0f0273aa": {ID: "0d57fc0f0273aa"},
		"abc":            {ID: "abc", CPUPercent: 101.5, MemoryBytes: 1288490189},
	}, got)
	assert.Equal(t, Usage{CPUPercent: 101.85, MemoryBytes: 1531970 + 1288490189, Containers: 3}, roundUsage(Total(got)))

	for _, bad := range []string{"CONTAINER ID   NAME   CPU %", `{"CPUPerc":"1%","MemUsage":"1MiB / 2GiB"}`, `{"ID":"a","CPUPerc":"x","MemUsage":"1MiB"}`, `{"ID":"a","CPUPerc":"1%","MemUsage":"lots"}`} {
		_, err := ParseStats([]byte(bad))
		assert.ErrorContains(t, err, "parse docker stats line", bad)
	}
	empty, err := ParseStats(nil)
	require.NoError(t, err)
	assert.Empty(t, empty)
}

func roundUsage(u Usage) Usage {
	u.CPUPercent = math.Round(u.CPUPercent*100) / 100
	return u
}

// A stack's use is the sum over its running containers, joined by full id.
func TestStackUsage(t *testing.T) {
	st := &StackState{RunningIDs: []string{"a", "b", "gone"}}
	stats := map[string]ContainerStats{"a": {CPUPercent: 1, MemoryBytes: 10}, "b": {CPUPercent: 2, MemoryBytes: 20}, "other": {CPUPercent: 50, MemoryBytes: 1000}}
	assert.Equal(t, Usage{CPUPercent: 3, MemoryBytes: 30, Containers: 2}, st.Usage(stats))
	var none *StackState
	assert.Equal(t, Usage{}, none.Usage(stats))
}

func TestEngineInfo(t *testing.T) {
	r := &fakeRunner{handle: func(c Cmd) ([]byte, error) { return []byte("25276071936 3\n"), nil }}
	got, err := EngineInfo(context.Background(), r)
	require.NoError(t, err)
	assert.Equal(t, EngineMemory{Total: 25276071936, ContainersRunning: 3}, got)
	assert.Equal(t, []string{"info", "--format", infoFormat}, r.calls[0].Args)
	for _, bad := range []string{"", "0 1", "abc 1", "1 -2", "1 2 3", "<no value> 0"} {
		_, err := ParseEngineInfo([]byte(bad))
		assert.Error(t, err, bad)
	}
	r.handle = func(Cmd) ([]byte, error) { return nil, errors.New("Cannot connect") }
	_, err = EngineInfo(context.Background(), r)
	assert.ErrorContains(t, err, "docker info")
}

// One docker stats call, its format naming only what the parser reads.
func TestStatsCall(t *testing.T) {
	r := &fakeRunner{handle: func(c Cmd) ([]byte, error) {
		return []byte(`{"ID":"x","CPUPerc":"1%","MemUsage":"1MiB / 1GiB"}` + "\n"), nil
	}}
	wait, cancel := StartStats(context.Background(), r)
	defer cancel()
	got, err := wait()
	require.NoError(t, err)
	assert.Equal(t, map[string]ContainerStats{"x": {ID: "x", CPUPercent: 1, MemoryBytes: 1 << 20}}, got)
	again, _ := wait()
	assert.Equal(t, got, again, "wait may be called again")
	require.Len(t, r.calls, 1)
	assert.Equal(t, []string{"stats", "--no-stream", "--no-trunc", "--format", statsFormat}, r.calls[0].Args)
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"9223372036854774784", "0B", "1.461MiB", "23.54GiB", "512MB", "2g", "--", "1.2kB", "2147483648", "1..2", "99999999999PiB", " 3 mib "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d: negative", s, n)
		}
		if n > 1<<60 {
			return // FormatSize's rounding may carry it past the largest size
		}
		// What FormatSize prints reads back within its rounding (one decimal).
		back, err := ParseSize(FormatSize(n))
		if err != nil {
			t.Fatalf("ParseSize(FormatSize(%d) = %q): %v", n, FormatSize(n), err)
		}
		if diff := math.Abs(float64(back - n)); diff > 0.05*float64(n)+1 {
			t.Fatalf("ParseSize(%q) = %d, but %q reads back as %d", s, n, FormatSize(n), back)
		}
	})
}

func FuzzParseStats(f *testing.F) {
	f.Add([]byte(`{"ID":"cf0cf35d8e7e","CPUPerc":"0.35%","MemUsage":"1.461MiB / 23.54GiB"}` + "\n" + `{"ID":"0d57","CPUPerc":"--","MemUsage":"-- / --"}`))
	f.Add([]byte(`{"ID":"a","CPUPerc":"101.50%","MemUsage":"1.2GiB / 2GiB"}`))
	f.Add([]byte(`{"ID":"a","CPUPerc":"1e3%","MemUsage":"12.5MiB"}`))
	f.Add([]byte("not json\n"))
	f.Add([]byte(`{"ID":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseStats(data)
		if err != nil {
			return
		}
		lines := strings.Split(string(data), "\n")
		for id, c := range got {
			if id == "" || c.ID != id {
				t.Fatalf("container %q keyed wrongly: %+v", id, c)
			}
			if c.MemoryBytes < 0 || c.CPUPercent < 0 || math.IsNaN(c.CPUPercent) || math.IsInf(c.CPUPercent, 0) {
				t.Fatalf("container %q: impossible figures %+v", id, c)
			}
			// Every id comes from a line that names it.
			found := false
			for _, l := range lines {
				var row struct{ ID string }
				if json.Unmarshal([]byte(strings.TrimSpace(l)), &row) == nil && row.ID == id {
					found = true
				}
			}
			if !found {
				t.Fatalf("container %q is in no line", id)
			}
		}
	})
}
