package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// usageEntry is one instance of sandbox:list -json, with its figures.
type usageEntry struct {
	ID          string   `json:"id"`
	State       string   `json:"state"`
	CPUPercent  *float64 `json:"cpu_percent"`
	MemoryBytes *int64   `json:"memory_bytes"`
}

func (e *env) usage() map[string]usageEntry {
	e.t.Helper()
	var l struct {
		Instances   []usageEntry      `json:"instances"`
		StatsErrors map[string]string `json:"stats_errors"`
	}
	r := e.must(e.Main, "sandbox:list", "-json")
	require.NoError(e.t, json.Unmarshal([]byte(r.Stdout), &l), r.Stdout)
	require.Empty(e.t, l.StatsErrors)
	out := map[string]usageEntry{}
	for _, in := range l.Instances {
		out[in.ID] = in
	}
	return out
}

// Two running sandboxes show what they use; a third up with a floor no
// engine has is refused (exit 5) naming both, and starts nothing;
// sandbox:down -all stops both and keeps their data.
func TestHostWideViewAndBudget(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	a, b, c := namePrefix+"bgt-a", namePrefix+"bgt-b", namePrefix+"bgt-c"
	for _, n := range []string{a, b, c} {
		e.must(e.Main, "sandbox:create", n, "-standin")
	}
	e.must(e.sandboxDir(a), "sandbox:up")
	e.must(e.sandboxDir(b), "sandbox:up")
	ida, idb, idc := "ktrdr--"+a, "ktrdr--"+b, "ktrdr--"+c

	u := e.usage()
	for _, id := range []string{ida, idb} {
		assert.Equal(t, "running", u[id].State, id)
		if assert.NotNil(t, u[id].MemoryBytes, id) {
			assert.Positive(t, *u[id].MemoryBytes, "%s uses memory", id)
		}
		assert.NotNil(t, u[id].CPUPercent, id)
	}
	assert.Equal(t, "stopped", u[idc].State)
	assert.Nil(t, u[idc].MemoryBytes, "a stopped sandbox has no figures")
	table := e.must(e.Main, "sandbox:list").Stdout
	assert.Regexp(t, `INSTANCE\s+SLOT\s+STATE\s+CPU\s+MEM\s+ENGINE`, table)
	assert.Regexp(t, ida+`\s+\d+\s+running\s+[0-9.]+%\s+[0-9.]+[KMG]iB\s+local`, table)
	assert.Regexp(t, idc+`\s+\d+\s+stopped\s+-\s+-\s+local`, table)

	// A floor no machine has: the third up is refused before anything starts.
	e.writeConfig(`{"min_free_memory": "1000TiB"}`)
	r := e.sbx(e.sandboxDir(c), "sandbox:up")
	require.Equal(t, 5, r.Code, r.String())
	assert.Contains(t, r.Stderr, "not enough free memory to start "+idc+" on engine local")
	assert.Contains(t, r.Stderr, "min_free_memory keeps 1000TiB free")
	assert.Regexp(t, ida+` uses [0-9.]+[KMG]iB \(`+e.sandboxDir(a)+`\)`, r.Stderr)
	assert.Regexp(t, idb+` uses [0-9.]+[KMG]iB \(`+e.sandboxDir(b)+`\)`, r.Stderr)
	assert.Contains(t, r.Stderr, "go tool mage sandbox:down -all")
	cs, vs, ns := projectResources(idc)
	assert.Zero(t, cs+vs+ns, "nothing of %s was made: %d containers, %d volumes, %d networks", idc, cs, vs, ns)

	// JSON: the same refusal, its code kept.
	r = e.sbx(e.sandboxDir(c), "sandbox:up", "-json")
	assert.Equal(t, 5, r.Code, r.String())
	require.NoError(t, os.Remove(filepath.Join(e.Home, ".ktrdr", "sandbox", "config.json")))

	// -all with -volumes is refused and touches nothing.
	_, volsA, _ := projectResources(ida)
	_, volsB, _ := projectResources(idb)
	require.Positive(t, volsA)
	require.Positive(t, volsB)
	r = e.sbx(e.Main, "sandbox:down", "-all", "-volumes")
	assert.Equal(t, 1, r.Code, r.String())
	assert.Contains(t, r.Stderr, "refused")
	assert.Equal(t, "running", e.usage()[ida].State)

	// down -all, from the main checkout: both stopped, data kept.
	r = e.must(e.Main, "sandbox:down", "-all")
	assert.Contains(t, r.Stdout, "Stopped "+ida+" ("+e.sandboxDir(a)+"; data kept)")
	assert.Contains(t, r.Stdout, "Stopped "+idb+" ("+e.sandboxDir(b)+"; data kept)")
	assert.Contains(t, r.Stdout, "Stopped 2 sandbox(es) (data kept)")
	for id, vols := range map[string]int{ida: volsA, idb: volsB} {
		cs, vs, _ := projectResources(id)
		assert.Zero(t, cs, "%s has no containers left", id)
		assert.Equal(t, vols, vs, "%s keeps its volumes", id)
	}
	u = e.usage()
	assert.Equal(t, "stopped", u[ida].State)
	assert.Equal(t, "stopped", u[idb].State)
	assert.Nil(t, u[ida].MemoryBytes)

	// Nothing left to stop; JSON says so.
	r = e.must(e.Main, "sandbox:down", "-all", "-json")
	assert.JSONEq(t, `{"sandboxes": []}`, r.Stdout)
}

// BenchmarkBudgetCheckCost measures what up's memory budget check costs,
// with 0, 5 and 12 stand-in stacks running: the two calls it makes at the
// same time, `docker info` and `docker stats --no-stream` (all running
// containers), each the median of 5; and `sandbox:up -nowait` of one more
// stand-in sandbox with the check on (the default floor) and off
// (min_free_memory 0), alternating, 2 each (the sandbox is stopped again
// after each). With nothing running the check asks docker info only.
func BenchmarkBudgetCheckCost(b *testing.B) {
	needDocker(b)
	e := newEnv(b)
	const on, off = `{"max_slot": 20}`, `{"max_slot": 20, "min_free_memory": 0}`
	e.writeConfig(on)
	extra := benchPrefix + "bud-x"
	benchCreate(b, e, extra, 13)
	b.Cleanup(func() { removeProject("ktrdr--" + extra) })
	timeDocker := func(args ...string) time.Duration {
		var ds []time.Duration
		for range 5 {
			start := time.Now()
			out, err := exec.Command("docker", args...).CombinedOutput()
			ds = append(ds, time.Since(start))
			require.NoError(b, err, "docker %v: %s", args, out)
		}
		return benchMedian(ds)
	}
	running := 0
	for _, n := range []int{0, 5, 12} {
		for ; running < n; running++ {
			name := fmt.Sprintf("%sbud%02d", benchPrefix, running+1)
			benchCreate(b, e, name, running+1)
			b.Cleanup(func() { removeProject("ktrdr--" + name) })
			e.must(e.sandboxDir(name), "sandbox:up", "-nowait")
		}
		time.Sleep(5 * time.Second) // let the stacks settle
		out, err := exec.Command("docker", "info", "--format", "{{.ContainersRunning}}").Output()
		require.NoError(b, err)
		containers, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		info := timeDocker("info", "--format", "{{json .MemTotal}} {{json .ContainersRunning}}")
		stats := timeDocker("stats", "--no-stream", "--no-trunc", "--format", `{"ID":{{json .ID}},"CPUPerc":{{json .CPUPerc}},"MemUsage":{{json .MemUsage}}}`)
		var ups = map[string][]time.Duration{}
		for i := range 4 {
			mode, cfg := "on", on
			if i%2 == 1 {
				mode, cfg = "off", off
			}
			e.writeConfig(cfg)
			start := time.Now()
			e.must(e.sandboxDir(extra), "sandbox:up", "-nowait")
			ups[mode] = append(ups[mode], time.Since(start))
			e.must(e.sandboxDir(extra), "sandbox:down")
		}
		e.writeConfig(on)
		b.Logf("%d stacks running (%d containers on the engine): docker info %s, docker stats %s; up -nowait with the check %v, without %v",
			n, containers, info.Round(time.Millisecond), stats.Round(time.Millisecond), ups["on"], ups["off"])
		b.ReportMetric(float64(containers), fmt.Sprintf("containers-%d", n))
		b.ReportMetric(benchMS(info), fmt.Sprintf("ms/info-%d", n))
		b.ReportMetric(benchMS(stats), fmt.Sprintf("ms/stats-%d", n))
		b.ReportMetric(benchMS(benchMedian(ups["on"])), fmt.Sprintf("ms/up-check-%d", n))
		b.ReportMetric(benchMS(benchMedian(ups["off"])), fmt.Sprintf("ms/up-nocheck-%d", n))
	}
}
