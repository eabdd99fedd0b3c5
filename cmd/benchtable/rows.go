package main

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// A row of the summary table: its figure comes only from what the step's
// benchmark or test printed, or the row says why there is none.
type row struct {
	What, Goal string
	Step       string // the step that runs the benchmark
	By         string // the benchmark or test that prints the figure
	Figure     func(o *output) (string, error)
}

// rows are the summary table of BENCHMARKS.md, in its order.
var rows = []row{
	resolverRow("five-below-sandbox-root", "`apiurl.Resolve` (the ktrdr CLI's --url/--port rule) from five folders below a sandbox root (reads the API port and `SANDBOX_HOST` from one read of the file)"),
	resolverRow("no-env-file-above", "`apiurl.Resolve` with no `.env.sandbox` above (no checkout: walks to `/`)"),
	resolverRow("main-checkout-three-below-root", "`apiurl.Resolve` in a main checkout, three folders below its root"),
	parseRow("BenchmarkParse", "`envfile.Parse` of a sandbox env file (every read of `.env.sandbox`: the resolver, every command)"),
	parseRow("BenchmarkGodotenvFullParse", "godotenv's parse of the same bytes, for comparison (the suite no longer uses it to read)"),
	{What: "slot allocation with 100 registered instances (register + unregister, each a locked, fsynced write)", Goal: "—",
		Step: "unit-core", By: "BenchmarkRegisterWith100Instances", Figure: func(o *output) (string, error) {
			s, n, err := spreadMetric(o, "BenchmarkRegisterWith100Instances", "ns/op")
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("**%s** per pair (%s–%s over %d runs)", milli(s.Median/1e6), milli(s.Min/1e6), milli(s.Max/1e6), n), nil
		}},
	{What: fmt.Sprintf("port preflight of a free slot (the profile's %d port rules, each port bound and closed; a free slot makes no docker call)", len(sandbox.KTRDR().Ports)), Goal: "—",
		Step: "unit-core", By: "BenchmarkPreflight", Figure: func(o *output) (string, error) {
			s, n, err := spreadMetric(o, "BenchmarkPreflight", "ns/op")
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("**%s** (%s–%s over %d runs)", milli(s.Median/1e6), milli(s.Min/1e6), milli(s.Max/1e6), n), nil
		}},
	loadStackRow("january/new", "reading a new sandbox's stack, January file (`sandbox:create`, `sandbox:ports`): the walk of every file it names, the readings of compose for the sandbox and with each port variable probed, the uninterpolated model"),
	loadStackRow("january/slot1", "reading a sandbox's stack in slot 1, January file (`sandbox:up`): as above, plus the reading of the main checkout's defaults"),
	{What: "gate detection latency, fake services (httptest), real clock: last service ready → gate passed", Goal: "< 300 ms",
		Step: "unit-gate", By: "BenchmarkGateDetectionLatency (./sandbox/gate)", Figure: func(o *output) (string, error) {
			const name = "BenchmarkGateDetectionLatency"
			med, err1 := o.one(name, "median-ms")
			p95, err2 := o.one(name, "p95-ms")
			mx, err3 := o.one(name, "max-ms")
			if err := firstErr(err1, err2, err3); err != nil {
				return "", err
			}
			rs := o.Bench[name]
			return fmt.Sprintf("median **%s**, p95 **%s**, max %s over %d runs (none dropped)", milli(med), milli(p95), milli(mx), rs[len(rs)-1].N), nil
		}},
	{What: "gate detection latency, real stand-in stack (backend recreated with `KTRDR_STANDIN_READY_AT` 5 s ahead)", Goal: "< 300 ms",
		Step: "e2e-gate", By: "BenchmarkGateDetectionLatency (./e2e)", Figure: func(o *output) (string, error) {
			v, err := ones(o, "BenchmarkGateDetectionLatency", "runs", "kept", "dropped-late-start", "dropped-workers-last", "median-ms", "p95-ms", "max-ms")
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("median **%s**, p95 **%s**, max %s over the %.0f kept of %.0f runs; dropped %.0f: %.0f because the gate started after READY_AT, %.0f because the workers were seen after READY_AT",
				milli(v[4]), milli(v[5]), milli(v[6]), v[1], v[0], v[2]+v[3], v[2], v[3]), nil
		}},
	{What: "time-to-ready, `sandbox:up` vs `docker compose up -d` with the same files (stack file + the suite's override) + the gate's checks polled one after another every 100 ms", Goal: "< +10 %",
		Step: "e2e-up", By: "BenchmarkUpVersusCompose", Figure: upFigure("compose-up-poll")},
	{What: "time-to-ready, `sandbox:up` vs `docker compose up -d --wait` with **the gate's checks as compose healthchecks** (same probes, every 200 ms, only on the services the gate probes: db, backend, jaeger; every other healthcheck removed)", Goal: "—",
		Step: "e2e-up", By: "BenchmarkUpVersusCompose", Figure: upFigure("wait-gate-checks")},
	{What: "time-to-ready, `sandbox:up` vs `docker compose up -d --wait` with **the file's own healthchecks** (the stack file alone: 2 s interval, and --wait also waits for prometheus, grafana and the four workers)", Goal: "—",
		Step: "e2e-up", By: "BenchmarkUpVersusCompose", Figure: upFigure("wait-file-checks")},
	{What: "memory of one idle stand-in stack (after 5 s idle, `docker stats`)", Goal: "—",
		Step: "e2e-memory", By: "BenchmarkIdleStackMemory", Figure: func(o *output) (string, error) {
			v, err := ones(o, "BenchmarkIdleStackMemory", "MiB", "MiB/container", "containers")
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("**%.0f MiB** (%.1f MiB per container, %.0f containers)", v[0], v[1], v[2]), nil
		}},
	{What: "`sandbox:list` (compiled target) with 10 registered instances, 5 running, with their CPU and memory", Goal: "one docker ps + one docker stats, at once",
		Step: "e2e-list", By: "BenchmarkListTenInstances", Figure: func(o *output) (string, error) {
			v, err := ones(o, "BenchmarkListTenInstances", "lists", "ms/list", "p95-ms/list", "min-docker-procs/list", "max-docker-procs/list")
			if err != nil {
				return "", err
			}
			procs := fmt.Sprintf("%.0f–%.0f docker processes", v[3], v[4])
			if v[3] == v[4] {
				procs = fmt.Sprintf("%.0f docker process", v[3])
				if v[3] != 1 {
					procs += "es"
				}
			}
			return fmt.Sprintf("median **%s**, p95 %s over %.0f lists; **%s** per list in each of %.0f lists counted by a docker shim on PATH",
				milli(v[1]), milli(v[2]), v[0], procs, v[0]), nil
		}},
	{What: "the docker calls of one `sandbox:list`, replayed", Goal: "—",
		Step: "e2e-list", By: "BenchmarkListTenInstances", Figure: func(o *output) (string, error) {
			v, err := ones(o, "BenchmarkListTenInstances", "ms/docker-ps", "ms/docker-stats", "ms/docker-calls-in-turn", "containers", "ms/docker-call-json")
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("docker ps **%s**, docker stats **%s**, one after the other %s, with %.0f compose containers on the engine (medians of 10); with `--format '{{json .}}'` for ps: %s",
				milli(v[0]), milli(v[1]), milli(v[2]), v[3], milli(v[4])), nil
		}},
	{What: "`up`'s memory budget check: `docker info` / `docker stats --no-stream` with 0, 5, 12 stand-in stacks running (medians of 5), and `sandbox:up -nowait` of one more with the check on / off (medians of 2)", Goal: "—",
		Step: "e2e-budget", By: "BenchmarkBudgetCheckCost", Figure: func(o *output) (string, error) {
			var parts []string
			for _, n := range []string{"0", "5", "12"} {
				v, err := ones(o, "BenchmarkBudgetCheckCost", "containers-"+n, "ms/info-"+n, "ms/stats-"+n, "ms/up-check-"+n, "ms/up-nocheck-"+n)
				if err != nil {
					return "", err
				}
				parts = append(parts, fmt.Sprintf("%s running (%.0f containers): info %s, stats **%s**; up %s / %s", n, v[0], milli(v[1]), milli(v[2]), seconds(v[3]), seconds(v[4])))
			}
			return strings.Join(parts, "; "), nil
		}},
	{What: "`go tool mage sandbox:url`, whole process, warm cache (median of 10)", Goal: "≤ 200 ms",
		Step: "e2e-entry", By: "BenchmarkEntryPointOverhead", Figure: func(o *output) (string, error) {
			v, err := ones(o, "BenchmarkEntryPointOverhead", "ms/url", "ms/url-compiled")
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("**%s**; compiled binary %s", milli(v[0]), milli(v[1])), nil
		}},
	{What: "`go tool mage sandbox:list`, 10 instances, none running (median of 10)", Goal: "≤ compose ls + 100 ms",
		Step: "e2e-entry", By: "BenchmarkEntryPointOverhead", Figure: func(o *output) (string, error) {
			v, err := ones(o, "BenchmarkEntryPointOverhead", "ms/list", "ms/compose-ls", "ms/list-minus-compose-ls", "ms/list-compiled")
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("**%s** vs `docker compose ls` %s: **%+.0f ms**; compiled binary %s", milli(v[0]), milli(v[1]), v[2], milli(v[3])), nil
		}},
	{What: "an agent's one step to a ready sandbox, stand-in stack, `go tool mage`, warm cache (median of 3)", Goal: "≤ create, then up",
		Step: "e2e-agent", By: "BenchmarkAgentOneStep", Figure: func(o *output) (string, error) {
			v, err := ones(o, "BenchmarkAgentOneStep", "s/create-up", "s/create-then-up", "s/mcp-create-up")
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("`create -up -json` **%.2f s**; `create`, then `up` %.2f s; MCP `create` with `up` %.2f s", v[0], v[1], v[2]), nil
		}},
	{What: "the MCP server: `go tool mage sandbox:mcp` to its answer to initialize; a `list` call", Goal: "—",
		Step: "e2e-agent", By: "BenchmarkAgentOneStep", Figure: func(o *output) (string, error) {
			v, err := ones(o, "BenchmarkAgentOneStep", "ms/mcp-start", "ms/mcp-list")
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("start **%s**; list %s", milli(v[0]), milli(v[1])), nil
		}},
	{What: "30 entry-point runs at once in one checkout (24 `go tool mage`, 6 `go run magefile.go`), cold mage cache", Goal: "all",
		Step: "e2e-concurrent", By: "TestEntryPointsRunConcurrentlyInOneCheckout", Figure: func(o *output) (string, error) {
			if err := passed(o, "TestEntryPointsRunConcurrentlyInOneCheckout"); err != nil {
				return "", err
			}
			return "**passed**: it asserts that each of the 30 exits 0 and that `git status --ignored` stays clean", nil
		}},
	{What: "kill -9 (process group) of create and of destroy at random moments, 20 rounds each", Goal: "all",
		Step: "e2e-kill", By: "TestKillDuringCreateAndDestroy", Figure: func(o *output) (string, error) {
			if err := passed(o, "TestKillDuringCreateAndDestroy"); err != nil {
				return "", err
			}
			m, err := o.logLine(regexp.MustCompile(`kills that landed before the command ended: map\[(.*)\] of (\d+) each`))
			if err != nil {
				return "", err
			}
			landed := map[string]string{"create": "0", "destroy": "0"}
			for _, kv := range strings.Fields(m[1]) {
				if k, v, ok := strings.Cut(kv, ":"); ok {
					landed[k] = v
				}
			}
			seed, err := o.logLine(regexp.MustCompile(`seed (\d+)`))
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("**passed**: every round ends with `destroy -name -force` leaving no trace; kills that landed mid-command: create %s of %s, destroy %s of %s (seed %s)",
				landed["create"], m[2], landed["destroy"], m[2], seed[1]), nil
		}},
	{What: "time-to-ready, January-like stack (9 services, 30 s healthchecks, `service_healthy` chains, CMD-SHELL db check), stand-in images", Goal: "suite < 10 s",
		Step: "e2e-shape", By: "BenchmarkShapeTimeToReady", Figure: func(o *output) (string, error) {
			v, err := ones(o, "BenchmarkShapeTimeToReady", "rounds", "ms/sandbox-up", "min-ms/sandbox-up", "max-ms/sandbox-up",
				"ms/compose-up-wait-file-cadence", "min-ms/compose-up-wait-file-cadence", "max-ms/compose-up-wait-file-cadence")
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("`sandbox:up` **%s** (%s–%s) vs `docker compose up -d --wait` with the file's own cadence **%s** (%s–%s); medians of %.0f rounds",
				seconds(v[1]), seconds(v[2]), seconds(v[3]), seconds(v[4]), seconds(v[5]), seconds(v[6]), v[0]), nil
		}},
	{What: "`sandbox:up` (whole process, through PASSED) vs the physical limit: `docker compose up -d` of the same files and env file (read from compose's own container labels) with every `depends_on` removed, all containers at once, until it returns; January fixture, stand-ins, same project, down between runs, alternating", Goal: "≤ 1.3×",
		Step: "e2e-physical", By: "BenchmarkUpVersusPhysical", Figure: func(o *output) (string, error) {
			v, err := ones(o, "BenchmarkUpVersusPhysical", "rounds", "ms/sandbox-up", "min-ms/sandbox-up", "max-ms/sandbox-up",
				"ms/physical", "min-ms/physical", "max-ms/physical", "ratio-sandbox-up/physical")
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("`sandbox:up` **%s** (%s–%s) vs physical **%s** (%s–%s), medians of %.0f rounds: ratio **%.2f**",
				seconds(v[1]), seconds(v[2]), seconds(v[3]), seconds(v[4]), seconds(v[5]), seconds(v[6]), v[0], v[7]), nil
		}},
	{What: "what the physical limit leaves out: readiness. The gate's own time inside `sandbox:up` (from `-json`), and the physical start followed by the same gate checks until they pass", Goal: "—",
		Step: "e2e-physical", By: "BenchmarkUpVersusPhysical", Figure: func(o *output) (string, error) {
			const name = "BenchmarkUpVersusPhysical"
			v, err := ones(o, name, "rounds", "ms/sandbox-up", "ms/sandbox-up-gate", "ms/sandbox-up-without-gate", "physical-then-gate-passed")
			if err != nil {
				return "", err
			}
			fig := fmt.Sprintf("gate **%s** of `sandbox:up`'s %s (the rest, %s: preflight, override, compose up with its own service_healthy waits)",
				seconds(v[2]), seconds(v[1]), seconds(v[3]))
			if v[4] == 0 {
				return fig + fmt.Sprintf("; after the physical start the gate passed in none of %.0f rounds", v[0]), nil
			}
			w, err := ones(o, name, "ms/physical-then-gate", "min-ms/physical-then-gate", "max-ms/physical-then-gate", "ratio-sandbox-up/physical-then-gate")
			if err != nil {
				return "", err
			}
			return fig + fmt.Sprintf("; physical start then the gate: **%s** (%s–%s, %.0f of %.0f rounds passed): `sandbox:up` / that **%.2f**",
				seconds(w[0]), seconds(w[1]), seconds(w[2]), v[4], v[0], w[3]), nil
		}},
	{What: "the Nth `sandbox:up` (whole process) with N−1 sandboxes running, N = 1, 6, 12: twelve stand-in sandboxes of the January fixture brought up one after another", Goal: "12th ≤ 1.3× 1st",
		Step: "e2e-twelve", By: "BenchmarkNthUpAndIdleCost", Figure: func(o *output) (string, error) {
			v, err := ones(o, "BenchmarkNthUpAndIdleCost", "ms/up-1", "ms/up-6", "ms/up-12", "ratio-up-12/up-1", "failed-ups")
			if err != nil {
				return "", err
			}
			fig := fmt.Sprintf("1st %s, 6th %s, 12th %s: ratio 12th/1st **%.2f**", seconds(v[0]), seconds(v[1]), seconds(v[2]), v[3])
			if v[4] > 0 {
				fig += fmt.Sprintf(" (%.0f of the 12 did not pass the gate)", v[4])
			}
			return fig, nil
		}},
	idleRow("BenchmarkNthUpAndIdleCost", "e2e-twelve", "machine busy with 12 idle sandboxes (January fixture, stand-ins): /proc/stat over 30 s, 40 s after the 12th `up`, every CPU; and what one costs", "≤ 35 %"),
	{What: "35 stand-in sandboxes of the January fixture at once (`max_slot` 35), created and brought up one after another", Goal: "35 of 35",
		Step: "e2e-thirtyfive", By: "BenchmarkThirtyFiveAtOnce", Figure: func(o *output) (string, error) {
			v, err := ones(o, "BenchmarkThirtyFiveAtOnce", "sandboxes", "tried", "passed", "ms/total", "sandboxes-running")
			if err != nil {
				return "", err
			}
			m, err := o.logLine(regexp.MustCompile(`thirty-five: first failure: (.*)$`))
			if err != nil {
				return "", err
			}
			fig := fmt.Sprintf("**%.0f of %.0f** passed the gate (%.0f tried, %.0f running) in %s", v[2], v[0], v[1], v[4], minutes(v[3]))
			if v[2] > 0 {
				w, err := ones(o, "BenchmarkThirtyFiveAtOnce", "ms/up-passed", "min-ms/up-passed", "ms/last-passed-up")
				if err != nil {
					return "", err
				}
				fig += fmt.Sprintf("; `sandbox:up` of those that passed: fastest %s, median %s, the last %s", seconds(w[1]), seconds(w[0]), seconds(w[2]))
			}
			if m[1] != "none" {
				fig += "; first failure: " + m[1]
			}
			return fig, nil
		}},
	idleRow("BenchmarkThirtyFiveAtOnce", "e2e-thirtyfive", "machine busy with the 35 sandboxes idle (those running), measured as for 12; and what one costs", "—"),
	{What: "`merge:rollback` (library, from the backup)", Goal: "< 2 s",
		Step: "unit-rollback", By: "BenchmarkRollback", Figure: func(o *output) (string, error) {
			ns, err := o.one("BenchmarkRollback", "ns/op")
			if err != nil {
				return "", err
			}
			rs := o.Bench["BenchmarkRollback"]
			return fmt.Sprintf("**%s** per rollback (%d rollbacks)", milli(ns/1e6), rs[0].N), nil
		}},
	{What: "`merge:rollback`, whole process, after `merge:apply` each time", Goal: "< 2 s",
		Step: "e2e-rollback", By: "BenchmarkMergeRollbackWholeProcess", Figure: func(o *output) (string, error) {
			v, err := ones(o, "BenchmarkMergeRollbackWholeProcess", "runs", "ms/compiled", "min-ms/compiled", "max-ms/compiled",
				"ms/go-tool-mage", "min-ms/go-tool-mage", "max-ms/go-tool-mage")
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("compiled target **%s** (%s–%s); `go tool mage merge:rollback` %s (%s–%s); %.0f runs each, the file byte-identical every time",
				milli(v[1]), milli(v[2]), milli(v[3]), milli(v[4]), milli(v[5]), milli(v[6]), v[0]), nil
		}},
}

// idleRow is the idle-cost row of a many-sandbox benchmark (manyIdleCost).
func idleRow(name, step, what, goal string) row {
	return row{What: what, Goal: goal, Step: step, By: name, Figure: func(o *output) (string, error) {
		v, err := ones(o, name, "busy-pct", "busy-pct-baseline", "sandboxes-running", "containers", "engine-networks")
		if err != nil {
			return "", err
		}
		if v[2] == 0 {
			return fmt.Sprintf("**%.0f %%** busy (%.0f %% before any sandbox); no sandbox was running", v[0], v[1]), nil
		}
		w, err := ones(o, name, "busy-pct/sandbox", "MiB/sandbox", "networks/sandbox")
		if err != nil {
			return "", err
		}
		share := fmt.Sprintf("**%.1f %%** of the machine", w[0])
		if v[0] >= 95 {
			share += " (a floor: the machine was saturated)"
		}
		return fmt.Sprintf("**%.0f %%** busy (%.0f %% before any sandbox); per sandbox: %s, **%.0f MiB** (%.0f containers in all), **%.0f** network(s); %.0f networks on the engine",
			v[0], v[1], share, w[1], v[3], w[2], v[4]), nil
	}}
}

// parseRow is the row of an env-file parse benchmark of sandbox/envfile.
func parseRow(name, what string) row {
	return row{What: what, Goal: "—", Step: "unit-envfile", By: name, Figure: func(o *output) (string, error) {
		s, n, err := spreadMetric(o, name, "ns/op")
		if err != nil {
			return "", err
		}
		allocs, err1 := o.metric(name, "allocs/op")
		size, err2 := o.metric(name, "file-bytes")
		keys, err3 := o.metric(name, "keys")
		if err := firstErr(err1, err2, err3); err != nil {
			return "", err
		}
		return fmt.Sprintf("**%s**/parse (%s–%s over %d runs), %.0f allocs; a %.0f-byte file of %.0f keys",
			micro(s.Median), micro(s.Min), micro(s.Max), n, spreadOf(allocs).Median, size[0], keys[0]), nil
	}}
}

// resolverRow is the row of one BenchmarkResolve sub-benchmark (sandbox/apiurl).
func resolverRow(sub, what string) row {
	name := "BenchmarkResolve/" + sub
	return row{What: what, Goal: "< 50 µs", Step: "unit-resolver", By: name, Figure: func(o *output) (string, error) {
		s, n, err := spreadMetric(o, name, "ns/op")
		if err != nil {
			return "", err
		}
		allocs, err := o.metric(name, "allocs/op")
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("**%s**/call (%s–%s over %d runs), %.0f allocs",
			micro(s.Median), micro(s.Min), micro(s.Max), n, spreadOf(allocs).Median), nil
	}}
}

// upFigure is a row of BenchmarkUpVersusCompose: sandbox:up against way.
func upFigure(way string) func(o *output) (string, error) {
	return func(o *output) (string, error) {
		v, err := ones(o, "BenchmarkUpVersusCompose", "rounds", "ms/sandbox-up", "ms/"+way, "ratio-sandbox-up/"+way,
			"min-ms/sandbox-up", "max-ms/sandbox-up", "min-ms/"+way, "max-ms/"+way)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s vs %s (medians of %.0f, alternating; ranges %s–%s and %s–%s): ratio **%.2f** (%+.1f %%)",
			milli(v[1]), milli(v[2]), v[0], milli(v[4]), milli(v[5]), milli(v[6]), milli(v[7]), v[3], (v[3]-1)*100), nil
	}
}

func spreadMetric(o *output, name, unit string) (spread, int, error) {
	vs, err := o.metric(name, unit)
	if err != nil {
		return spread{}, 0, err
	}
	return spreadOf(vs), len(vs), nil
}

// ones returns the single values of units printed by benchmark name.
func ones(o *output, name string, units ...string) ([]float64, error) {
	out := make([]float64, len(units))
	for i, u := range units {
		v, err := o.one(name, u)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func passed(o *output, test string) error {
	if o.Failed[test] {
		return fmt.Errorf("%s failed", test)
	}
	if !o.Passed[test] {
		return fmt.Errorf("%s did not pass", test)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// micro formats nanoseconds as µs, milli milliseconds as ms, seconds
// milliseconds as s: two or three significant digits.
func micro(ns float64) string { return sig(ns/1e3) + " µs" }
func milli(ms float64) string { return sig(ms) + " ms" }
func seconds(ms float64) string {
	return strconv.FormatFloat(ms/1e3, 'f', 2, 64) + " s"
}

// minutes formats milliseconds as a duration to the second ("25m3s").
func minutes(ms float64) string {
	return (time.Duration(ms) * time.Millisecond).Round(time.Second).String()
}

func sig(v float64) string {
	switch {
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// cell escapes the pipes of a table cell (inside code spans too, as GitHub
// reads tables).
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// render prints the table for the steps that ran and returns how many of
// their rows have no figure.
func render(w io.Writer, machine string, results map[string]*ran, ran []step, took time.Duration, only string) int {
	cmdline := "go run ./cmd/benchtable"
	if only != "" {
		cmdline += " -only " + only
	}
	var wait time.Duration
	for _, s := range ran {
		wait += results[s.ID].LockWait
	}
	fmt.Fprintf(w, "Measured %s with `%s` (%s in all, %s of it waiting for the e2e lock) on: %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cmdline, took.Round(time.Second), wait.Round(time.Second), machine)
	fmt.Fprintln(w, "| what | figure | goal | printed by |")
	fmt.Fprintln(w, "|---|---|---|---|")
	missing := 0
	for _, r := range rows {
		res, ok := results[r.Step]
		if !ok {
			continue
		}
		fig := ""
		var err error
		if res.Out == nil {
			err = res.Err
		} else {
			fig, err = r.Figure(res.Out)
		}
		if err != nil {
			missing++
			fig = "**no figure**: " + strings.ReplaceAll(err.Error(), "\n", " ")
			if res.Err != nil && res.Out != nil {
				fig += fmt.Sprintf(" (the step failed: %v)", strings.ReplaceAll(res.Err.Error(), "\n", " "))
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | `%s` |\n", cell(r.What), cell(fig), cell(r.Goal), cell(r.By))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| step | command | took | waited for the lock | load before → after | result |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, s := range ran {
		res := results[s.ID]
		cmd := "go test " + s.Pkg + " " + strings.Join(s.Args, " ")
		if s.E2E {
			cmd = "go test ./e2e/ " + strings.Join(s.Args, " ")
		}
		status := "ok"
		if res.Err != nil {
			status = "FAILED"
		}
		wait := "—"
		if s.E2E {
			wait = res.LockWait.Round(time.Second).String()
		}
		fmt.Fprintf(w, "| %s | `%s` | %s | %s | %s → %s | %s |\n", s.ID, cell(cmd), res.Took.Round(time.Second), wait, res.Load[0], res.Load[1], status)
	}
	return missing
}

// loadStackRow is one case of BenchmarkLoadStack.
func loadStackRow(name, what string) row {
	bench := "BenchmarkLoadStack/" + name
	return row{What: what, Goal: "—", Step: "unit-stack", By: bench, Figure: func(o *output) (string, error) {
		s, n, err := spreadMetric(o, bench, "ns/op")
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("**%s** (%s–%s over %d runs)", milli(s.Median/1e6), milli(s.Min/1e6), milli(s.Max/1e6), n), nil
	}}
}
