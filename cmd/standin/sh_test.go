package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeTools stands for the stand-in's tools in shell tests:
//
//	ok / fail        status 0 / 1
//	st N             status N
//	args A…          prints each argument as [A]
//	env NAME         prints getenv(NAME)
//	errs A…          prints its arguments on stderr
//
// and any other name as the stand-in's real tools.
type fakeTools struct {
	mu    sync.Mutex // pipes run their commands at once
	calls []string
}

func (f *fakeTools) run(ctx context.Context, name string, args []string, getenv func(string) string, environ []string, stdin io.Reader, stdout, stderr io.Writer) (int, bool) {
	f.mu.Lock()
	f.calls = append(f.calls, strings.TrimSpace(name+" "+strings.Join(args, " ")))
	f.mu.Unlock()
	switch name {
	case "ok":
		return 0, true
	case "fail":
		return 1, true
	case "st":
		n, _ := strconv.Atoi(strings.Join(args, ""))
		return n & 0xff, true
	case "args":
		for _, a := range args {
			fmt.Fprintf(stdout, "[%s]", a)
		}
		return 0, true
	case "env":
		for _, a := range args {
			fmt.Fprint(stdout, getenv(a))
		}
		return 0, true
	case "errs":
		fmt.Fprint(stderr, strings.Join(args, " "))
		return 0, true
	}
	return shTool(ctx, name, args, getenv, environ, stdin, stdout, stderr)
}

// runFakeSh runs `sh -c script positional…` with fake tools (and the real
// ones, e.g. grep and cat) and env, in an empty folder.
func runFakeSh(t *testing.T, script string, env map[string]string, positional ...string) (code int, stdout, stderr string, calls []string) {
	t.Helper()
	return runFakeShIn(t, t.TempDir(), script, env, positional...)
}

func runFakeShIn(t *testing.T, dir, script string, env map[string]string, positional ...string) (code int, stdout, stderr string, calls []string) {
	t.Helper()
	var out, errb bytes.Buffer
	tools := &fakeTools{}
	s := &shSession{env: newShEnviron(func(k string) string { return env[k] }, mapEnviron(env)), dir: dir, stdin: strings.NewReader(""),
		stdout: &out, stderr: &errb, tools: tools.run}
	code = s.main(t.Context(), append([]string{"-c", script}, positional...))
	return code, out.String(), errb.String(), tools.calls
}

func TestStandinShScripts(t *testing.T) {
	env := map[string]string{"USER": "ktrdr", "PORT": "8000", "SPACED": "  a  b ", "EMPTY": "", "HOST": "localhost"}
	for _, tc := range []struct {
		name, script string
		code         int
		out, errOut  string
		calls        []string // nil: not checked
	}{
		{name: "empty", script: "", code: 0, calls: []string{}},
		{name: "only blanks and comments", script: "  \n\t# nothing here\n", code: 0},
		{name: "true", script: "true", code: 0},
		{name: "false", script: "false", code: 1},
		{name: "colon", script: ":", code: 0},
		{name: "plain words", script: "args a  b\tc", out: "[a][b][c]"},
		{name: "single quotes", script: `args 'a b' '$USER' 'x"y'`, out: `[a b][$USER][x"y]`},
		{name: "double quotes", script: `args "a b" "$USER" "x'y" "a\"b" "\$X" "c\d"`, out: `[a b][ktrdr][x'y][a"b][$X][c\d]`},
		{name: "backslash escapes", script: `args a\ b \$USER \"q\" \\ \'`, out: `[a b][$USER]["q"][\][']`},
		{name: "line continuation", script: "args a\\\nb c", out: "[ab][c]"},
		{name: "concatenation", script: `args pre"$USER"'x'$PORT/post`, out: "[prektrdrx8000/post]"},
		{name: "empty quotes keep a word", script: `args "" '' "$EMPTY" x`, out: "[][][][x]"},
		{name: "unquoted empty disappears", script: `args $EMPTY $NOPE x`, out: "[x]"},
		{name: "braces", script: `args ${USER}s ${PORT}`, out: "[ktrdrs][8000]"},
		{name: "default used when unset", script: `args ${NOPE:-fallback} ${NOPE-dash}`, out: "[fallback][dash]"},
		{name: "default used when empty with colon", script: `args ${EMPTY:-fallback} "${EMPTY-kept}"`, out: "[fallback][kept]", calls: []string{"args fallback kept"}},
		{name: "default not used when set", script: `args ${USER:-other}`, out: "[ktrdr]"},
		// Unquoted, ${NOPE:-"a b"$PORT} splits "a b" too in mvdan.cc/sh
		// (a POSIX shell keeps it one field): quote the whole expansion.
		{name: "default with expansion and quotes", script: `args "${NOPE:-a b$PORT}" "${NOPE:-x y}"`, out: "[a b8000][x y]"},
		{name: "unquoted default is split", script: `args ${NOPE:-a b}`, out: "[a][b]"},
		{name: "empty default", script: `args "${NOPE:-}" ${NOPE:-} z`, out: "[][z]"},
		{name: "alternative", script: `args ${USER:+yes} ${NOPE:+no} ${USER+set}`, out: "[yes][set]"},
		{name: "unquoted expansion is split", script: `args $SPACED "$SPACED"`, out: "[a][b][  a  b ]"},
		{name: "dollar not starting an expansion", script: `args $ a$ "$" $%`, out: "[$][a$][$][$%]"},
		{name: "hash inside a word", script: "args a#b # comment", out: "[a#b]"},
		{name: "and runs on success", script: "ok && args yes", out: "[yes]"},
		{name: "and skips on failure", script: "fail && args no", code: 1, out: "", calls: []string{"fail"}},
		{name: "or runs on failure", script: "fail || args yes", out: "[yes]"},
		{name: "or skips on success", script: "ok || args no", code: 0, calls: []string{"ok"}},
		{name: "curl idiom passes", script: "ok || exit 1", code: 0},
		{name: "curl idiom fails", script: "st 22 || exit 1", code: 1},
		{name: "and-or left to right", script: "fail && args a || args b", out: "[b]"},
		{name: "or-and left to right", script: "ok || args a && args b", out: "[b]"},
		{name: "semicolon runs both", script: "fail; args second", out: "[second]", calls: []string{"fail", "args second"}},
		{name: "status of the last", script: "ok; fail", code: 1},
		{name: "trailing semicolon", script: "ok;", code: 0},
		{name: "newlines separate", script: "fail\nargs a\n\nargs b\n", out: "[a][b]"},
		{name: "newline after and", script: "ok &&\n  args a", out: "[a]"},
		{name: "no spaces around operators", script: "ok&&args a||args b;args c", out: "[a][c]"},
		{name: "exit stops", script: "exit 3; args never", code: 3, calls: []string{}},
		{name: "exit without status keeps the last", script: "st 5; exit", code: 5},
		{name: "exit wraps at 256", script: "exit 257", code: 1},
		{name: "exit bad number", script: "exit nope", code: 2, errOut: `invalid exit status code: "nope"`},
		{name: "status variable", script: `st 7; args $? "$?" ${?}`, out: "[7][7][7]"},
		{name: "echo", script: `echo hello   "big  world" $USER`, out: "hello big  world ktrdr\n"},
		{name: "echo -n", script: `echo -n hi`, out: "hi"},
		{name: "negation", script: "! fail && args a; ! ok", code: 1, out: "[a]"},
		{name: "exec", script: "exec st 4; args never", code: 4, calls: []string{"st 4"}},
		{name: "unknown command", script: "nosuch arg", code: 127, errOut: "sh: nosuch: not found\n"},
		{name: "unknown then or", script: "nosuch || args fallback", out: "[fallback]", errOut: "sh: nosuch: not found"},
		{name: "command from a variable", script: `CMD=args; $CMD x`, out: "[x]"},
		{name: "assignment persists", script: `X="a b"; args "$X" $X`, out: "[a b][a][b]"},
		{name: "assignment for one command", script: `PGUSER=other env PGUSER; env PGUSER`, out: "other"},
		{name: "assignment not split", script: `X=$SPACED; args "$X"`, out: "[  a  b ]"},
		{name: "empty assignment", script: `USER=; args "[$USER]"`, out: "[[]]"},
		{name: "equals later in a word is no assignment", script: `args a=b`, out: "[a=b]"},
		{name: "quoted name is no assignment", script: `"X=1"`, code: 127, errOut: "sh: X=1: not found"},
		{name: "unexported assignment invisible to tools", script: `X=1; env X; args "$X"`, out: "[1]"},
		{name: "exported assignment visible to tools", script: `export X=1; env X`, out: "1"},
		{name: "environment visible to tools", script: `env HOST`, out: "localhost"},
		{name: "quoted bang is a command", script: `'!' ok`, code: 127, errOut: "sh: !: not found"},
		{name: "reserved word quoted is a command", script: `"if"`, code: 127, errOut: "sh: if: not found"},
		{name: "braces as arguments", script: `args { } if`, out: "[{][}][if]"},
		{name: "globs matching nothing are literal", script: `args * ?.txt [a]`, out: "[*][?.txt][[a]]"},
		{name: "trailing backslash", script: `args a\`, out: `[a\]`},
		{name: "carriage return is a blank", script: "args a\r\n", out: "[a]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut, calls := runFakeSh(t, tc.script, env)
			assert.Equal(t, tc.code, code, "stderr: %s", errOut)
			assert.Equal(t, tc.out, out)
			if tc.errOut == "" {
				assert.Empty(t, errOut)
			} else {
				assert.Contains(t, errOut, tc.errOut)
			}
			if tc.calls != nil {
				assert.Equal(t, tc.calls, append([]string{}, calls...))
			}
		})
	}
}

func TestStandinShPositional(t *testing.T) {
	code, out, _, _ := runFakeSh(t, `args "$0" $1 ${2} "$3"`, nil, "name", "one", "two")
	assert.Equal(t, 0, code)
	assert.Equal(t, "[name][one][two][]", out)
}

// runSh runs the real sh personality as argv0 with env (listed, too).
func runSh(t *testing.T, env map[string]string, argv ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runIO(t.Context(), argv, func(k string) string { return env[k] }, mapEnviron(env), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// mapEnviron lists env as "NAME=value" pairs.
func mapEnviron(env map[string]string) []string {
	var pairs []string
	for k, v := range env {
		pairs = append(pairs, k+"="+v)
	}
	return pairs
}

// The shell as Docker runs CMD-SHELL healthchecks, with the real tools.
func TestStandinShHealthchecks(t *testing.T) {
	srv := helloServer(t)
	db := startRole(t, "db", nil, true)
	dbHost, dbPort, err := net.SplitHostPort(db.addr)
	require.NoError(t, err)
	env := map[string]string{"SRV": srv.URL, "PGHOST": dbHost, "PGPORT": dbPort, "KTRDR_STANDIN_ROLE": "backend"}

	for _, tc := range []struct {
		name    string
		argv    []string
		code    int
		out     string
		errPart string
	}{
		{"curl ok", []string{"/bin/sh", "-c", "curl -f $SRV/ok || exit 1"}, 0, "hello", ""},
		{"curl failing", []string{"/bin/sh", "-c", "curl -f $SRV/bad || exit 1"}, 1, "", "curl: (22)"},
		{"curl status", []string{"/bin/sh", "-c", "curl -fsS ${SRV}/bad"}, 22, "", "503"},
		{"wget", []string{"sh", "-c", `wget -q --spider "$SRV/ok" && echo up`}, 0, "up\n", ""},
		{"pg_isready from the environment", []string{"/bin/sh", "-c", "pg_isready -U ktrdr"}, 0, "accepting connections", ""},
		{"pg_isready by path", []string{"/usr/bin/sh", "-c", "/usr/bin/pg_isready -q -U ${PGUSER:-ktrdr} -d ktrdr"}, 0, "", ""},
		{"assignment reaches the tool", []string{"sh", "-c", "PGPORT=1 pg_isready -t 1 || echo down"}, 0, "down\n", ""},
		{"subcommand", []string{"standin", "sh", "-c", "curl -fsS $SRV/ok && echo"}, 0, "hello\n", ""},
		{"nested shell", []string{"sh", "-c", `sh -c "exit 4"`}, 4, "", ""},
		{"standin inside", []string{"sh", "-c", `/standin version`}, 0, "standin ", ""},
		{"not found", []string{"/bin/sh", "-c", "python -c 'print(1)'"}, 127, "", "sh: python: not found"},
		{"redirected", []string{"/bin/sh", "-c", "curl -f $SRV/ok > /dev/null 2>&1 && echo up"}, 0, "up\n", ""},
		{"piped to grep", []string{"/bin/sh", "-c", "curl -fsS $SRV/health | grep -q hell"}, 0, "", ""},
		{"piped to grep, no match", []string{"/bin/sh", "-c", "curl -fsS $SRV/health | grep -q nope"}, 1, "", ""},
		{"failing curl piped, pipefail", []string{"/bin/sh", "-o", "pipefail", "-c", "curl -fsS $SRV/bad | cat"}, 22, "", "503"},
		{"pg_isready redirected", []string{"/bin/sh", "-c", "pg_isready -U u > /dev/null 2>&1 && echo up"}, 0, "up\n", ""},
		{"pg_isready down redirected", []string{"/bin/sh", "-c", "PGPORT=1 pg_isready -t 1 > /dev/null 2>&1 || echo down"}, 0, "down\n", ""},
		{"command substitution", []string{"/bin/sh", "-c", `test "$(curl -fsS $SRV/x)" = hello && echo same`}, 0, "same\n", ""},
		{"script from stdin", []string{"/bin/sh"}, 0, "", ""},
		{"script file missing", []string{"/bin/sh", "/healthcheck.sh"}, 127, "", "sh: cannot open /healthcheck.sh"},
		{"bad option", []string{"/bin/sh", "-Z", "-c", "true"}, 2, "", "invalid option -Z"},
		{"-c without a script", []string{"/bin/sh", "-c"}, 2, "", "-c requires an argument"},
		{"set options", []string{"/bin/sh", "-ec", "false; echo never"}, 1, "", ""},
		{"positional", []string{"sh", "-c", `echo "$0:$1"`, "name", "one"}, 0, "name:one\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runSh(t, env, tc.argv...)
			assert.Equal(t, tc.code, code, "stdout %q stderr %q", out, errOut)
			assert.Contains(t, out, tc.out)
			if tc.errPart != "" {
				assert.Contains(t, errOut, tc.errPart)
			}
		})
	}
}

// With entrypoint ["/standin"] and the real file's command, the role from
// KTRDR_STANDIN_ROLE runs. As the container's main process even a command
// that names one of the tools is the real image's and is ignored.
func TestStandinIgnoresRealImageCommands(t *testing.T) {
	for _, tc := range []struct {
		name        string
		role        string
		command     []string
		mainProcess bool
	}{
		{"uvicorn backend", "backend", []string{"uvicorn", "ktrdr.api.main:app", "--host", "0.0.0.0", "--port", "8000"}, false},
		{"uvicorn backend as PID 1", "backend", []string{"uvicorn", "ktrdr.api.main:app", "--host", "0.0.0.0"}, true},
		{"python module worker", "worker", []string{"python", "-m", "ktrdr.workers.backtesting"}, false},
		{"agent worker", "worker", []string{"uvicorn", "ktrdr.agents.workers.design_agent_worker:app"}, true},
		{"shell command as PID 1", "backend", []string{"sh", "-c", "alembic upgrade head && exit 9"}, true},
		{"bash command", "http", []string{"bash", "-c", "exec node server.js"}, false},
		{"tool name as PID 1", "grafana", []string{"curl", "-f", "http://nowhere.invalid/"}, true},
		{"postgres", "db", []string{"postgres", "-c", "max_connections=200"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			env := map[string]string{envRole: tc.role, envListenHost: "127.0.0.1", envPort: strconv.Itoa(port), envNoRegister: "1"}
			ctx, cancel := context.WithCancel(t.Context())
			var out syncBuffer
			done := make(chan int, 1)
			go func() {
				done <- runProcess(ctx, append([]string{"/standin"}, tc.command...), func(k string) string { return env[k] }, nil, strings.NewReader(""), &out, &out, tc.mainProcess)
			}()
			require.Eventually(t, func() bool { return strings.Contains(out.String(), fmt.Sprintf("listening on 127.0.0.1:%d", port)) },
				waitFor, 10*time.Millisecond, "log:\n%s", &out)
			cancel()
			assert.Equal(t, 0, <-done, "log:\n%s", &out)
			assert.Contains(t, out.String(), "ignoring command")
			assert.Contains(t, out.String(), "starting role "+tc.role)
		})
	}

	// Not the main process (docker exec, healthchecks): the tools run.
	env := map[string]string{envRole: "backend"}
	code, _, _ := runSh(t, env, "/standin", "sh", "-c", "exit 9")
	assert.Equal(t, 9, code)
	code, out, _ := runSh(t, env, "/standin", "version")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "standin ")
}

// Pipes, redirections, substitutions and compound commands, with the
// fake tools and the real grep and cat, in a folder of their own.
func TestStandinShPipesAndRedirections(t *testing.T) {
	env := map[string]string{"USER": "ktrdr", "HOST": "localhost"}
	for _, tc := range []struct {
		name, script string
		code         int
		out, errOut  string
		files        map[string]string // files the script leaves, by name; "" checks absence
	}{
		{name: "pipe to grep -q", script: "args ok | grep -q ok", code: 0},
		{name: "pipe to grep -q, no match", script: "args ok | grep -q nope", code: 1},
		{name: "pipe status is the last command's", script: "fail | args x", out: "[x]"},
		{name: "pipefail", script: "set -o pipefail; fail | args x", code: 1, out: "[x]"},
		{name: "negated pipe", script: "! args ok | grep -q nope && echo none", out: "none\n"},
		{name: "pipe through cat", script: "echo hello | cat | cat -", out: "hello\n"},
		{name: "grep prints matching lines", script: "printf 'a\\nbb\\nab\\n' | grep a", out: "a\nab\n"},
		{name: "grep -v -c", script: "printf 'a\\nbb\\nab\\n' | grep -vc a", out: "1\n"},
		{name: "grep -i -x", script: "printf 'OK\\nokay\\n' | grep -ix ok", out: "OK\n"},
		{name: "grep basic and extended", script: `echo 'a+b' | grep 'a+b' && echo 'aab' | grep -E 'a+b'`, out: "a+b\naab\n"},
		{name: "grep -F", script: `echo 'x.*y' | grep -F '.*'`, out: "x.*y\n"},
		{name: "grep bad pattern", script: `echo x | grep -E '('`, code: 2, errOut: "grep: pattern"},
		{name: "stdout to /dev/null", script: "args hidden > /dev/null && echo shown", out: "shown\n"},
		{name: "stderr to stdout to /dev/null", script: "errs oops > /dev/null 2>&1; echo done", out: "done\n"},
		{name: "stderr to stdout", script: "errs oops 2>&1 | grep -c oops", out: "1\n"},
		{name: "stderr alone", script: "errs oops 2>/dev/null", code: 0},
		{name: "write and read a file", script: "echo one > f; echo two >> f; cat < f", out: "one\ntwo\n", files: map[string]string{"f": "one\ntwo\n"}},
		{name: "grep a file", script: "echo 'status: ok' > health; grep -q ok health && echo healthy", out: "healthy\n"},
		{name: "cat a missing file", script: "cat missing", code: 1, errOut: "cat: missing: no such file or directory"},
		{name: "here document", script: "grep b <<EOF\na\nb\nEOF", out: "b\n"},
		{name: "command substitution", script: `X=$(args a b); echo "$X"`, out: "[a][b]\n"},
		{name: "backquotes", script: "echo `echo hi`", out: "hi\n"},
		{name: "arithmetic", script: "echo $((2 + 3 * 4))", out: "14\n"},
		{name: "default in substitution", script: `echo "${NOPE:-$(echo fallback)}"`, out: "fallback\n"},
		{name: "if", script: "if fail; then echo a; elif ok; then echo b; else echo c; fi", out: "b\n"},
		{name: "for", script: "for x in 1 2 3; do echo -n $x; done", out: "123"},
		{name: "while with a counter", script: "i=0; while [ $i -lt 3 ]; do i=$((i+1)); done; echo $i", out: "3\n"},
		{name: "case", script: "case $USER in kt*) echo match;; *) echo no;; esac", out: "match\n"},
		{name: "subshell keeps variables inside", script: "X=1; (X=2; exit 3); echo $? $X", out: "3 1\n"},
		{name: "group", script: "{ echo a; echo b; } | grep -c .", out: "2\n"},
		{name: "function", script: "up() { args \"$1\"; }; up 'a b'", out: "[a b]"},
		{name: "test builtin", script: `[ -n "$USER" ] && test "$HOST" = localhost && echo yes`, out: "yes\n"},
		{name: "exit inside and-or", script: "fail || exit 7; echo never", code: 7},
		{name: "exit in a pipe is that side's", script: "exit 4 | ok; echo after", out: "after\n"},
		{name: "glob", script: "touch() { :; }; echo x > a.txt; echo y > b.txt; echo *.txt", out: "a.txt b.txt\n"},
		{name: "background and wait", script: "args bg & wait; echo", out: "[bg]\n"},
		{name: "host programs never run", script: "ls /", code: 127, errOut: "sh: ls: not found"},
		{name: "unknown in a pipe", script: "nosuch | cat; echo $?", out: "0\n", errOut: "sh: nosuch: not found"},
		{name: "unknown by path", script: "/usr/bin/python3 -V", code: 127, errOut: "sh: /usr/bin/python3: not found"},
		{name: "tool by path", script: "/bin/cat < /dev/null && /usr/bin/grep -q x <<< x", code: 0},
		{name: "environment reaches piped commands", script: "env HOST | grep -q localhost", code: 0},
		{name: "exported variable reaches piped commands", script: "export X=v; env X | cat", out: "v"},
		{name: "syntax error runs nothing", script: "args a; if", code: 2, errOut: "sh: "},
		{name: "unclosed quote", script: "echo 'open", code: 2, errOut: "reached EOF without closing quote"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			code, out, errOut, calls := runFakeShIn(t, dir, tc.script, env)
			assert.Equal(t, tc.code, code, "stderr: %s", errOut)
			assert.Equal(t, tc.out, out)
			if tc.errOut == "" {
				assert.Empty(t, errOut)
			} else {
				assert.Contains(t, errOut, tc.errOut)
			}
			if tc.name == "syntax error runs nothing" {
				assert.Empty(t, calls)
			}
			for name, want := range tc.files {
				got, err := os.ReadFile(filepath.Join(dir, name))
				require.NoError(t, err)
				assert.Equal(t, want, string(got))
			}
		})
	}
}

// `sh` without -c reads its commands from stdin (docker exec -i … sh),
// and `sh FILE` runs a file.
func TestStandinShStdinAndFile(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "check.sh")
	require.NoError(t, os.WriteFile(script, []byte("echo \"$0:$1\"\nexit 3\n"), 0o644))
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		code  int
		out   string
	}{
		{"commands on stdin", nil, "echo hello\nexit 5\necho never\n", 5, "hello\n"},
		{"-s with positional", []string{"-s", "a", "b"}, `echo "$0 $1 $2"`, 0, "sh a b\n"},
		{"status of the last", nil, "true\nfalse\n", 1, ""},
		{"empty stdin", nil, "", 0, ""},
		{"a file", []string{script, "one"}, "", 3, script + ":one\n"},
		{"interactive", []string{"-i"}, "echo a\nif true\nthen echo b; fi\necho 'x\nexit 2\n", 2, "a\nb\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runIO(t.Context(), append([]string{"sh"}, tc.args...), func(string) string { return "" }, nil,
				strings.NewReader(tc.stdin), &out, &errb)
			assert.Equal(t, tc.code, code, "stderr: %s", errb.String())
			assert.Equal(t, tc.out, out.String())
		})
	}
}

func FuzzGrepPattern(f *testing.F) {
	for _, seed := range []string{"ok", "a+b", `\(a\)\{2\}`, "[", `\`, "(", "a|b", "^$", `\w+`} {
		f.Add(seed, "a+b\nok\n(x)\n")
	}
	f.Fuzz(func(t *testing.T, pattern, input string) {
		for _, flags := range [][]string{{"-c"}, {"-E", "-c"}, {"-F", "-ivx"}} {
			var out, errb bytes.Buffer
			code := grepMain(t.Context(), append(flags, "-e", pattern), strings.NewReader(input), &out, &errb)
			assert.Contains(t, []int{grepMatch, grepNoMatch, grepTrouble}, code)
			if flags[0] == "-F" && utf8.ValidString(pattern) {
				assert.NotEqual(t, grepTrouble, code, "a fixed string always compiles: %s", &errb)
			}
		}
	})
}

// The tools run in this process, yet relative names follow the shell's cd.
func TestStandinShToolsFollowCd(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("inside\n"), 0o644))
	code, out, errOut, _ := runFakeShIn(t, dir, "cd sub && cat f && grep -c in f", nil)
	assert.Equal(t, 0, code, errOut)
	assert.Equal(t, "inside\n1\n", out)
}
