package main

import (
	"bufio"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A result is one benchmark result line: the iterations and every
// value/unit pair (ns/op, B/op, allocs/op and the b.ReportMetric ones).
type result struct {
	N       int
	Metrics map[string]float64
}

// output is what one `go test` run printed, parsed.
type output struct {
	// Bench holds every result line by benchmark name (without the
	// -GOMAXPROCS suffix), in order: -count 5 gives five.
	Bench map[string][]result
	// Passed and Failed list the tests and benchmarks that `--- PASS` /
	// `--- FAIL` lines name (with -v; without it, only failures).
	Passed, Failed map[string]bool
	// Lines is everything printed, for log lines a row quotes.
	Lines []string
}

var (
	// BenchmarkName-2   	       1	5851000000 ns/op	  5851 ms/sandbox-up …
	benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(\S+ ns/op.*)$`)
	// --- PASS: TestName (12.34s)   or   --- FAIL: BenchmarkX-2
	statusLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+?)(?:-\d+)?(?: \(|$)`)
)

// parseOutput reads the text of `go test -bench` (with or without -v).
func parseOutput(text string) (*output, error) {
	o := &output{Bench: map[string][]result{}, Passed: map[string]bool{}, Failed: map[string]bool{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		o.Lines = append(o.Lines, line)
		if m := statusLine.FindStringSubmatch(line); m != nil {
			switch m[1] {
			case "PASS":
				o.Passed[m[2]] = true
			case "FAIL":
				o.Failed[m[2]] = true
			}
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		f := strings.Fields(m[3])
		if len(f)%2 != 0 {
			return nil, fmt.Errorf("benchmark line with an odd number of fields: %q", line)
		}
		r := result{N: n, Metrics: map[string]float64{}}
		for i := 0; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: value %q: %w", line, f[i], err)
			}
			r.Metrics[f[i+1]] = v
		}
		o.Bench[m[1]] = append(o.Bench[m[1]], r)
	}
	return o, sc.Err()
}

// metric returns every run's value of unit for benchmark name, and an
// error naming what is missing when there is none.
func (o *output) metric(name, unit string) ([]float64, error) {
	rs, ok := o.Bench[name]
	if !ok {
		return nil, fmt.Errorf("%s printed no result", name)
	}
	var vs []float64
	for _, r := range rs {
		v, ok := r.Metrics[unit]
		if !ok {
			return nil, fmt.Errorf("%s printed no %s", name, unit)
		}
		vs = append(vs, v)
	}
	return vs, nil
}

// one is the value of a metric printed by one run (-count 1).
func (o *output) one(name, unit string) (float64, error) {
	vs, err := o.metric(name, unit)
	if err != nil {
		return 0, err
	}
	if len(vs) != 1 {
		return 0, fmt.Errorf("%s printed %s %d times, want once", name, unit, len(vs))
	}
	return vs[0], nil
}

// spread is the median, min and max of vs (len(vs) ≥ 1).
type spread struct{ Median, Min, Max float64 }

func spreadOf(vs []float64) spread {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	m := s[n/2]
	if n%2 == 0 {
		m = (s[n/2-1] + s[n/2]) / 2
	}
	return spread{m, s[0], s[n-1]}
}

// logLine returns the submatches of the first printed line that re
// matches, or an error.
func (o *output) logLine(re *regexp.Regexp) ([]string, error) {
	for _, l := range o.Lines {
		if m := re.FindStringSubmatch(l); m != nil {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no line matches %s", re)
}
