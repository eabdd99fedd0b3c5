// Command standin plays every service of a ktrdr stack (backend, workers, db,
// jaeger, prometheus, grafana, and any other HTTP service) with the real
// HTTP shapes and enough of the PostgreSQL wire protocol, so one compose
// file runs either the real images or this single static binary. There is
// no image registry involved: the sandbox package builds it into a
// FROM-scratch image with `docker import`.
//
// Usage:
//
//	standin [ROLE]                 run a role (default: $KTRDR_STANDIN_ROLE; any other
//	                               arguments, e.g. a real image's uvicorn command, are ignored)
//	standin version                print the version
//	standin fs write PATH CONTENT  write a file (a scratch image has no shell)
//	standin fs read PATH           print a file
//	standin fs ls DIR              list a folder, one name a line, folders end in /
//	standin fs untar [--clean] DIR extract a tar stream from stdin under DIR (--clean:
//	                               then remove what the stream does not hold); see untar.go
//	standin fs tar DIR             write a tar stream of DIR to stdout
//	standin sh [-c STRING]         a POSIX shell (also curl, wget, pg_isready, grep, cat)
//	standin pg-entrypoint [ARG…]   the PostgreSQL image's entrypoint: first-start
//	                               set-up, then the real server (postgres.go)
//
// Invoked as curl, wget, pg_isready, grep, cat or sh (hardlinks in the
// image, /bin/sh among them), it behaves enough like those tools for
// container healthchecks written for the real images, ["CMD", …] and
// ["CMD-SHELL", …] alike, and for `docker exec -it … sh`: see clients.go,
// text.go and sh.go.
//
// As a container's main process (PID 1, or the child of compose's init)
// with KTRDR_STANDIN_ROLE set, every argument but a role name, version,
// help or fs is the real image's command and is ignored, even sh -c ….
//
// Roles: backend (:8000), worker (:$WORKER_PORT), db (:5432), jaeger (:16686,
// :4317, :4318), prometheus (:9090), grafana (:3000), http (every port of
// $KTRDR_STANDIN_PORTS, default :8080: 200 and a small JSON body on any
// path). Every role also answers like http on the ports of
// $KTRDR_STANDIN_PORTS it does not already serve. The environment knobs
// are documented in config.go.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// version is set with -ldflags "-X main.version=…"; health answers say "standin".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := runProcess(ctx, os.Args, os.Getenv, os.Environ(), os.Stdin, os.Stdout, os.Stderr, containerMainProcess())
	stop()
	os.Exit(code)
}

// run is main without the process: tests call it with their own arguments,
// environment and writers, and an empty stdin. It returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return runIO(ctx, args, getenv, nil, strings.NewReader(""), stdout, stderr)
}

// runIO is run with a stdin and environ, the "NAME=value" pairs that the
// shell lists (for background commands and pipes, export -p); nil lists
// none, while getenv still answers.
func runIO(ctx context.Context, args []string, getenv func(string) string, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runProcess(ctx, args, getenv, environ, stdin, stdout, stderr, false)
}

// containerMainProcess reports whether this process is a container's main
// process: PID 1, or the only child of an init at PID 1 (compose's
// `init: true`). Processes that `docker exec` and healthchecks start have
// a parent outside the container's PID namespace, so their parent PID is 0.
func containerMainProcess() bool {
	return os.Getpid() == 1 || os.Getppid() == 1
}

// runProcess is run; mainProcess says that this is the container's main
// process, whose arguments, when the role comes from KTRDR_STANDIN_ROLE,
// are the real image's command and never a tool to run (a real
// `command: ["sh", "-c", "alembic upgrade head && uvicorn …"]` must start
// the role, while `docker exec … /standin sh -c …` runs the shell).
func runProcess(ctx context.Context, args []string, getenv func(string) string, environ []string, stdin io.Reader, stdout, stderr io.Writer, mainProcess bool) int {
	if len(args) == 0 {
		args = []string{"standin"}
	}
	if code, ok := runTool(ctx, filepath.Base(args[0]), args[1:], getenv, environ, stdin, stdout, stderr); ok {
		return code
	}
	rest := args[1:]
	role := getenv("KTRDR_STANDIN_ROLE")
	if len(rest) > 0 {
		switch rest[0] {
		case "version", "--version", "-version":
			fmt.Fprintf(stdout, "standin %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return 0
		case "fs":
			return fsMain(rest[1:], stdin, stdout, stderr)
		case "pg-entrypoint":
			// The PostgreSQL image's entrypoint (postgres.go): whatever
			// KTRDR_STANDIN_ROLE the file sets, this runs the real server.
			return pgEntrypoint(ctx, rest[1:], getenv, stdout, stderr, osPGSystem())
		case "help", "-h", "--help":
			fmt.Fprint(stdout, usage)
			return 0
		}
		if !mainProcess || role == "" {
			if code, ok := runTool(ctx, rest[0], rest[1:], getenv, environ, stdin, stdout, stderr); ok {
				return code
			}
		}
		switch _, known := defaultPorts[rest[0]]; {
		case known:
			role = rest[0]
		case role != "":
			// A compose command written for the real image (e.g. uvicorn …):
			// the role comes from the environment.
			fmt.Fprintf(stdout, "standin: ignoring command %q, running role %s from %s\n", rest, role, envRole)
		default:
			role = rest[0] // reported as an unknown role below
		}
	}
	if role == "" {
		fmt.Fprintf(stderr, "standin: no role: set KTRDR_STANDIN_ROLE or pass one of %v\n%s", roleNames, usage)
		return 2
	}
	cfg, err := loadConfig(role, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "standin: %v\n", err)
		return 2
	}
	return runRole(ctx, cfg, stdout)
}

// runTool runs the curl, wget, pg_isready, grep, cat and sh personalities.
func runTool(ctx context.Context, name string, args []string, getenv func(string) string, environ []string, stdin io.Reader, stdout, stderr io.Writer) (int, bool) {
	switch name {
	case "curl":
		return curlMain(ctx, args, stdout, stderr), true
	case "wget":
		return wgetMain(ctx, args, stdout, stderr), true
	case "pg_isready":
		return pgIsReadyMain(ctx, args, getenv, stdout, stderr), true
	case "grep":
		return grepMain(ctx, args, stdin, stdout, stderr), true
	case "cat":
		return catMain(ctx, args, stdin, stdout, stderr), true
	case "sh":
		return shMain(ctx, args, getenv, environ, stdin, stdout, stderr), true
	case "alembic":
		return alembicMain(ctx, args, getenv, stdout, stderr), true
	}
	return 0, false
}

const usage = `usage:
  standin [backend|worker|db|jaeger|prometheus|grafana|http]   (or KTRDR_STANDIN_ROLE)
  standin version
  standin fs write PATH CONTENT | fs read PATH | fs ls DIR
  standin fs untar [--clean] DIR   (tar stream on stdin; --clean mirrors deletions)
  standin fs tar DIR               (tar stream on stdout)
  standin curl|wget|pg_isready|grep|cat ARGS…   (also selected by argv[0])
  standin sh [-c STRING [NAME [ARG…]] | FILE [ARG…]]   (stdin without either; also by argv[0], e.g. /bin/sh)
  standin alembic upgrade head         (/app/.venv/bin/alembic: records the head of the
                                        mounted alembic/versions in the database's alembic_version)
  standin pg-entrypoint [postgres] [-c NAME=VALUE]…   (the PostgreSQL image's entrypoint)
environment: KTRDR_STANDIN_PORTS=P1,P2,… adds ports answering 200 JSON on any path;
  the worker reads WORKER_TYPE|KTRDR_WORKER_TYPE, WORKER_ID|KTRDR_WORKER_ID, WORKER_PORT|KTRDR_WORKER_PORT,
  WORKER_ENDPOINT_URL|KTRDR_WORKER_PUBLIC_URL, KTRDR_API_URL|KTRDR_BACKEND_URL; more in config.go
`
