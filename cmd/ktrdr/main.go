// Command ktrdr is a small reference client of the ktrdr API. It shows the
// authors of the real ktrdr CLI how to find the API of the stack that belongs
// to the current checkout with the package sandbox/apiurl, which needs only
// the standard library:
//
//	url, err := apiurl.Resolve(urlFlag, portFlag, cwd)
//
// (this client calls apiurl.ResolveSource, the same resolution plus a
// description of the rule that chose the URL, for its error messages).
//
// --url beats --port, which beats KTRDR_API_PORT from the nearest
// .env.sandbox in the current folder or its parents up to the checkout's
// root (the folder holding .git), which beats
// http://localhost:8000. The flags are never bound to environment variables:
// an exported KTRDR_API_PORT must not change which stack a command talks to.
//
// Usage:
//
//	ktrdr [--url URL | -u URL] [--port N | -p N] [--json] COMMAND
//
//	ktrdr health             the backend's health
//	ktrdr workers list       registered workers
//	ktrdr operations list    operations
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/apiurl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cwd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ktrdr: find the current folder:", err)
		os.Exit(1)
	}
	code := run(ctx, os.Args[1:], cwd, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: ktrdr [--url URL | -u URL] [--port N | -p N] [--json] COMMAND

Commands:
  health            the backend's health
  workers list      registered workers
  operations list   operations

Flags:
  -u, --url URL     the API's base URL, e.g. http://localhost:8002
  -p, --port N      shorthand for --url http://localhost:N
      --json        print the API's JSON instead of a table

Without --url or --port, the API port is KTRDR_API_PORT from the nearest
.env.sandbox in the current folder or its parents up to the checkout's root,
else 8000. Environment variables are never read.
`

// run is the whole command: main only supplies the process's arguments,
// folder and streams. It returns the exit code: 0 ok, 1 failed, 2 usage.
func run(ctx context.Context, args []string, cwd string, stdout, stderr io.Writer) int {
	var (
		urlFlag  string
		portFlag int
		jsonOut  bool
	)
	global := flag.NewFlagSet("ktrdr", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	global.StringVar(&urlFlag, "url", "", "API base URL")
	global.StringVar(&urlFlag, "u", "", "API base URL")
	global.IntVar(&portFlag, "port", 0, "API port on localhost")
	global.IntVar(&portFlag, "p", 0, "API port on localhost")
	global.BoolVar(&jsonOut, "json", false, "print the API's JSON")
	if err := global.Parse(args); err != nil {
		return usageError(stdout, stderr, err)
	}

	rest := global.Args()
	var cmd string
	switch {
	case len(rest) >= 1 && rest[0] == "health":
		cmd, rest = "health", rest[1:]
	case len(rest) >= 2 && (rest[0] == "workers" || rest[0] == "operations") && rest[1] == "list":
		cmd, rest = rest[0]+" list", rest[2:]
	case len(rest) == 0:
		return usageError(stdout, stderr, errors.New("no command given"))
	default:
		return usageError(stdout, stderr, fmt.Errorf("unknown command %q", joinArgs(rest)))
	}
	// --json may also follow the command, as scripts tend to write it.
	local := flag.NewFlagSet("ktrdr "+cmd, flag.ContinueOnError)
	local.SetOutput(io.Discard)
	local.BoolVar(&jsonOut, "json", jsonOut, "print the API's JSON")
	if err := local.Parse(rest); err != nil {
		return usageError(stdout, stderr, err)
	}
	if local.NArg() > 0 {
		return usageError(stdout, stderr, fmt.Errorf("unexpected arguments after %q: %s", cmd, joinArgs(local.Args())))
	}

	base, source, err := apiurl.ResolveSource(urlFlag, portFlag, cwd)
	if err != nil {
		fmt.Fprintln(stderr, "ktrdr: find the API:", err)
		return 1
	}
	switch source { // the library does not know this command's flag names
	case "explicit URL":
		source = "the --url flag"
	case "explicit port":
		source = "the --port flag"
	}
	c := &client{base: base, source: source, timeout: 10 * time.Second}

	switch cmd {
	case "health":
		err = c.health(ctx, stdout, jsonOut)
	case "workers list":
		err = c.workers(ctx, stdout, jsonOut)
	case "operations list":
		err = c.operations(ctx, stdout, jsonOut)
	}
	if err != nil {
		fmt.Fprintln(stderr, "ktrdr:", err)
		var ne *notAnsweringError
		if errors.As(err, &ne) {
			fmt.Fprintln(stderr, "  hint: start this checkout's stack with `go tool mage sandbox:up`,",
				"or see where it runs with `go tool mage sandbox:status`")
		}
		return 1
	}
	return 0
}

func usageError(stdout, stderr io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "ktrdr: %v\n\n%s", err, usage)
	return 2
}

func joinArgs(a []string) string { return strings.Join(a, " ") }
