package e2e

// Whole-command benchmarks. They drive the real engine with stand-in stacks
// and take minutes; run one at a time, once:
//
//	go test ./e2e/ -run '^$' -bench BenchmarkUpVersusCompose -benchtime 1x -timeout 30m
//
// Each benchmark ignores b.N: it takes a fixed number of samples and reports
// them with b.ReportMetric. They use only slots 6–10 and sandbox names that
// start with e2e-bench-, and remove everything they start.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
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

// benchPrefix starts every benchmark sandbox's name (covered by the stale clean-up).
const benchPrefix = namePrefix + "bench-"

// benchWorkers are the stack's worker services.
var benchWorkers = []string{"backtest-worker-1", "backtest-worker-2", "training-worker-1", "training-worker-2"}

// benchStack is a sandbox's stack as a person drives it with plain docker compose.
type benchStack struct {
	Project string
	Dir     string
	EnvFile string
	Files   []string
	Ports   map[string]int
}

func benchStackOf(tb testing.TB, e *env, name string, withOverride bool) benchStack {
	tb.Helper()
	dir := e.sandboxDir(name)
	s := benchStack{Project: "ktrdr--" + name, Dir: dir, EnvFile: filepath.Join(dir, ".env.sandbox"),
		Files: []string{filepath.Join(dir, "docker-compose.sandbox.yml")}}
	if withOverride {
		s.Files = append(s.Files, filepath.Join(dir, "docker-compose.sandbox.override.yml"))
	}
	ev, err := sandbox.KTRDR().ReadEnv(s.EnvFile)
	require.NoError(tb, err)
	s.Ports = ev.Ports
	return s
}

// benchCleanEnv is this process's environment without the variables that
// would override the env file or redirect compose.
func benchCleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KTRDR_") && !strings.HasPrefix(kv, "COMPOSE_") {
			out = append(out, kv)
		}
	}
	return out
}

// benchCompose runs `docker compose -p … --env-file … -f … args…`, which must
// succeed, and returns how long it took.
func benchCompose(tb testing.TB, s benchStack, args ...string) time.Duration {
	tb.Helper()
	full := []string{"compose", "-p", s.Project, "--env-file", s.EnvFile}
	for _, f := range s.Files {
		full = append(full, "-f", f)
	}
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", full...)
	cmd.Dir, cmd.Env = s.Dir, benchCleanEnv()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	require.NoError(tb, err, "docker %s:\n%s", strings.Join(full, " "), out)
	return d
}

// benchCreate creates a stand-in sandbox on slot, retrying for a while when
// the slot's ports are busy at that moment (another run may hold them).
func benchCreate(tb testing.TB, e *env, name string, slot int) {
	tb.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r := e.sbx(e.Main, "sandbox:create", name, "-standin", fmt.Sprintf("-slot=%d", slot))
		if r.Code == 0 {
			return
		}
		if time.Now().After(deadline) || !strings.Contains(r.Stderr+r.Stdout, "port") {
			tb.Fatalf("create %s on slot %d:\n%s", name, slot, r)
		}
		time.Sleep(3 * time.Second)
	}
}

// benchWaitSequential is the plain health-wait loop of a shell script: the
// gate's four checks one after the other, each polled every 100 ms until it passes.
func benchWaitSequential(tb testing.TB, ports map[string]int, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for _, c := range sandbox.KTRDR().GateChecks("127.0.0.1", ports) {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err := c.Probe(ctx)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("%s not ready after %s: %v", c.Name, timeout, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func benchMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchPercentile is the nearest-rank percentile (p in 0..100).
func benchPercentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := max(int(math.Ceil(p/100*float64(len(s))))-1, 0)
	return s[min(i, len(s)-1)]
}

func benchMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// BenchmarkUpVersusCompose compares the wall time of `sandbox:up` (preflight,
// compose up -d, gate) with the same stack started by hand (compose up -d
// plus a sequential 100 ms health-wait loop over the gate's checks) and with
// `compose up -d --wait` (compose's own healthchecks), alternating, with
// down -v between.
func BenchmarkUpVersusCompose(b *testing.B) {
	needDocker(b)
	e := newEnv(b)
	name := benchPrefix + "up"
	benchCreate(b, e, name, 6)
	dir := e.sandboxDir(name)
	s := benchStackOf(b, e, name, false)
	b.Cleanup(func() { removeProject(s.Project) })
	down := func() { benchCompose(b, s, "down", "-v", "--remove-orphans", "--timeout", "10") }

	ways := []struct {
		name string
		up   func() time.Duration
	}{
		{"sandbox:up", func() time.Duration {
			start := time.Now()
			r := e.sbx(dir, "sandbox:up")
			d := time.Since(start)
			require.Equal(b, 0, r.Code, r.String())
			require.Contains(b, r.Stdout, "Startability Gate: PASSED")
			return d
		}},
		{"compose up -d + poll", func() time.Duration {
			start := time.Now()
			benchCompose(b, s, "up", "-d")
			benchWaitSequential(b, s.Ports, 2*time.Minute)
			return time.Since(start)
		}},
		{"compose up -d --wait", func() time.Duration {
			return benchCompose(b, s, "up", "-d", "--wait", "--wait-timeout", "120")
		}},
	}
	const rounds = 3
	times := make([][]time.Duration, len(ways))
	b.ResetTimer()
	for r := range rounds {
		for k := range ways {
			i := (r + k) % len(ways) // rotate who goes first
			d := ways[i].up()
			times[i] = append(times[i], d)
			b.Logf("round %d: %s ready after %s", r+1, ways[i].name, d.Round(time.Millisecond))
			down()
		}
	}
	b.StopTimer()
	sbx, hand, wait := benchMedian(times[0]), benchMedian(times[1]), benchMedian(times[2])
	b.Logf("medians over %d rounds: sandbox:up %s, compose up -d + poll %s, compose up -d --wait %s",
		rounds, sbx.Round(time.Millisecond), hand.Round(time.Millisecond), wait.Round(time.Millisecond))
	b.ReportMetric(benchMS(sbx), "ms/sandbox-up")
	b.ReportMetric(benchMS(hand), "ms/compose-up-poll")
	b.ReportMetric(benchMS(wait), "ms/compose-up-wait")
	b.ReportMetric(float64(sbx)/float64(hand), "ratio-sandbox/compose")
	b.ReportMetric(float64(sbx)/float64(wait), "ratio-sandbox/wait")
}

// benchMiB parses a docker stats size such as "3.52MiB", "900KiB" or "1.2GB".
func benchMiB(s string) (float64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		bytes  float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil {
				return 0, fmt.Errorf("size %q: %w", s, err)
			}
			return v * u.bytes / (1 << 20), nil
		}
	}
	return 0, fmt.Errorf("size %q has no known unit", s)
}

// BenchmarkIdleStackMemory sums the memory of one idle stand-in stack's
// nine containers as docker stats reports it.
func BenchmarkIdleStackMemory(b *testing.B) {
	needDocker(b)
	e := newEnv(b)
	name := benchPrefix + "mem"
	benchCreate(b, e, name, 7)
	project := "ktrdr--" + name
	b.Cleanup(func() { removeProject(project) })
	e.must(e.sandboxDir(name), "sandbox:up")
	time.Sleep(5 * time.Second)

	ids := dockerIDs("ps", "-q", "--filter", "label=com.docker.compose.project="+project)
	require.Len(b, ids, 9, "the stack's nine containers run")
	out, err := exec.Command("docker", append([]string{"stats", "--no-stream", "--format", "{{json .}}"}, ids...)...).Output()
	require.NoError(b, err)
	total, n := 0.0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var st struct{ Name, MemUsage string }
		require.NoError(b, json.Unmarshal([]byte(line), &st), line)
		used, _, _ := strings.Cut(st.MemUsage, "/")
		mib, err := benchMiB(used)
		require.NoError(b, err)
		b.Logf("%-45s %8.2f MiB", st.Name, mib)
		total += mib
		n++
	}
	require.Equal(b, 9, n)
	b.ReportMetric(total, "MiB")
	b.ReportMetric(total/float64(n), "MiB/container")
}

// BenchmarkListTenInstances times `sandbox:list` over ten registered
// instances, five running (slots 6–10) and five never started (slots 1–5),
// and counts the docker processes each list spawns through a docker shim
// first on PATH.
func BenchmarkListTenInstances(b *testing.B) {
	needDocker(b)
	e := newEnv(b)
	for slot := 1; slot <= 5; slot++ {
		benchCreate(b, e, fmt.Sprintf("%sidle%d", benchPrefix, slot), slot)
	}
	for slot := 6; slot <= 10; slot++ {
		name := fmt.Sprintf("%srun%d", benchPrefix, slot)
		benchCreate(b, e, name, slot)
		b.Cleanup(func() { removeProject("ktrdr--" + name) })
		e.must(e.sandboxDir(name), "sandbox:up", "-nowait")
	}
	time.Sleep(10 * time.Second) // let the five stacks settle: list is timed against idle stacks

	realDocker, err := exec.LookPath("docker")
	require.NoError(b, err)
	shimDir := b.TempDir()
	calls := filepath.Join(shimDir, "calls.log")
	shim := fmt.Sprintf("#!/bin/bash\nprintf '%%s\\n' \"$*\" >> '%s'\nexec '%s' \"$@\"\n", calls, realDocker)
	require.NoError(b, os.WriteFile(filepath.Join(shimDir, "docker"), []byte(shim), 0o755))
	listEnv := make([]string, 0, len(e.Env))
	for _, kv := range e.Env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			kv = "PATH=" + shimDir + string(os.PathListSeparator) + p
		}
		listEnv = append(listEnv, kv)
	}
	list := func(args ...string) (time.Duration, string, []string) {
		require.NoError(b, os.WriteFile(calls, nil, 0o644))
		cmd := exec.Command(filepath.Join(binDir, "sbx"), append([]string{"sandbox:list"}, args...)...)
		cmd.Dir, cmd.Env = e.Main, listEnv
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		out, err := cmd.Output()
		d := time.Since(start)
		require.NoError(b, err, "sandbox:list: %s", stderr.String())
		log, err := os.ReadFile(calls)
		require.NoError(b, err)
		return d, string(out), strings.Split(strings.TrimSpace(string(log)), "\n")
	}

	// A first run checks what list sees (and warms the caches).
	_, out, _ := list("-json")
	var listing sandbox.Listing
	require.NoError(b, json.Unmarshal([]byte(out), &listing))
	states := map[string]int{}
	for _, in := range listing.Instances {
		states[in.State]++
	}
	require.Len(b, listing.Instances, 10)
	require.Equal(b, map[string]int{sandbox.StateRunning: 5, sandbox.StateStopped: 5}, states)

	const runs = 10
	var times []time.Duration
	procs := 0
	b.ResetTimer()
	for i := range runs {
		d, _, dockerCalls := list()
		times = append(times, d)
		procs = max(procs, len(dockerCalls))
		if i == 0 {
			b.Logf("docker calls of one list: %q", dockerCalls)
		}
	}
	b.StopTimer()
	// The one docker call alone, for comparison.
	var psTimes []time.Duration
	for range runs {
		start := time.Now()
		out, err := exec.Command(realDocker, "ps", "-a", "--no-trunc", "--filter", "label=com.docker.compose.project", "--format", "{{json .}}").Output()
		psTimes = append(psTimes, time.Since(start))
		require.NoError(b, err, "%s", out)
	}
	b.Logf("list times: %v", times)
	b.Logf("docker ps times: %v", psTimes)
	b.ReportMetric(benchMS(benchMedian(psTimes)), "ms/docker-ps")
	b.ReportMetric(benchMS(benchMedian(times)), "ms/list")
	b.ReportMetric(benchMS(benchPercentile(times, 95)), "p95-ms/list")
	b.ReportMetric(float64(procs), "docker-procs/list")
}

// benchGateOverride is the override of the latency benchmark: workers retry
// registration quickly, and the backend turns healthy at readyAt (if set).
func benchGateOverride(readyAt time.Time) string {
	var sb strings.Builder
	sb.WriteString("services:\n")
	if !readyAt.IsZero() {
		fmt.Fprintf(&sb, "  backend:\n    environment:\n      KTRDR_STANDIN_READY_AT: %q\n", strconv.FormatInt(readyAt.UnixMilli(), 10))
	}
	for _, w := range benchWorkers {
		fmt.Fprintf(&sb, "  %s:\n    environment:\n      KTRDR_STANDIN_REGISTER_BACKOFF: \"100ms\"\n", w)
	}
	return sb.String()
}

// BenchmarkGateDetectionLatency measures, on a real stand-in stack, the time
// from the last service becoming ready to the gate passing. Per run the
// backend and the workers are recreated (a new backend forgets its workers;
// recreated workers register at once instead of at their 5 s re-check), the backend with
// KTRDR_STANDIN_READY_AT 5 s ahead; the gate runs from right after the
// recreate, and the latency is the instant it passed minus READY_AT.
func BenchmarkGateDetectionLatency(b *testing.B) {
	needDocker(b)
	e := newEnv(b)
	name := benchPrefix + "gate"
	benchCreate(b, e, name, 8)
	dir := e.sandboxDir(name)
	writeOverride(b, dir, benchGateOverride(time.Time{}))
	s := benchStackOf(b, e, name, true)
	b.Cleanup(func() { removeProject(s.Project) })
	e.must(dir, "sandbox:up")

	const runs, ahead = 20, 5 * time.Second
	checks := sandbox.KTRDR().GateChecks("127.0.0.1", s.Ports)
	var lat []time.Duration
	skipped := 0
	b.ResetTimer()
	for i := range runs {
		readyAt := time.UnixMilli(time.Now().Add(ahead).UnixMilli())
		writeOverride(b, dir, benchGateOverride(readyAt))
		recreate := benchCompose(b, s, append([]string{"up", "-d", "--no-deps", "--force-recreate", "backend"}, benchWorkers...)...)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		gr := (&gate.Gate{Checks: checks}).Run(ctx)
		passed := time.Now()
		cancel()
		require.True(b, gr.Passed, "run %d: gate %+v", i+1, gr)
		readyAfter := map[string]time.Duration{}
		for _, c := range gr.Checks {
			readyAfter[c.Name] = c.ReadyAfter
		}
		// The backend must not have looked healthy before READY_AT.
		require.GreaterOrEqual(b, start.Add(readyAfter["Backend healthy"]), readyAt, "run %d: backend healthy before READY_AT", i+1)
		if !start.Before(readyAt) || start.Add(readyAfter["Workers registered"]).After(readyAt) {
			// READY_AT was not the last readiness: the sample measures nothing.
			skipped++
			b.Logf("run %d skipped: recreate took %s, workers seen after %s, READY_AT %s after the gate started",
				i+1, recreate.Round(time.Millisecond), readyAfter["Workers registered"].Round(time.Millisecond), readyAt.Sub(start).Round(time.Millisecond))
			continue
		}
		d := passed.Sub(readyAt)
		lat = append(lat, d)
		b.Logf("run %d: recreate %s, workers seen after %s, passed %s after READY_AT",
			i+1, recreate.Round(time.Millisecond), readyAfter["Workers registered"].Round(time.Millisecond), d.Round(time.Millisecond))
	}
	b.StopTimer()
	require.NotEmpty(b, lat, "no usable sample")
	b.ReportMetric(benchMS(benchMedian(lat)), "median-ms")
	b.ReportMetric(benchMS(benchPercentile(lat, 95)), "p95-ms")
	b.ReportMetric(benchMS(slices.Max(lat)), "max-ms")
	b.ReportMetric(float64(len(lat)), "samples")
	b.ReportMetric(float64(skipped), "skipped")
}

// BenchmarkEntryPointOverhead times whole processes through the README's
// entry point, `go tool mage`, with a warm mage cache: sandbox:url, and
// sandbox:list with 10 registered instances (no stack running), each the
// median of 10, against `docker compose ls` (median of 10) and against the
// same targets run from the compiled binary. Issue 11's goals: url ≤ 200 ms,
// list ≤ compose ls + 100 ms.
func BenchmarkEntryPointOverhead(b *testing.B) {
	needDocker(b)
	e := newEnv(b)
	for i := 1; i <= 10; i++ {
		e.must(e.Main, "sandbox:create", fmt.Sprintf("%sovh%d", benchPrefix, i), fmt.Sprintf("-slot=%d", i))
	}
	wt := e.sandboxDir(benchPrefix + "ovh1")
	require.Equal(b, 0, e.run(wt, "go", "tool", "mage", "sandbox:url").Code) // warm the mage cache
	timeIt := func(dir, name string, args ...string) time.Duration {
		var ds []time.Duration
		for range 10 {
			cmd := exec.Command(name, args...)
			cmd.Dir, cmd.Env = dir, e.Env
			start := time.Now()
			out, err := cmd.CombinedOutput()
			ds = append(ds, time.Since(start))
			require.NoError(b, err, "%s %v: %s", name, args, out)
		}
		b.Logf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), ds)
		return benchMedian(ds)
	}
	url := timeIt(wt, "go", "tool", "mage", "sandbox:url")
	list := timeIt(e.Main, "go", "tool", "mage", "sandbox:list")
	urlBin := timeIt(wt, filepath.Join(binDir, "sbx"), "sandbox:url")
	listBin := timeIt(e.Main, filepath.Join(binDir, "sbx"), "sandbox:list")
	ls := timeIt(e.Main, "docker", "compose", "ls")
	b.ReportMetric(benchMS(url), "ms/url")
	b.ReportMetric(benchMS(list), "ms/list")
	b.ReportMetric(benchMS(urlBin), "ms/url-compiled")
	b.ReportMetric(benchMS(listBin), "ms/list-compiled")
	b.ReportMetric(benchMS(ls), "ms/compose-ls")
	b.ReportMetric(benchMS(list-ls), "ms/list-minus-compose-ls")
}

// BenchmarkShapeTimeToReady is issue 12's figure: time-to-ready of
// `sandbox:up` (stand-in mode) on the January-like fixture (30 s
// healthchecks, service_healthy chains), against `docker compose up -d
// --wait` of the same file with the same stand-in images and roles but
// without the rest of the suite's override (the file's own healthcheck
// cadence, no gate). Whole processes; each stack is removed with its
// volumes between rounds.
func BenchmarkShapeTimeToReady(b *testing.B) {
	needDocker(b)
	e := newEnv(b)
	e.withShape(b, "january")
	name := benchPrefix + "shape"
	benchCreate(b, e, name, 6)
	dir := e.sandboxDir(name)
	id := "ktrdr--" + name
	b.Cleanup(func() { removeProject(id); removeProject(id + "-plain") })

	var sbx, plain []time.Duration
	for round := range 2 {
		start := time.Now()
		r := e.sbx(dir, "sandbox:up")
		d := time.Since(start)
		require.Equal(b, 0, r.Code, r.String())
		sbx = append(sbx, d)
		e.must(dir, "sandbox:down", "-volumes")

		// The stand-in part of the suite's override only: images, roles, ports.
		data, err := os.ReadFile(filepath.Join(e.Home, ".ktrdr", "sandbox", "instances", id, "compose.override.json"))
		require.NoError(b, err)
		var doc map[string]map[string]map[string]any
		require.NoError(b, json.Unmarshal(data, &doc))
		for _, svc := range doc["services"] {
			delete(svc, "healthcheck")
			delete(svc, "labels")
		}
		standinOnly, err := json.Marshal(doc)
		require.NoError(b, err)
		path := filepath.Join(b.TempDir(), "standin-only.json")
		require.NoError(b, os.WriteFile(path, standinOnly, 0o644))
		s := benchStack{Project: id + "-plain", Dir: dir, EnvFile: filepath.Join(dir, ".env.sandbox"),
			Files: []string{filepath.Join(dir, "docker-compose.sandbox.yml"), path}}
		plain = append(plain, benchCompose(b, s, "up", "-d", "--wait", "--wait-timeout", "300"))
		benchCompose(b, s, "down", "--volumes", "--timeout", "1")
		b.Logf("round %d: sandbox:up %s, compose up -d --wait %s", round+1, sbx[round].Round(time.Millisecond), plain[round].Round(time.Millisecond))
	}
	b.ReportMetric(benchMS(benchMedian(sbx)), "ms/sandbox-up")
	b.ReportMetric(benchMS(benchMedian(plain)), "ms/compose-up-wait-file-cadence")
}
