package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Result lines as the many-sandbox benchmarks (e2e/many_bench_test.go) print them.
const (
	physicalOut = `BenchmarkUpVersusPhysical-2   	       1	54861257337 ns/op	      2757 max-ms/physical	      3824 max-ms/physical-then-gate	      5555 max-ms/sandbox-up	       116.5 max-ms/sandbox-up-gate	      2206 min-ms/physical	      2955 min-ms/physical-then-gate	      4332 min-ms/sandbox-up	         3.240 min-ms/sandbox-up-gate	      2568 ms/physical	      3072 ms/physical-then-gate	      4506 ms/sandbox-up	       108.7 ms/sandbox-up-gate	      4397 ms/sandbox-up-without-gate	         5.000 physical-then-gate-passed	         1.755 ratio-sandbox-up/physical	         1.467 ratio-sandbox-up/physical-then-gate	         5.000 rounds
`
	twelveOut = `BenchmarkNthUpAndIdleCost-2   	       1	123361579040 ns/op	        50.60 MiB/sandbox	        98.86 busy-pct	        17.91 busy-pct-baseline	         6.746 busy-pct/sandbox	       108.0 containers	        15.00 engine-networks	         0 failed-ups	      4234 ms/up-1	     23256 ms/up-12	      5749 ms/up-6	         1.000 networks/sandbox	         5.492 ratio-up-12/up-1	        12.00 sandboxes-running
`
	thirtyFiveOut = `    many_bench_test.go:480: thirty-five: first failure: sandbox 31 of 35 (e2e-bench-m31): sandbox:up exit 1: could not find an available, non-overlapping IPv4 address pool
BenchmarkThirtyFiveAtOnce-2   	       1	1 ns/op	        35.00 sandboxes	        33.00 tried	        30.00 passed	     32451 ms/up-passed	      4822 min-ms/up-passed	     94530 ms/last-passed-up	   1500000 ms/total	        30.00 sandboxes-running	        99.00 busy-pct	        20.00 busy-pct-baseline	       270.0 containers	        33.00 engine-networks	         2.633 busy-pct/sandbox	        50.00 MiB/sandbox	         1.000 networks/sandbox
`
)

func rowsOf(t *testing.T, step string) []row {
	t.Helper()
	var out []row
	for _, r := range rows {
		if r.Step == step {
			out = append(out, r)
		}
	}
	require.NotEmpty(t, out, "rows of step %s", step)
	return out
}

func figure(t *testing.T, r row, text string) (string, error) {
	t.Helper()
	o, err := parseOutput(text)
	require.NoError(t, err)
	return r.Figure(o)
}

func TestManySandboxRows(t *testing.T) {
	phys := rowsOf(t, "e2e-physical")
	require.Len(t, phys, 2)
	fig, err := figure(t, phys[0], physicalOut)
	require.NoError(t, err)
	assert.Equal(t, "`sandbox:up` **4.51 s** (4.33 s–5.55 s) vs physical **2.57 s** (2.21 s–2.76 s), medians of 5 rounds: ratio **1.75**", fig)
	fig, err = figure(t, phys[1], physicalOut)
	require.NoError(t, err)
	assert.Contains(t, fig, "gate **0.11 s** of `sandbox:up`'s 4.51 s")
	assert.Contains(t, fig, "physical start then the gate: **3.07 s** (2.96 s–3.82 s, 5 of 5 rounds passed): `sandbox:up` / that **1.47**")

	twelve := rowsOf(t, "e2e-twelve")
	require.Len(t, twelve, 2)
	fig, err = figure(t, twelve[0], twelveOut)
	require.NoError(t, err)
	assert.Equal(t, "1st 4.23 s, 6th 5.75 s, 12th 23.26 s: ratio 12th/1st **5.49**", fig)
	fig, err = figure(t, twelve[1], twelveOut)
	require.NoError(t, err)
	assert.Equal(t, "**99 %** busy (18 % before any sandbox); per sandbox: **6.7 %** of the machine (a floor: the machine was saturated), **51 MiB** (108 containers in all), **1** network(s); 15 networks on the engine", fig)

	many := rowsOf(t, "e2e-thirtyfive")
	require.Len(t, many, 2)
	fig, err = figure(t, many[0], thirtyFiveOut)
	require.NoError(t, err)
	assert.Equal(t, "**30 of 35** passed the gate (33 tried, 30 running) in 25m0s; `sandbox:up` of those that passed: fastest 4.82 s, median 32.45 s, the last 94.53 s; first failure: sandbox 31 of 35 (e2e-bench-m31): sandbox:up exit 1: could not find an available, non-overlapping IPv4 address pool", fig)
	_, err = figure(t, many[1], thirtyFiveOut)
	require.NoError(t, err)
}

// A benchmark that printed nothing gives each of its rows "no figure",
// naming what is missing.
func TestManySandboxRowsWithoutOutput(t *testing.T) {
	for _, id := range []string{"e2e-physical", "e2e-twelve", "e2e-thirtyfive"} {
		results := map[string]*ran{id: {Out: &output{Bench: map[string][]result{}}}}
		var buf bytes.Buffer
		missing := render(&buf, "m", results, []step{{ID: id, E2E: true}}, time.Second, "")
		assert.Equal(t, len(rowsOf(t, id)), missing, id)
		assert.Contains(t, buf.String(), "**no figure**: Benchmark", id)
	}
}
