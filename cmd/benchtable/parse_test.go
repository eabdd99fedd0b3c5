package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/ktrdr/sandboxkit/e2e
cpu: Intel(R) Xeon(R) Processor
BenchmarkResolveAPIURL/five-below-sandbox-root-2         	   52336	     21010 ns/op	    4210 B/op	      52 allocs/op
BenchmarkResolveAPIURL/five-below-sandbox-root-2         	   55012	     22020 ns/op	    4210 B/op	      52 allocs/op
BenchmarkListTenInstances-2   	       1	1234567 ns/op	         0 min-docker-procs/list	       129.0 ms/list
--- BENCH: BenchmarkListTenInstances-2
    bench_test.go:300: docker calls of one list: [["ps" "-a"]]
    bench_test.go:301: kills that landed before the command ended: map[create:12 destroy:17] of 20 each
=== RUN   TestKill
--- PASS: TestKill (12.34s)
--- FAIL: TestOther (0.01s)
PASS
`

func TestParseOutput(t *testing.T) {
	o, err := parseOutput(sample)
	require.NoError(t, err)
	vs, err := o.metric("BenchmarkResolveAPIURL/five-below-sandbox-root", "ns/op")
	require.NoError(t, err)
	assert.Equal(t, []float64{21010, 22020}, vs)
	assert.Equal(t, spread{21515, 21010, 22020}, spreadOf(vs))

	procs, err := o.one("BenchmarkListTenInstances", "min-docker-procs/list")
	require.NoError(t, err)
	assert.Equal(t, 0.0, procs, "a count of 0 is read as 0, not as missing")
	_, err = o.one("BenchmarkListTenInstances", "max-docker-procs/list")
	assert.ErrorContains(t, err, "printed no max-docker-procs/list")
	_, err = o.one("BenchmarkResolveAPIURL/five-below-sandbox-root", "ns/op")
	assert.ErrorContains(t, err, "2 times")
	_, err = o.metric("BenchmarkNone", "ns/op")
	assert.ErrorContains(t, err, "BenchmarkNone printed no result")

	assert.NoError(t, passed(o, "TestKill"))
	assert.ErrorContains(t, passed(o, "TestOther"), "failed")
	assert.ErrorContains(t, passed(o, "TestMissing"), "did not pass")
}

func TestParseOutputRefusesABrokenLine(t *testing.T) {
	_, err := parseOutput("BenchmarkX-2  1  12 ns/op  3\n")
	assert.ErrorContains(t, err, "odd number")
	_, err = parseOutput("BenchmarkX-2  1  12 ns/op  x ms\n")
	assert.ErrorContains(t, err, `value "x"`)
}

func TestFormats(t *testing.T) {
	assert.Equal(t, "21 µs", micro(21010))
	assert.Equal(t, "8.5 µs", micro(8500))
	assert.Equal(t, "0.62 ms", milli(0.62))
	assert.Equal(t, "129 ms", milli(129.4))
	assert.Equal(t, "4.25 s", seconds(4250))
}
