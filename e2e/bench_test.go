package e2e

// Whole-command benchmarks. They drive the real engine with stand-in stacks
// and take minutes; run one at a time, once:
//
//	go test ./e2e/ -run '^$' -bench BenchmarkUpVersusCompose -benchtime 1x -timeout 30m -v
//
// or all of them, with the unit benchmarks, printing BENCHMARKS.md's table:
//
//	go run ./cmd/benchtable
//
// Each benchmark ignores b.N: it takes a fixed number of samples and reports
// them with b.ReportMetric. They use only slots 6–10 and sandbox names that
// start with e2e-bench-, and remove everything they start.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
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
		// The checkout's override, then the suite's own (its networks'
		// subnets among them): without the latter compose would see the
		// networks changed and try to make them again.
		s.Files = append(s.Files, filepath.Join(dir, "docker-compose.sandbox.override.yml"),
			filepath.Join(e.Home, ".ktrdr", "sandbox", "instances", s.Project, sandbox.OverrideFile))
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

// benchSpread reports the median, min and max of ds as metrics named
// "ms/"+name, "min-ms/"+name and "max-ms/"+name.
func benchSpread(b *testing.B, name string, ds []time.Duration) time.Duration {
	m := benchMedian(ds)
	b.ReportMetric(benchMS(m), "ms/"+name)
	b.ReportMetric(benchMS(slices.Min(ds)), "min-ms/"+name)
	b.ReportMetric(benchMS(slices.Max(ds)), "max-ms/"+name)
	return m
}

// benchComposeOutput runs `docker compose … args…` like benchCompose and
// returns its standard output.
func benchComposeOutput(tb testing.TB, s benchStack, args ...string) []byte {
	tb.Helper()
	full := []string{"compose", "-p", s.Project, "--env-file", s.EnvFile}
	for _, f := range s.Files {
		full = append(full, "-f", f)
	}
	cmd := exec.Command("docker", append(full, args...)...)
	cmd.Dir, cmd.Env = s.Dir, benchCleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(tb, err, "docker %s: %s", strings.Join(full, " "), stderr.String())
	return out
}

// benchGateCheckInterval is the healthcheck interval that stands for the
// gate's cadence (it polls each check after 100 ms, then 150 ms, then every
// 200 ms): the steady 200 ms. start_interval, which could give the first
// polls 100 ms, needs Engine API 1.44.
const benchGateCheckInterval = "200ms"

// benchGateHealthOverride writes a compose override that turns the gate's
// checks into compose healthchecks: every service a check names gets one
// healthcheck running its checks with the gate's own probes (the gatecheck
// command, mounted read-only), against the container ports, every
// benchGateCheckInterval; every other service has its healthcheck removed,
// so that `up --wait` waits for exactly what the gate waits for (the others
// only have to be running, as after `up -d`). It returns the override's
// path and logs what it holds.
func benchGateHealthOverride(b *testing.B, s benchStack, gatecheck string) string {
	b.Helper()
	var cfg struct {
		Services map[string]struct {
			Ports []struct {
				Target    int
				Published string
			}
		}
	}
	require.NoError(b, json.Unmarshal(benchComposeOutput(b, s, "config", "--format", "json"), &cfg))
	type probe struct {
		names []string
		ports map[string]int
	}
	byService := map[string]*probe{}
	var order []string
	for _, c := range sandbox.KTRDR().Checks {
		svc, ok := cfg.Services[c.Service]
		require.True(b, ok, "check %q: service %s not in the stack", c.Name, c.Service)
		target := 0
		for _, p := range svc.Ports {
			if p.Published == strconv.Itoa(s.Ports[c.PortKey]) {
				target = p.Target
			}
		}
		require.NotZero(b, target, "check %q: %s publishes no %s (%d)", c.Name, c.Service, c.PortKey, s.Ports[c.PortKey])
		pr := byService[c.Service]
		if pr == nil {
			pr = &probe{ports: map[string]int{}}
			byService[c.Service] = pr
			order = append(order, c.Service)
		}
		pr.names = append(pr.names, c.Name)
		pr.ports[c.PortKey] = target
	}
	// YAML, for compose's !reset: a service the gate does not probe has no
	// healthcheck at all, so --wait waits for it to run (a disabled one,
	// test NONE, makes this compose fail with "has no healthcheck configured").
	var sb strings.Builder
	sb.WriteString("# The gate's checks as compose healthchecks (BenchmarkUpVersusCompose).\nservices:\n")
	for _, name := range slices.Sorted(maps.Keys(cfg.Services)) {
		pr, ok := byService[name]
		if !ok {
			fmt.Fprintf(&sb, "  %q:\n    healthcheck: !reset {}\n", name)
			continue
		}
		test := []string{"CMD", "/gatecheck"}
		for _, k := range slices.Sorted(maps.Keys(pr.ports)) {
			test = append(test, "-port", fmt.Sprintf("%s=%d", k, pr.ports[k]))
		}
		test = append(test, pr.names...)
		svc, err := json.Marshal(map[string]any{ // JSON is YAML's flow style
			"volumes": []any{map[string]any{"type": "bind", "source": gatecheck, "target": "/gatecheck", "read_only": true}},
			"healthcheck": map[string]any{"test": test, "interval": benchGateCheckInterval,
				"timeout": gate.ProbeTimeout.String(), "retries": 1000, "start_period": "0s"},
		})
		require.NoError(b, err)
		fmt.Fprintf(&sb, "  %q: %s\n", name, svc)
		b.Logf("gate-check healthcheck of %s: %q every %s", name, test[1:], benchGateCheckInterval)
	}
	path := filepath.Join(b.TempDir(), "gate-healthchecks.yml")
	require.NoError(b, os.WriteFile(path, []byte(sb.String()), 0o644))
	withIt := s
	withIt.Files = append(slices.Clone(s.Files), path)
	// What compose will run: healthchecks on the gate's services only.
	var got struct {
		Services map[string]struct{ Healthcheck *struct{ Test []string } }
	}
	require.NoError(b, json.Unmarshal(benchComposeOutput(b, withIt, "config", "--format", "json"), &got))
	for name, svc := range got.Services {
		_, gated := byService[name]
		if gated {
			require.NotNil(b, svc.Healthcheck, name)
			require.Equal(b, "/gatecheck", svc.Healthcheck.Test[1], name)
		} else {
			require.Nil(b, svc.Healthcheck, "%s keeps no healthcheck", name)
		}
	}
	return path
}

// benchBuildGatecheck builds the gatecheck command static, for the engine's
// (local) containers.
func benchBuildGatecheck(b *testing.B) string {
	b.Helper()
	out := filepath.Join(b.TempDir(), "gatecheck")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/benchtable/gatecheck")
	cmd.Dir, cmd.Env = repoRoot, append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	msg, err := cmd.CombinedOutput()
	require.NoError(b, err, "build gatecheck: %s", msg)
	return out
}

// BenchmarkUpVersusCompose compares the time-to-ready of `sandbox:up`
// (whole process: preflight, compose up -d, gate) on a stand-in stack in
// slot 6 with three ways of starting the same stack with docker compose
// alone, alternating, with down -v between runs and one untimed
// sandbox:up first:
//
//   - compose-up-poll: `up -d --remove-orphans` with the files sandbox:up
//     passes (the stack file and the suite's override), then the gate's
//     checks one after another, each polled every 100 ms (a shell script's
//     health loop);
//   - wait-gate-checks: `up -d --wait` with the same files plus an override
//     that makes the gate's checks the healthchecks of the services they
//     probe, every 200 ms, and removes every other healthcheck
//     (benchGateHealthOverride): --wait waits for what the gate waits for;
//   - wait-file-checks: `up -d --wait` with the stack file alone: the file's
//     own healthchecks at the file's cadence, on every service that has one
//     (prometheus, grafana and the workers included), which is not what the
//     gate checks.
func BenchmarkUpVersusCompose(b *testing.B) {
	needDocker(b)
	e := newEnv(b)
	name := benchPrefix + "up"
	benchCreate(b, e, name, 6)
	dir := e.sandboxDir(name)
	fileOnly := benchStackOf(b, e, name, false)
	b.Cleanup(func() { removeProject(fileOnly.Project) })
	down := func() { benchCompose(b, fileOnly, "down", "-v", "--remove-orphans", "--timeout", "10") }
	sbxUp := func() time.Duration {
		start := time.Now()
		r := e.sbx(dir, "sandbox:up")
		d := time.Since(start)
		require.Equal(b, 0, r.Code, r.String())
		require.Contains(b, r.Stdout, "Startability Gate: PASSED")
		return d
	}
	sbxUp() // untimed: warms the engine and writes the suite's override
	down()
	suite := fileOnly
	suite.Files = append(slices.Clone(fileOnly.Files), filepath.Join(e.Home, ".ktrdr", "sandbox", "instances", fileOnly.Project, sandbox.OverrideFile))
	require.FileExists(b, suite.Files[1])
	gateHealth := suite
	gateHealth.Files = append(slices.Clone(suite.Files), benchGateHealthOverride(b, suite, benchBuildGatecheck(b)))

	ways := []struct {
		metric string
		up     func() time.Duration
	}{
		{"sandbox-up", sbxUp},
		{"compose-up-poll", func() time.Duration {
			start := time.Now()
			benchCompose(b, suite, "up", "-d", "--remove-orphans")
			benchWaitSequential(b, suite.Ports, 2*time.Minute)
			return time.Since(start)
		}},
		{"wait-gate-checks", func() time.Duration {
			return benchCompose(b, gateHealth, "up", "-d", "--remove-orphans", "--wait", "--wait-timeout", "120")
		}},
		{"wait-file-checks", func() time.Duration {
			return benchCompose(b, fileOnly, "up", "-d", "--remove-orphans", "--wait", "--wait-timeout", "120")
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
			b.Logf("round %d: %s ready after %s", r+1, ways[i].metric, d.Round(time.Millisecond))
			down()
		}
	}
	b.StopTimer()
	med := make([]time.Duration, len(ways))
	for i, w := range ways {
		med[i] = benchSpread(b, w.metric, times[i])
		b.Logf("%s: median %s of %v", w.metric, med[i].Round(time.Millisecond), times[i])
	}
	b.ReportMetric(float64(rounds), "rounds")
	for i, w := range ways[1:] {
		b.ReportMetric(float64(med[0])/float64(med[i+1]), "ratio-sandbox-up/"+w.metric)
	}
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
	b.ReportMetric(float64(n), "containers")
	b.ReportMetric(total, "MiB")
	b.ReportMetric(total/float64(n), "MiB/container")
}

// benchLookPath is the file exec.LookPath would find for name under the
// PATH of environment env ("" when none).
func benchLookPath(env []string, name string) string {
	for _, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, dir := range filepath.SplitList(p) {
				f := filepath.Join(dir, name)
				if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
					return f
				}
			}
		}
	}
	return ""
}

// BenchmarkListTenInstances times `sandbox:list` (the compiled target,
// whole process) over ten registered instances, five running (slots 6–10)
// and five never started (slots 1–5), with the CPU and memory of the
// running ones (docker stats, run alongside docker ps: each call is also
// timed alone), and counts the docker processes each
// list spawns through a docker shim first on PATH: the shim records every
// call's arguments in a file of its own, so that a list that ran no docker
// counts 0 and fails the benchmark. The timed lists run without the shim;
// the counted ones with it. The docker calls a list made are then replayed
// alone, and once with --format '{{json .}}' instead (every field of every
// container), for comparison.
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

	realDocker := benchLookPath(e.Env, "docker")
	require.NotEmpty(b, realDocker, "docker on PATH")
	shimDir := b.TempDir()
	callsDir := filepath.Join(shimDir, "calls")
	require.NoError(b, os.Mkdir(callsDir, 0o755))
	// One file per call, its arguments NUL-separated: the file count is the
	// process count, and the arguments can be replayed exactly.
	shim := fmt.Sprintf("#!/bin/bash\nf=$(mktemp '%s/call.XXXXXX') || exit 125\nprintf '%%s\\0' \"$@\" > \"$f\"\nexec '%s' \"$@\"\n", callsDir, realDocker)
	require.NoError(b, os.WriteFile(filepath.Join(shimDir, "docker"), []byte(shim), 0o755))
	shimEnv := make([]string, 0, len(e.Env))
	for _, kv := range e.Env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			kv = "PATH=" + shimDir + string(os.PathListSeparator) + p
		}
		shimEnv = append(shimEnv, kv)
	}
	require.Equal(b, filepath.Join(shimDir, "docker"), benchLookPath(shimEnv, "docker"), "the shim is the docker that PATH finds")

	// list runs sandbox:list with env and returns its time, its output and
	// the docker calls the shim recorded (none without the shim).
	list := func(env []string, args ...string) (time.Duration, string, [][]string) {
		ents, err := os.ReadDir(callsDir)
		require.NoError(b, err)
		for _, en := range ents {
			require.NoError(b, os.Remove(filepath.Join(callsDir, en.Name())))
		}
		cmd := exec.Command(filepath.Join(binDir, "sbx"), append([]string{"sandbox:list"}, args...)...)
		cmd.Dir, cmd.Env = e.Main, env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		out, err := cmd.Output()
		d := time.Since(start)
		require.NoError(b, err, "sandbox:list: %s", stderr.String())
		ents, err = os.ReadDir(callsDir)
		require.NoError(b, err)
		var calls [][]string
		for _, en := range ents {
			data, err := os.ReadFile(filepath.Join(callsDir, en.Name()))
			require.NoError(b, err)
			calls = append(calls, strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00"))
		}
		return d, string(out), calls
	}

	// A first run checks what list sees (and warms the caches). Until the
	// new stacks settle, docker stats may not answer within the list's
	// limit: the list then shows no figures, and says why.
	var listing sandbox.Listing
	for try := 1; ; try++ {
		_, out, _ := list(e.Env, "-json")
		listing = sandbox.Listing{}
		require.NoError(b, json.Unmarshal([]byte(out), &listing))
		if len(listing.StatsErrors) == 0 || try == 6 {
			break
		}
		b.Logf("list %d showed no figures: %v", try, listing.StatsErrors)
		time.Sleep(10 * time.Second)
	}
	require.Empty(b, listing.StatsErrors)
	states := map[string]int{}
	for _, in := range listing.Instances {
		states[in.State]++
	}
	require.Len(b, listing.Instances, 10)
	require.Equal(b, map[string]int{sandbox.StateRunning: 5, sandbox.StateStopped: 5}, states)
	for _, in := range listing.Instances {
		if in.State == sandbox.StateRunning {
			require.NotNil(b, in.MemoryBytes, "%s: the list shows what a running sandbox uses", in.ID)
			require.Positive(b, *in.MemoryBytes, in.ID)
		}
	}

	const runs = 10
	var counts []int
	var lastCalls [][]string
	for i := range runs {
		_, _, calls := list(shimEnv)
		counts = append(counts, len(calls))
		lastCalls = calls
		if i == 0 {
			b.Logf("docker calls of one list: %q", calls)
		}
	}
	b.Logf("docker processes per list, %d lists through the shim: %v", runs, counts)
	require.GreaterOrEqual(b, slices.Min(counts), 1, "a list that runs no docker process through the shim: the shim was not used")

	var times []time.Duration
	b.ResetTimer()
	for range runs {
		d, _, calls := list(e.Env)
		require.Empty(b, calls, "the timed lists do not go through the shim")
		times = append(times, d)
	}
	b.StopTimer()

	// The docker calls of one list alone, replayed in order with the real docker.
	containers := len(dockerIDs("ps", "-aq", "--filter", "label=com.docker.compose.project"))
	replay := func(calls [][]string) []time.Duration {
		var ds []time.Duration
		for range runs {
			start := time.Now()
			for _, args := range calls {
				out, err := exec.Command(realDocker, args...).CombinedOutput()
				require.NoError(b, err, "docker %q: %s", args, out)
			}
			ds = append(ds, time.Since(start))
		}
		return ds
	}
	psTimes := replay(lastCalls)
	// Each call alone: the list runs them at the same time.
	alone := map[string][]time.Duration{}
	for _, call := range lastCalls {
		alone[call[0]] = replay([][]string{call})
	}
	require.Contains(b, alone, "stats", "five sandboxes run: the list asks docker stats: %q", lastCalls)
	// The same with every field of every container asked for.
	jsonCalls := slices.Clone(lastCalls)
	for k, args := range jsonCalls {
		if i := slices.Index(args, "--format"); len(args) > 0 && args[0] == "ps" && i >= 0 && i+1 < len(args) {
			jsonCalls[k] = slices.Clone(args)
			jsonCalls[k][i+1] = "{{json .}}"
		}
	}
	require.NotEqual(b, lastCalls, jsonCalls, "the list's docker ps call names its format: %q", lastCalls)
	jsonTimes := replay(jsonCalls)
	b.Logf("list times: %v", times)
	b.Logf("docker %q (%d compose containers on the engine): %v", lastCalls, containers, psTimes)
	b.Logf("docker %q: %v", jsonCalls, jsonTimes)
	b.ReportMetric(float64(containers), "containers")
	b.ReportMetric(benchMS(benchMedian(psTimes)), "ms/docker-calls-in-turn")
	b.ReportMetric(benchMS(benchMedian(alone["ps"])), "ms/docker-ps")
	b.ReportMetric(benchMS(benchMedian(alone["stats"])), "ms/docker-stats")
	b.ReportMetric(benchMS(benchMedian(jsonTimes)), "ms/docker-call-json")
	b.ReportMetric(benchMS(benchMedian(times)), "ms/list")
	b.ReportMetric(benchMS(benchPercentile(times, 95)), "p95-ms/list")
	b.ReportMetric(runs, "lists")
	b.ReportMetric(float64(slices.Min(counts)), "min-docker-procs/list")
	b.ReportMetric(float64(slices.Max(counts)), "max-docker-procs/list")
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
// recreate, and the latency is the instant it passed minus READY_AT. A run
// in which READY_AT was not the last readiness measures nothing: it is
// dropped, and the benchmark reports how many runs it kept and how many it
// dropped for each reason.
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
	// Why a run measures nothing: its sample is dropped, counted, and reported.
	const lateStart, workersLast = "the gate started after READY_AT (the recreate outlasted the lead)",
		"the workers were seen after READY_AT (the backend was not the last to be ready)"
	dropped := map[string]int{}
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
		why := ""
		switch {
		case !start.Before(readyAt):
			why = lateStart
		case start.Add(readyAfter["Workers registered"]).After(readyAt):
			why = workersLast
		}
		if why != "" {
			dropped[why]++
			b.Logf("run %d dropped, %s: recreate took %s, workers seen after %s, READY_AT %s after the gate started",
				i+1, why, recreate.Round(time.Millisecond), readyAfter["Workers registered"].Round(time.Millisecond), readyAt.Sub(start).Round(time.Millisecond))
			continue
		}
		d := passed.Sub(readyAt)
		lat = append(lat, d)
		b.Logf("run %d kept: recreate %s, workers seen after %s, passed %s after READY_AT",
			i+1, recreate.Round(time.Millisecond), readyAfter["Workers registered"].Round(time.Millisecond), d.Round(time.Millisecond))
	}
	b.StopTimer()
	b.Logf("kept %d of %d runs; dropped %d: %d because %s, %d because %s", len(lat), runs, runs-len(lat),
		dropped[lateStart], lateStart, dropped[workersLast], workersLast)
	b.ReportMetric(float64(runs), "runs")
	b.ReportMetric(float64(len(lat)), "kept")
	b.ReportMetric(float64(dropped[lateStart]), "dropped-late-start")
	b.ReportMetric(float64(dropped[workersLast]), "dropped-workers-last")
	require.NotEmpty(b, lat, "no usable sample")
	b.ReportMetric(benchMS(benchMedian(lat)), "median-ms")
	b.ReportMetric(benchMS(benchPercentile(lat, 95)), "p95-ms")
	b.ReportMetric(benchMS(slices.Max(lat)), "max-ms")
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
	benchSpread(b, "sandbox-up", sbx)
	benchSpread(b, "compose-up-wait-file-cadence", plain)
	b.ReportMetric(float64(len(sbx)), "rounds")
}
