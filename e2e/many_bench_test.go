package e2e

// Benchmarks of many sandboxes on one machine (issue 19), all on the
// January fixture (testdata/january: 30 s healthchecks, service_healthy
// chains) in stand-in mode:
//
//	go test ./e2e/ -run '^$' -bench BenchmarkUpVersusPhysical -benchtime 1x -timeout 20m -v
//	go test ./e2e/ -run '^$' -bench BenchmarkNthUpAndIdleCost -benchtime 1x -timeout 30m -v
//	go test ./e2e/ -run '^$' -bench BenchmarkThirtyFiveAtOnce -benchtime 1x -timeout 90m -v
//
// (each under `flock /tmp/ktrdr-e2e.lock`, with CI=true). They print
// figures and never assert a time: a sandbox that does not start in the
// many-sandbox benchmarks is counted and reported, not a failure. What
// they start lives in their temporary HOME and folders and is removed by
// the env's clean-up, also when they fail.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox"
	"github.com/ktrdr/sandboxkit/sandbox/gate"
	"github.com/stretchr/testify/require"
)

// Compose's own container labels: what a running project was started with.
const (
	labelConfigFiles = "com.docker.compose.project.config_files"
	labelEnvFiles    = "com.docker.compose.project.environment_file"
	labelWorkingDir  = "com.docker.compose.project.working_dir"
)

// manyUpJSON is the part of `sandbox:up -json` these benchmarks read.
type manyUpJSON struct {
	Gate *struct {
		Passed  bool          `json:"passed"`
		Elapsed time.Duration `json:"elapsed_ns"`
	} `json:"gate"`
}

// manyUp is one `sandbox:up`: the whole process, timed.
type manyUp struct {
	N       int // the how-manieth sandbox (also its slot)
	Name    string
	Took    time.Duration // the whole sandbox:up process
	Gate    time.Duration // the gate's own time in it (from -json)
	Created bool
	Passed  bool   // exit 0 and the gate passed
	Err     string // why not, in one line
}

// manySbxUp runs `sandbox:up -json` in dir and times it.
func manySbxUp(b *testing.B, e *env, dir string) (manyUp, result) {
	b.Helper()
	start := time.Now()
	r := e.sbx(dir, "sandbox:up", "-json")
	u := manyUp{Took: time.Since(start), Created: true}
	var out manyUpJSON
	if err := json.Unmarshal([]byte(r.Stdout), &out); err == nil && out.Gate != nil {
		u.Gate = out.Gate.Elapsed
		u.Passed = r.Code == 0 && out.Gate.Passed
	}
	if !u.Passed {
		u.Err = fmt.Sprintf("sandbox:up exit %d: %s", r.Code, manyTail(r.Stderr+r.Stdout, 3))
	}
	return u, r
}

// manyTail is the last n non-empty lines of s on one line, at most 400 bytes.
func manyTail(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	out := strings.Join(lines[max(len(lines)-n, 0):], " / ")
	if len(out) > 400 {
		out = "…" + out[len(out)-400:]
	}
	return out
}

// manyName is the name of the nth sandbox of a many-sandbox benchmark.
func manyName(n int) string { return fmt.Sprintf("%sm%02d", benchPrefix, n) }

// manyConfig widens the slot range of e's HOME to maxSlot.
func manyConfig(b *testing.B, e *env, maxSlot int) {
	b.Helper()
	dir := filepath.Join(e.Home, ".ktrdr", "sandbox")
	require.NoError(b, os.MkdirAll(dir, 0o755))
	require.NoError(b, os.WriteFile(filepath.Join(dir, "config.json"), fmt.Appendf(nil, "{\"max_slot\": %d}\n", maxSlot), 0o644))
}

// manyCreateUp creates the nth stand-in sandbox on slot n and brings it up.
// A failure is recorded in the result, not reported to b.
func manyCreateUp(b *testing.B, e *env, n int) manyUp {
	b.Helper()
	name := manyName(n)
	deadline := time.Now().Add(time.Minute)
	for {
		r := e.sbx(e.Main, "sandbox:create", name, "-standin", fmt.Sprintf("-slot=%d", n))
		if r.Code == 0 {
			break
		}
		if time.Now().After(deadline) || !strings.Contains(r.Stderr+r.Stdout, "port") {
			return manyUp{N: n, Name: name, Err: fmt.Sprintf("sandbox:create exit %d: %s", r.Code, manyTail(r.Stderr+r.Stdout, 3))}
		}
		time.Sleep(3 * time.Second) // a port held at this moment by something else
	}
	u, _ := manySbxUp(b, e, e.sandboxDir(name))
	u.N, u.Name = n, name
	b.Logf("up %d: %s %s (gate %s) passed=%t %s", n, name, u.Took.Round(time.Millisecond), u.Gate.Round(time.Millisecond), u.Passed, u.Err)
	return u
}

// cpuTimes are the summed ticks of every CPU in /proc/stat.
type cpuTimes struct{ busy, idle uint64 }

func readCPUTimes() (cpuTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 9 || fields[0] != "cpu" {
			continue
		}
		var v [8]uint64 // user nice system idle iowait irq softirq steal
		for i := range v {
			if v[i], err = strconv.ParseUint(fields[i+1], 10, 64); err != nil {
				return cpuTimes{}, fmt.Errorf("/proc/stat cpu field %d %q: %w", i+1, fields[i+1], err)
			}
		}
		return cpuTimes{busy: v[0] + v[1] + v[2] + v[5] + v[6] + v[7], idle: v[3] + v[4]}, nil
	}
	return cpuTimes{}, fmt.Errorf("/proc/stat has no cpu line")
}

// manyBusy is how busy the whole machine (every CPU) was over d, in
// percent: user+nice+system+irq+softirq+steal against idle+iowait.
func manyBusy(b *testing.B, d time.Duration) float64 {
	b.Helper()
	t0, err := readCPUTimes()
	require.NoError(b, err)
	time.Sleep(d)
	t1, err := readCPUTimes()
	require.NoError(b, err)
	busy, idle := float64(t1.busy-t0.busy), float64(t1.idle-t0.idle)
	require.Positive(b, busy+idle, "no CPU ticks over %s", d)
	return 100 * busy / (busy + idle)
}

// manyCost is what the running containers of some compose projects hold.
type manyCost struct {
	Sandboxes  int     // projects with a running container
	Containers int     // their running containers
	MiB        float64 // their memory, as docker stats reports it
	Networks   int     // the networks labelled with those projects
	Engine     int     // every network on the engine
}

// manyCostOf reads it with one docker ps, one docker stats --no-stream and
// one docker network ls.
func manyCostOf(b *testing.B, projects []string) manyCost {
	b.Helper()
	want := map[string]bool{}
	for _, p := range projects {
		want[p] = true
	}
	var c manyCost
	out, err := exec.Command("docker", "ps", "--format", `{{.ID}} {{.Label "com.docker.compose.project"}}`).Output()
	require.NoError(b, err)
	var ids []string
	running := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		id, project, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && want[project] {
			ids = append(ids, id)
			running[project] = true
		}
	}
	c.Sandboxes, c.Containers = len(running), len(ids)
	if len(ids) > 0 {
		cmd := exec.Command("docker", append([]string{"stats", "--no-stream", "--format", "{{.MemUsage}}"}, ids...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(b, err, "docker stats: %s", stderr.String())
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			used, _, _ := strings.Cut(line, "/")
			mib, err := benchMiB(used)
			require.NoError(b, err)
			c.MiB += mib
		}
	}
	out, err = exec.Command("docker", "network", "ls", "--format", `{{.ID}} {{.Label "com.docker.compose.project"}}`).Output()
	require.NoError(b, err)
	for _, line := range strings.Split(string(out), "\n") {
		id, project, _ := strings.Cut(strings.TrimSpace(line), " ")
		if id == "" {
			continue
		}
		c.Engine++
		if want[project] {
			c.Networks++
		}
	}
	return c
}

// manyIdleCost waits 40 s after the last up, measures the machine's busy
// share over 30 s and then what the projects hold, and reports it against
// baseline (the busy share before any was started).
func manyIdleCost(b *testing.B, projects []string, baseline float64) {
	b.Helper()
	time.Sleep(40 * time.Second)
	busy := manyBusy(b, 30*time.Second)
	c := manyCostOf(b, projects)
	b.Logf("idle: machine %.1f %% busy over 30 s after 40 s (%.1f %% before any sandbox ran; load %s); %d sandboxes running, %d containers, %.0f MiB, %d networks of theirs (%d on the engine)",
		busy, baseline, loadAvg(), c.Sandboxes, c.Containers, c.MiB, c.Networks, c.Engine)
	b.ReportMetric(busy, "busy-pct")
	b.ReportMetric(baseline, "busy-pct-baseline")
	b.ReportMetric(float64(c.Sandboxes), "sandboxes-running")
	b.ReportMetric(float64(c.Containers), "containers")
	b.ReportMetric(float64(c.Engine), "engine-networks")
	if c.Sandboxes > 0 {
		n := float64(c.Sandboxes)
		b.ReportMetric((busy-baseline)/n, "busy-pct/sandbox")
		b.ReportMetric(c.MiB/n, "MiB/sandbox")
		b.ReportMetric(float64(c.Networks)/n, "networks/sandbox")
	}
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

// BenchmarkUpVersusPhysical compares `sandbox:up` (whole process, through
// Startability Gate: PASSED) with the physical limit of starting the same
// stack: `docker compose up -d` of the very files and env file the stack
// was started with (compose's own labels on its containers), every
// depends_on removed (`config --format json`, edited here), so that every
// container is created and started at once, timed until the command
// returns. Same project name; down (data kept) between runs; five rounds,
// alternating who goes first, after one untimed sandbox:up.
//
// The physical start waits for nothing to be ready, while sandbox:up
// includes the gate: the benchmark also reports the gate's own share of
// sandbox:up (from -json) and the physical start followed by the same
// gate, run here until it passes (physical-then-gate).
func BenchmarkUpVersusPhysical(b *testing.B) {
	needDocker(b)
	e := newEnv(b)
	e.withShape(b, "january")
	name := benchPrefix + "phys"
	benchCreate(b, e, name, 6)
	dir := e.sandboxDir(name)
	s := benchStackOf(b, e, name, false)
	b.Cleanup(func() { removeProject(s.Project) })

	sbxUp := func() manyUp {
		u, r := manySbxUp(b, e, dir)
		require.True(b, u.Passed, r.String())
		return u
	}
	sbxUp() // untimed: warms the engine, writes the suite's override

	// What compose was given, from its labels.
	ids := dockerIDs("ps", "-q", "--filter", "label=com.docker.compose.project="+s.Project)
	require.NotEmpty(b, ids)
	out, err := exec.Command("docker", "inspect", "--format", "{{json .Config.Labels}}", ids[0]).Output()
	require.NoError(b, err)
	var labels map[string]string
	require.NoError(b, json.Unmarshal(out, &labels))
	workDir := labels[labelWorkingDir]
	require.NotEmpty(b, workDir)
	base := []string{"compose", "-p", s.Project, "--project-directory", workDir}
	var envArgs []string
	for _, f := range strings.Split(labels[labelEnvFiles], ",") {
		if f != "" {
			envArgs = append(envArgs, "--env-file", f)
		}
	}
	var fileArgs []string
	for _, f := range strings.Split(labels[labelConfigFiles], ",") {
		fileArgs = append(fileArgs, "-f", f)
	}
	require.NotEmpty(b, envArgs, "labels: %v", labels)
	b.Logf("the stack was started with %s and %s", strings.Join(fileArgs, " "), strings.Join(envArgs, " "))
	docker := func(args ...string) time.Duration {
		cmd := exec.Command("docker", args...)
		cmd.Dir, cmd.Env = workDir, benchCleanEnv()
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		require.NoError(b, err, "docker %s:\n%s", strings.Join(args, " "), out)
		return d
	}
	cfgCmd := exec.Command("docker", slices.Concat(base, envArgs, fileArgs, []string{"config", "--format", "json"})...)
	cfgCmd.Dir, cfgCmd.Env = workDir, benchCleanEnv()
	var stderr bytes.Buffer
	cfgCmd.Stderr = &stderr
	cfg, err := cfgCmd.Output()
	require.NoError(b, err, "compose config: %s", stderr.String())
	var doc map[string]any
	require.NoError(b, json.Unmarshal(cfg, &doc))
	services, ok := doc["services"].(map[string]any)
	require.True(b, ok, "compose config has services")
	var dropped []string
	for svcName, v := range services {
		svc, ok := v.(map[string]any)
		require.True(b, ok, svcName)
		if _, has := svc["depends_on"]; has {
			dropped = append(dropped, svcName)
			delete(svc, "depends_on")
		}
	}
	slices.Sort(dropped)
	b.Logf("physical: %d services, depends_on removed from %v", len(services), dropped)
	require.NotEmpty(b, dropped, "the January fixture has depends_on chains")
	phys, err := json.Marshal(doc)
	require.NoError(b, err)
	physFile := filepath.Join(b.TempDir(), "physical.json")
	require.NoError(b, os.WriteFile(physFile, phys, 0o644))
	physArgs := slices.Concat(base, envArgs, []string{"-f", physFile})
	checks := sandbox.KTRDR().GateChecks("127.0.0.1", s.Ports)

	nothingLeft := func() {
		c, _, _ := projectResources(s.Project)
		require.Zero(b, c, "no container of %s is left before the next run", s.Project)
	}
	e.must(dir, "sandbox:down")
	nothingLeft()

	const rounds = 5
	var sbx, physical, gateIn, physReady []time.Duration
	b.ResetTimer()
	for r := range rounds {
		for k := range 2 {
			if (r+k)%2 == 0 {
				u := sbxUp()
				sbx, gateIn = append(sbx, u.Took), append(gateIn, u.Gate)
				b.Logf("round %d: sandbox:up %s (gate %s)", r+1, u.Took.Round(time.Millisecond), u.Gate.Round(time.Millisecond))
				e.must(dir, "sandbox:down")
			} else {
				start := time.Now()
				d := docker(slices.Concat(physArgs, []string{"up", "-d"})...)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				gr := (&gate.Gate{Checks: checks}).Run(ctx)
				ready := time.Since(start)
				cancel()
				physical = append(physical, d)
				if gr.Passed {
					physReady = append(physReady, ready)
				}
				b.Logf("round %d: physical up -d %s; the gate after it passed=%t after %s", r+1, d.Round(time.Millisecond), gr.Passed, ready.Round(time.Millisecond))
				docker(slices.Concat(physArgs, []string{"down"})...)
			}
			nothingLeft()
		}
	}
	b.StopTimer()
	mSbx := benchSpread(b, "sandbox-up", sbx)
	mPhys := benchSpread(b, "physical", physical)
	b.ReportMetric(float64(mSbx)/float64(mPhys), "ratio-sandbox-up/physical")
	mGate := benchSpread(b, "sandbox-up-gate", gateIn)
	b.ReportMetric(benchMS(mSbx-mGate), "ms/sandbox-up-without-gate")
	b.ReportMetric(float64(rounds), "rounds")
	b.ReportMetric(float64(len(physReady)), "physical-then-gate-passed")
	b.Logf("sandbox:up %v; physical %v; gate in sandbox:up %v; physical then gate %v", sbx, physical, gateIn, physReady)
	if len(physReady) > 0 {
		m := benchSpread(b, "physical-then-gate", physReady)
		b.ReportMetric(float64(mSbx)/float64(m), "ratio-sandbox-up/physical-then-gate")
	}
}

// BenchmarkNthUpAndIdleCost brings up twelve stand-in sandboxes of the
// January fixture one after another (slots 1–12), each right after the one
// before passed, and reports the whole-process time of the 1st, 6th and
// 12th `sandbox:up` (N−1 running) and the ratio 12th/1st. Then, the twelve
// idle, it waits 40 s and reports how busy the machine was over 30 s
// (/proc/stat, every CPU), against the same measure (20 s) before the
// first was started, and what one sandbox holds: busy share, memory
// (docker stats), networks.
func BenchmarkNthUpAndIdleCost(b *testing.B) {
	needDocker(b)
	e := newEnv(b)
	e.withShape(b, "january")
	const n = 12
	manyConfig(b, e, n)
	baseline := manyBusy(b, 20*time.Second)
	b.Logf("before any sandbox: machine %.1f %% busy over 20 s (load %s)", baseline, loadAvg())
	var ups []manyUp
	var projects []string
	b.ResetTimer()
	for i := 1; i <= n; i++ {
		ups = append(ups, manyCreateUp(b, e, i))
		projects = append(projects, "ktrdr--"+manyName(i))
	}
	b.StopTimer()
	failed := 0
	for _, u := range ups {
		if !u.Passed {
			failed++
			b.Logf("sandbox %d did not pass: %s", u.N, u.Err)
		}
	}
	for _, k := range []int{1, 6, 12} {
		b.ReportMetric(benchMS(ups[k-1].Took), fmt.Sprintf("ms/up-%d", k))
	}
	b.ReportMetric(float64(ups[n-1].Took)/float64(ups[0].Took), "ratio-up-12/up-1")
	b.ReportMetric(float64(failed), "failed-ups")
	var all []string
	for _, u := range ups {
		all = append(all, u.Took.Round(time.Millisecond).String())
	}
	b.Logf("up times, 1st to %dth: %s", n, strings.Join(all, " "))
	manyIdleCost(b, projects, baseline)
}

// BenchmarkThirtyFiveAtOnce creates and brings up 35 stand-in sandboxes of
// the January fixture one after another (slots 1–35, max_slot 35) and
// reports how many passed the gate, how many run, the total time (create
// and up of all), and with them idle the machine's busy share and what one
// holds. A sandbox that fails is counted, and its error (the first
// failure's) printed; after three failures in a row, or 35 minutes, it
// starts no more.
func BenchmarkThirtyFiveAtOnce(b *testing.B) {
	needDocker(b)
	e := newEnv(b)
	e.withShape(b, "january")
	const n, budget = 35, 35 * time.Minute
	manyConfig(b, e, n)
	baseline := manyBusy(b, 20*time.Second)
	b.Logf("before any sandbox: machine %.1f %% busy over 20 s (load %s)", baseline, loadAvg())
	var ups []manyUp
	var projects []string
	var first *manyUp
	inARow := 0
	start := time.Now()
	b.ResetTimer()
	for i := 1; i <= n; i++ {
		if time.Since(start) > budget {
			b.Logf("thirty-five: budget of %s spent after %d sandboxes", budget, i-1)
			break
		}
		u := manyCreateUp(b, e, i)
		ups = append(ups, u)
		projects = append(projects, "ktrdr--"+u.Name)
		if u.Passed {
			inARow = 0
			continue
		}
		if first == nil {
			first = &u
		}
		if inARow++; inARow == 3 {
			b.Logf("thirty-five: three failures in a row, no more started after sandbox %d", i)
			break
		}
	}
	total := time.Since(start)
	b.StopTimer()
	passed := 0
	var times []time.Duration
	for _, u := range ups {
		if u.Passed {
			passed++
			times = append(times, u.Took)
		}
	}
	if first != nil {
		b.Logf("thirty-five: first failure: sandbox %d of %d (%s): %s", first.N, n, first.Name, first.Err)
	} else {
		b.Logf("thirty-five: first failure: none")
	}
	b.ReportMetric(n, "sandboxes")
	b.ReportMetric(float64(len(ups)), "tried")
	b.ReportMetric(float64(passed), "passed")
	b.ReportMetric(benchMS(total), "ms/total")
	if len(times) > 0 {
		benchSpread(b, "up-passed", times)
		b.ReportMetric(benchMS(times[len(times)-1]), "ms/last-passed-up")
	}
	manyIdleCost(b, projects, baseline)
}
