// Command benchtable runs every benchmark and test behind the summary table
// of BENCHMARKS.md, unit and end-to-end, and prints the table in markdown:
// the machine, the commit, each row with the benchmark that printed its
// figure, and the steps it ran with their times. It is how BENCHMARKS.md is
// regenerated:
//
//	go run ./cmd/benchtable            # everything: up to an hour on 2 cores
//	go run ./cmd/benchtable -only unit # only the steps that need no Docker
//	go run ./cmd/benchtable -only e2e-twelve # one step
//
// The many-sandbox steps take the longest: e2e-physical about a minute,
// e2e-twelve about 5 minutes, e2e-thirtyfive up to 50 (35 minutes of
// start-ups at most, then the removal of every stack it started) while
// idle stacks load the machine, far less once they do not.
//
// The end-to-end steps need the Docker engine with the compose v2 plugin and
// the stand-in image (`go tool mage stack:images`). Each of them holds the
// lock -lock (flock(2), the same lock `flock /tmp/ktrdr-e2e.lock …` takes)
// while it runs and only then, so that other users of the engine wait for
// one step at a time; the table says how long each step waited. Every
// command is run with its arguments (no shell). What each step printed is
// kept in -raw. The command is not part of CI.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// A step is one `go test` run.
type step struct {
	ID   string
	E2E  bool     // runs the compiled e2e test binary, holding the lock
	Pkg  string   // the package, for unit steps
	Args []string // go test flags (e2e: given to the binary as -test.<flag>)
}

var steps = []step{
	{ID: "unit-resolver", Pkg: "./sandbox/apiurl/", Args: []string{"-run", "^$", "-bench", "^BenchmarkResolve$", "-benchmem", "-count", "5"}},
	{ID: "unit-envfile", Pkg: "./sandbox/envfile/", Args: []string{"-run", "^$", "-bench", "^(BenchmarkParse|BenchmarkGodotenvFullParse)$", "-benchmem", "-count", "5"}},
	{ID: "unit-core", Pkg: "./sandbox/", Args: []string{"-run", "^$", "-bench",
		"^(BenchmarkRegisterWith100Instances|BenchmarkPreflight)$", "-benchmem", "-count", "5"}},
	{ID: "unit-stack", Pkg: "./sandbox/", Args: []string{"-run", "^$", "-bench", "^BenchmarkLoadStack$", "-benchtime", "20x", "-count", "3"}},
	{ID: "unit-gate", Pkg: "./sandbox/gate/", Args: []string{"-run", "^$", "-bench", "^BenchmarkGateDetectionLatency$", "-benchtime", "20x"}},
	{ID: "unit-rollback", Pkg: "./sandbox/merge/", Args: []string{"-run", "^$", "-bench", "^BenchmarkRollback$", "-benchtime", "500x"}},
	{ID: "e2e-rollback", E2E: true, Args: e2eBench("BenchmarkMergeRollbackWholeProcess")},
	{ID: "e2e-gate", E2E: true, Args: e2eBench("BenchmarkGateDetectionLatency")},
	{ID: "e2e-up", E2E: true, Args: e2eBench("BenchmarkUpVersusCompose")},
	{ID: "e2e-memory", E2E: true, Args: e2eBench("BenchmarkIdleStackMemory")},
	{ID: "e2e-list", E2E: true, Args: e2eBench("BenchmarkListTenInstances")},
	{ID: "e2e-budget", E2E: true, Args: e2eBench("BenchmarkBudgetCheckCost")},
	{ID: "e2e-entry", E2E: true, Args: e2eBench("BenchmarkEntryPointOverhead")},
	{ID: "e2e-agent", E2E: true, Args: e2eBench("BenchmarkAgentOneStep")},
	{ID: "e2e-shape", E2E: true, Args: e2eBench("BenchmarkShapeTimeToReady")},
	{ID: "e2e-physical", E2E: true, Args: e2eBench("BenchmarkUpVersusPhysical")},
	{ID: "e2e-twelve", E2E: true, Args: e2eBenchTimeout("BenchmarkNthUpAndIdleCost", "30m")},
	{ID: "e2e-thirtyfive", E2E: true, Args: e2eBenchTimeout("BenchmarkThirtyFiveAtOnce", "90m")},
	{ID: "e2e-concurrent", E2E: true, Args: e2eTest("TestEntryPointsRunConcurrentlyInOneCheckout")},
	{ID: "e2e-kill", E2E: true, Args: e2eTest("TestKillDuringCreateAndDestroy")},
}

func e2eBench(name string) []string { return e2eBenchTimeout(name, "20m") }

// e2eBenchTimeout is e2eBench with a longer -timeout, for a benchmark that
// starts many stacks: its own budget stays well inside it, since a test
// binary that times out skips every clean-up.
func e2eBenchTimeout(name, timeout string) []string {
	return []string{"-run", "^$", "-bench", "^" + name + "$", "-benchtime", "1x", "-v", "-timeout", timeout}
}

func e2eTest(name string) []string {
	return []string{"-run", "^" + name + "$", "-v", "-timeout", "20m"}
}

// ran is what running a step gave.
type ran struct {
	Out      *output
	Err      error // the run failed (its output may still hold figures)
	Took     time.Duration
	LockWait time.Duration
	Load     [2]string // load average before and after
	Raw      string    // the file holding its output
}

func main() {
	only := flag.String("only", "", "run only the steps whose id starts with this (unit, e2e, e2e-list, …)")
	lock := flag.String("lock", "/tmp/ktrdr-e2e.lock", "lock file the end-to-end steps hold while they run (flock)")
	raw := flag.String("raw", "", "folder for each step's output (default: a new temporary folder)")
	flag.Parse()
	if err := run(*only, *lock, *raw, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(only, lock, raw string, stdout, stderr io.Writer) error {
	start := time.Now()
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if raw == "" {
		if raw, err = os.MkdirTemp("", "benchtable-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(raw, 0o755); err != nil {
		return err
	}
	machine := describeMachine(root)
	var todo []step
	for _, s := range steps {
		if strings.HasPrefix(s.ID, only) {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		return fmt.Errorf("no step id starts with %q", only)
	}

	results := map[string]*ran{}
	var e2eBin string
	var e2eErr error
	for i, s := range todo {
		fmt.Fprintf(stderr, "[%d/%d] %s: %s\n", i+1, len(todo), s.ID, strings.Join(s.Args, " "))
		r := &ran{Raw: filepath.Join(raw, s.ID+".txt")}
		results[s.ID] = r
		var cmd *exec.Cmd
		if s.E2E {
			if e2eBin == "" && e2eErr == nil {
				e2eBin, e2eErr = buildE2E(root, raw)
			}
			if e2eErr != nil {
				r.Err = e2eErr
				fmt.Fprintf(stderr, "    not run: %v\n", e2eErr)
				continue
			}
			args := make([]string, len(s.Args))
			for k, a := range s.Args {
				if strings.HasPrefix(a, "-") {
					a = "-test." + a[1:]
				}
				args[k] = a
			}
			cmd = exec.Command(e2eBin, args...)
			cmd.Dir = filepath.Join(root, "e2e") // the binary finds the project above its folder
		} else {
			cmd = exec.Command("go", append([]string{"test", s.Pkg}, s.Args...)...)
			cmd.Dir = root
		}
		runStep(cmd, s.E2E, lock, r)
		status := "ok"
		if r.Err != nil {
			status = "FAILED: " + r.Err.Error()
		}
		fmt.Fprintf(stderr, "    %s in %s (lock wait %s), output in %s\n", status,
			r.Took.Round(time.Second), r.LockWait.Round(time.Second), r.Raw)
	}

	failed := render(stdout, machine, results, todo, time.Since(start), only)
	if failed > 0 {
		return fmt.Errorf("%d row(s) without a figure: see the table and %s", failed, raw)
	}
	return nil
}

// runStep runs cmd (holding lock for an end-to-end step) and records its
// output, time and the machine's load around it in r.
func runStep(cmd *exec.Cmd, e2e bool, lock string, r *ran) {
	if e2e && lock != "" {
		t := time.Now()
		unlock, err := lockFile(lock)
		r.LockWait = time.Since(t)
		if err != nil {
			r.Err = fmt.Errorf("lock %s: %w", lock, err)
			return
		}
		defer unlock()
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	r.Load[0] = loadAverage()
	t := time.Now()
	err := cmd.Run()
	r.Took = time.Since(t)
	r.Load[1] = loadAverage()
	if werr := os.WriteFile(r.Raw, buf.Bytes(), 0o644); werr != nil && err == nil {
		err = werr
	}
	out, perr := parseOutput(buf.String())
	r.Out, r.Err = out, errors.Join(err, perr)
}

// buildE2E compiles the e2e test binary into dir.
func buildE2E(root, dir string) (string, error) {
	if out, err := exec.Command("docker", "compose", "version", "--short").CombinedOutput(); err != nil {
		return "", fmt.Errorf("the end-to-end steps need the docker compose v2 plugin: %v: %s", err, bytes.TrimSpace(out))
	}
	bin := filepath.Join(dir, "e2e.test")
	cmd := exec.Command("go", "test", "-c", "-o", bin, "./e2e/")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go test -c ./e2e/: %v: %s", err, out)
	}
	return bin, nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// describeMachine says what the figures were measured on.
func describeMachine(root string) string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).Output()
		if err != nil {
			return "unavailable"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	commit := first("git", "-C", root, "rev-parse", "--short", "HEAD")
	if st := first("git", "-C", root, "status", "--porcelain"); st != "" && st != "unavailable" {
		commit += " with uncommitted changes"
	}
	kernel := "?"
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(data))
	}
	return fmt.Sprintf("%d cores (%s)%s, %s/%s kernel %s; Docker Engine %s, Docker Compose %s; %s; commit %s",
		runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH, kernel,
		first("docker", "version", "--format", "{{.Server.Version}}"), first("docker", "compose", "version", "--short"),
		first("go", "env", "GOVERSION"), commit)
}

// loadAverage is the first three fields of /proc/loadavg ("" elsewhere).
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
