package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mattn/go-isatty"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// The sh personality: a POSIX shell (the mvdan.cc/sh interpreter), so
// healthchecks written as ["CMD-SHELL", "…"], which Docker runs as
// /bin/sh -c "…", and `docker exec … sh` sessions behave as in the real
// images: pipes, redirections, &&, ||, ;, quotes, ${VAR:-x}, $(…), if,
// for, case, functions, subshells, globbing, exit N and the POSIX builtins
// (echo, printf, test/[, read, cd, export, …).
//
// Usage: `sh -c STRING [NAME [ARG…]]`, `sh FILE [ARG…]`, or `sh [-s]
// [ARG…]` reading commands from stdin (with a "$ " prompt on stderr when
// stdin is a terminal, or with -i). Leading option clusters may also hold
// the set options a, e, f, n, u, x (e.g. `sh -ec …`).
//
// Commands that are not builtins run only as the stand-in's own tools,
// in this process: curl, wget, pg_isready, grep, cat, sh, standin, by name
// or by any path ending in one (what the image links them as). Nothing is
// ever looked up on PATH or executed from disk: in the FROM-scratch image
// every file on PATH is this binary anyway, and in tests the host's
// programs must not answer. Anything else prints "sh: NAME: not found" and
// gives status 127, like a real shell.

// Exit statuses of the shell.
const (
	shSyntax   = 2
	shNotFound = 127
)

// shToolFunc runs a command that is not a builtin; it reports false when
// there is no such command. getenv sees the exported variables only.
// environ lists the exported variables as "NAME=value".
type shToolFunc func(ctx context.Context, name string, args []string, getenv func(string) string, environ []string,
	stdin io.Reader, stdout, stderr io.Writer) (int, bool)

// shSession is one run of the shell: where its input, output and
// commands come from.
type shSession struct {
	env    shEnviron
	dir    string // working directory; "" is the process's
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	tools  shToolFunc
}

// shMain is the sh personality's command line.
func shMain(ctx context.Context, args []string, getenv func(string) string, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	s := &shSession{env: newShEnviron(getenv, environ), stdin: stdin, stdout: stdout, stderr: stderr, tools: shTool}
	return s.main(ctx, args)
}

// shInvocation is what sh's arguments ask for.
type shInvocation struct {
	opts        []string // set options for the interpreter, e.g. "-e"
	command     bool     // -c: the first operand is the script
	fromStdin   bool     // -s, or no operand: commands come from stdin
	interactive bool     // -i
	operands    []string
}

// parseShArgs reads sh's options: clusters of -c, -s, -i and the set
// options, -o NAME / +o NAME, and -- or - ending them.
func parseShArgs(args []string) (shInvocation, error) {
	var inv shInvocation
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" || a == "-" {
			i++
			break
		}
		if len(a) < 2 || (a[0] != '-' && a[0] != '+') {
			break
		}
		if a[1:] == "o" {
			if i+1 >= len(args) {
				return inv, fmt.Errorf("%s needs an option name", a)
			}
			inv.opts = append(inv.opts, a, args[i+1])
			i++
			continue
		}
		set := a[:1]
		for _, f := range a[1:] {
			switch {
			case f == 'c' && a[0] == '-':
				inv.command = true
			case f == 's' && a[0] == '-':
				inv.fromStdin = true
			case f == 'i' && a[0] == '-':
				inv.interactive = true
			case strings.ContainsRune("aefnux", f):
				set += string(f)
			default:
				return inv, fmt.Errorf("%s: invalid option %c%c", a, a[0], f)
			}
		}
		if len(set) > 1 {
			inv.opts = append(inv.opts, set)
		}
	}
	inv.operands = args[i:]
	if inv.command && len(inv.operands) == 0 {
		return inv, errors.New("-c requires an argument")
	}
	if !inv.command && len(inv.operands) == 0 {
		inv.fromStdin = true
	}
	return inv, nil
}

// main runs sh with args and returns its exit status.
func (s *shSession) main(ctx context.Context, args []string) int {
	inv, err := parseShArgs(args)
	if err != nil {
		fmt.Fprintf(s.stderr, "sh: %v\nusage: sh [-aefnux] -c STRING [NAME [ARG…]] | sh FILE [ARG…] | sh [-s] [ARG…]\n", err)
		return shSyntax
	}
	name, params := "sh", inv.operands
	switch {
	case inv.command:
		if len(inv.operands) > 1 {
			name, params = inv.operands[1], inv.operands[2:]
		} else {
			params = nil
		}
		return s.script(ctx, inv.operands[0], name, inv.opts, params)
	case !inv.fromStdin:
		file := inv.operands[0]
		src, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintf(s.stderr, "sh: cannot open %s: %v\n", file, errors.Unwrap(err))
			return shNotFound
		}
		return s.script(ctx, string(src), file, inv.opts, inv.operands[1:])
	}
	return s.lines(ctx, name, inv.opts, params, inv.interactive || isTerminal(s.stdin))
}

// runner makes the interpreter: the environment from getenv, commands
// from s.tools only.
func (s *shSession) runner(opts, params []string) (*interp.Runner, error) {
	return interp.New(
		interp.Env(s.env),
		interp.Dir(s.dir),
		interp.StdIO(s.stdin, s.stdout, s.stderr),
		interp.ExecHandlers(s.execHandler),
		interp.Params(append(append(opts, "--"), params...)...),
	)
}

// execHandler runs every command that is not a builtin or a function as
// one of the tools; it never calls next, which would look on PATH.
func (s *shSession) execHandler(interp.ExecHandlerFunc) interp.ExecHandlerFunc {
	return func(ctx context.Context, args []string) error {
		hc := interp.HandlerCtx(ctx)
		getenv := func(k string) string {
			if v := hc.Env.Get(k); v.Exported {
				return v.String()
			}
			return ""
		}
		var environ []string
		for name, v := range hc.Env.Each {
			if v.Exported && v.IsSet() {
				environ = append(environ, name+"="+v.String())
			}
		}
		ctx = withToolDir(ctx, hc.Dir)
		code, ok := s.tools(ctx, args[0], args[1:], getenv, environ, hc.Stdin, hc.Stdout, hc.Stderr)
		if !ok {
			fmt.Fprintf(hc.Stderr, "sh: %s: not found\n", args[0])
			code = shNotFound
		}
		if code != 0 {
			return interp.ExitStatus(uint8(code))
		}
		return nil
	}
}

// script parses and runs a whole script named name ($0).
func (s *shSession) script(ctx context.Context, src, name string, opts, params []string) int {
	file, err := syntax.NewParser().Parse(strings.NewReader(src), name)
	if err != nil {
		fmt.Fprintf(s.stderr, "sh: %v\n", err)
		return shSyntax
	}
	r, err := s.runner(opts, params)
	if err != nil {
		fmt.Fprintf(s.stderr, "sh: %v\n", err)
		return shSyntax
	}
	return s.status(r.Run(ctx, file))
}

// lines runs the commands on stdin. Without a prompt (a pipe, as in
// `docker exec -i … sh < script`) stdin is one script; with one (a
// terminal, or -i) each complete command runs as soon as it is read, after
// a "$ " prompt ("> " while a command continues), and a syntax error only
// loses its line.
func (s *shSession) lines(ctx context.Context, name string, opts, params []string, prompt bool) int {
	if !prompt {
		src, err := io.ReadAll(s.stdin)
		if err != nil {
			fmt.Fprintf(s.stderr, "sh: read commands from stdin: %v\n", err)
			return shSyntax
		}
		return s.script(ctx, string(src), name, opts, params)
	}
	r, err := s.runner(opts, params)
	if err != nil {
		fmt.Fprintf(s.stderr, "sh: %v\n", err)
		return shSyntax
	}
	code := 0
	for {
		fmt.Fprint(s.stderr, "$ ")
		parser := syntax.NewParser()
		failed := false
		for stmts, err := range parser.InteractiveSeq(s.stdin) {
			if err != nil {
				fmt.Fprintf(s.stderr, "sh: %v\n", err)
				code, failed = shSyntax, true
				break // the parser cannot go on: a fresh one reads the next line
			}
			if parser.Incomplete() {
				fmt.Fprint(s.stderr, "> ")
				continue
			}
			for _, st := range stmts {
				// Each statement runs as a file so that $0 is name (a
				// file's end also runs an EXIT trap, which a session at a
				// terminal has no use for).
				code = s.status(r.Run(ctx, &syntax.File{Name: name, Stmts: []*syntax.Stmt{st}}))
				if r.Exited() {
					return code
				}
			}
			fmt.Fprint(s.stderr, "$ ")
		}
		if !failed {
			fmt.Fprintln(s.stderr)
			return code
		}
	}
}

// status turns what Runner.Run returned into an exit status.
func (s *shSession) status(err error) int {
	var st interp.ExitStatus
	switch {
	case err == nil:
		return 0
	case errors.As(err, &st):
		return int(st)
	}
	fmt.Fprintf(s.stderr, "sh: %v\n", err)
	return 1
}

// isTerminal reports whether r is a terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// shTool runs the stand-in's own tools from the shell, by name or by any
// path ending in one.
func shTool(ctx context.Context, name string, args []string, getenv func(string) string, environ []string, stdin io.Reader, stdout, stderr io.Writer) (int, bool) {
	base := filepath.Base(name)
	if base == "standin" {
		return runIO(ctx, append([]string{name}, args...), getenv, environ, stdin, stdout, stderr), true
	}
	return runTool(ctx, base, args, getenv, environ, stdin, stdout, stderr)
}

// shEnviron is the environment the shell starts with: getenv answers
// for a name (an empty value counts as unset, as a getenv cannot tell
// them apart), and the names of environ ("NAME=value") are the ones it
// lists, which copies of the shell for pipes and background commands take
// along.
type shEnviron struct {
	getenv func(string) string
	names  []string
}

func newShEnviron(getenv func(string) string, environ []string) shEnviron {
	e := shEnviron{getenv: getenv}
	for _, kv := range environ {
		if name, _, ok := strings.Cut(kv, "="); ok && name != "" {
			e.names = append(e.names, name)
		}
	}
	return e
}

func (e shEnviron) Get(name string) expand.Variable {
	v := e.getenv(name)
	if v == "" {
		return expand.Variable{}
	}
	return expand.Variable{Set: true, Exported: true, Kind: expand.String, Str: v}
}

func (e shEnviron) Each(fn func(name string, v expand.Variable) bool) {
	for _, name := range e.names {
		if v := e.Get(name); v.IsSet() && !fn(name, v) {
			return
		}
	}
}

// toolDirKey carries the shell's working directory to the tools, which
// run in this process and so do not follow its cd.
type toolDirKey struct{}

func withToolDir(ctx context.Context, dir string) context.Context {
	return context.WithValue(ctx, toolDirKey{}, dir)
}

// toolPath resolves a tool's relative file name against the working
// directory of the shell that runs it (the process's outside a shell).
func toolPath(ctx context.Context, name string) string {
	if dir, ok := ctx.Value(toolDirKey{}).(string); ok && dir != "" && name != "" && !filepath.IsAbs(name) {
		return filepath.Join(dir, name)
	}
	return name
}
