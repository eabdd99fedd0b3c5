// Command gatecheck runs checks of the KTRDR profile's startability gate
// once, with the gate's own probes, and exits 0 when every one passes. Built
// static and mounted into a container, it is a compose healthcheck that
// checks exactly what the gate checks: the e2e benchmark
// BenchmarkUpVersusCompose uses it to compare `sandbox:up` with
// `docker compose up -d --wait` on the same readiness conditions.
//
// Usage:
//
//	gatecheck [-host HOST] [-port KEY=PORT]... CHECK-NAME...
//
// CHECK-NAME is a check's name in the profile ("Backend healthy"); -port
// gives the port a check's port key stands for where the probe runs (inside
// a container: the container port, not the published one). Exit status: 0
// all passed, 1 one failed (the reason on stderr), 2 usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox"
	"github.com/ktrdr/sandboxkit/sandbox/gate"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// ports is the repeatable -port KEY=PORT flag.
type ports map[string]int

func (p ports) String() string { return fmt.Sprint(map[string]int(p)) }

func (p ports) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	n, err := strconv.Atoi(v)
	if !ok || k == "" || err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("want KEY=PORT, got %q", s)
	}
	p[k] = n
	return nil
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatecheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("host", "127.0.0.1", "host the probes connect to")
	pm := ports{}
	fs.Var(pm, "port", "KEY=PORT: the port of a check's port key (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "gatecheck: name at least one check")
		return 2
	}
	checks := map[string]gate.Check{}
	for _, c := range sandbox.KTRDR().GateChecks(*host, pm) {
		checks[c.Name] = c
	}
	for _, name := range fs.Args() {
		c, ok := checks[name]
		if !ok {
			fmt.Fprintf(stderr, "gatecheck: no check named %q\n", name)
			return 2
		}
		if err := c.Probe(context.Background()); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
	}
	return 0
}
