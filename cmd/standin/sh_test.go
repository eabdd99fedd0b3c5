package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeTools stands for the stand-in's tools in shell tests:
//
//	ok / fail        status 0 / 1
//	st N             status N
//	args A…          prints each argument as [A]
//	env NAME         prints getenv(NAME)
type fakeTools struct{ calls []string }

func (f *fakeTools) run(_ context.Context, name string, args []string, getenv func(string) string, stdout, _ io.Writer) (int, bool) {
	f.calls = append(f.calls, strings.TrimSpace(name+" "+strings.Join(args, " ")))
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
	}
	return 0, false
}

// runFakeSh parses and runs script with fake tools and env.
func runFakeSh(t *testing.T, script string, env map[string]string, positional ...string) (code int, stdout, stderr string, calls []string) {
	t.Helper()
	var out, errb bytes.Buffer
	lists, err := parseShell(script)
	if err != nil {
		return shSyntax, "", err.Error(), nil
	}
	if len(positional) == 0 {
		positional = []string{"sh"}
	}
	tools := &fakeTools{}
	s := &shell{ctx: t.Context(), getenv: func(k string) string { return env[k] }, vars: map[string]string{},
		args: positional, stdout: &out, stderr: &errb, external: tools.run}
	code = s.run(lists)
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
		{name: "default with expansion and quotes", script: `args ${NOPE:-"a b"$PORT} "${NOPE:-x y}"`, out: "[a b8000][x y]"},
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
		{name: "exit bad number", script: "exit nope", code: 2, errOut: "sh: exit: Illegal number: nope"},
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
		{name: "assignment visible to tools", script: `X=1; env X`, out: "1"},
		{name: "environment visible to tools", script: `env HOST`, out: "localhost"},
		{name: "quoted bang is a command", script: `'!' ok`, code: 127, errOut: "sh: !: not found"},
		{name: "reserved word quoted is a command", script: `"if"`, code: 127, errOut: "sh: if: not found"},
		{name: "braces as arguments", script: `args { } if`, out: "[{][}][if]"},
		{name: "glob characters are literal", script: `args * ?.txt [a]`, out: "[*][?.txt][[a]]"},
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

// Everything the shell cannot run is refused before anything runs.
func TestStandinShRefuses(t *testing.T) {
	for _, tc := range []struct{ script, want string }{
		{"curl -f http://x | grep ok", "pipes (|)"},
		{"curl -f http://x > /dev/null", "redirections (>)"},
		{"curl -f http://x 2>&1", "redirections (>)"},
		{"pg_isready < /dev/null", "redirections (<)"},
		{"cat <<EOF", "redirections (<)"},
		{"sleep 1 &", "background jobs (&)"},
		{"(exit 1)", "subshells (parentheses)"},
		{"ok; )", "subshells (parentheses)"},
		{"echo `date`", "command substitution (`)"},
		{"echo \"`date`\"", "command substitution (`)"},
		{"echo $(date)", "$( … )"},
		{"echo \"$(date)\"", "$( … )"},
		{"echo $((1+2))", "$( … )"},
		{"{ ok; }", `"{" is not supported`},
		{"if ok; then ok; fi", `"if" is not supported`},
		{"ok && while ok; do ok; done", `"while" is not supported`},
		{"for x in a; do ok; done", `"for" is not supported`},
		{"case x in x) ok;; esac", `"case" is not supported`},
		{"[[ -f x ]]", `"[[" is not supported`},
		{"echo ${#USER}", "not supported"},
		{"echo ${USER:=x}", "not supported (only ${NAME}"},
		{"echo ${USER?}", "not supported (only ${NAME}"},
		{"echo ${USER%x}", "not supported (only ${NAME}"},
		{"echo ${}", "not supported"},
		{"echo $@", "$@ is not supported"},
		{"echo $*", "$* is not supported"},
		{"echo $#", "$# is not supported"},
		{"echo $$", "$$ is not supported"},
		{"echo $!", "$! is not supported"},
		{"echo ${USER:-x", "missing }"},
		{"echo 'open", "unterminated single quote"},
		{`echo "open`, "unterminated double quote"},
		{`echo "${X:-"a"}"`, "nested double quote"},
		{"&& ok", "without a command before it"},
		{"ok &&", "without a command after it"},
		{"ok || ; ok", "without a command after it"},
		{"ok && && ok", "without a command before it"},
		{"; ok", `";" without a command before it`},
		{"ok;; ok", `";;"`},
		{"!", "`!' without a command"},
		{"ok; !", "`!' without a command"},
	} {
		t.Run(tc.script, func(t *testing.T) {
			code, _, errOut, calls := runFakeSh(t, tc.script, nil)
			assert.Equal(t, shSyntax, code)
			assert.Contains(t, errOut, tc.want)
			assert.Empty(t, calls, "nothing runs")
		})
	}
}

// runSh runs the real sh personality as argv0 with env.
func runSh(t *testing.T, env map[string]string, argv ...string) (int, string, string) {
	t.Helper()
	return runWith(t, env, argv...)
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
		{"refused", []string{"/bin/sh", "-c", "curl -f $SRV/ok > /dev/null"}, 2, "", "redirections"},
		{"no -c", []string{"/bin/sh"}, 2, "", "only `sh -c STRING"},
		{"script file", []string{"/bin/sh", "/healthcheck.sh"}, 2, "", "only `sh -c STRING"},
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
				done <- runProcess(ctx, append([]string{"/standin"}, tc.command...), func(k string) string { return env[k] }, &out, &out, tc.mainProcess)
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

func FuzzShParse(f *testing.F) {
	for _, seed := range []string{
		"", "true", "curl -f http://localhost:8000/api/v1/health || exit 1", "pg_isready -U ktrdr",
		`args "a $B ${C:-d "e"}" 'f' g\ h`, "ok && fail || exit 3; echo $?", "X=1 env X; X=2; ! $X",
		"${A:+x}${B-y}$0$1", "a | b", "a > b", "`x`", "$(x)", "if x; then y; fi", "\\\n#c\n;",
		`"${X:-'a'}"`, "${X:-${Y:-${Z}}}", "exec exit 7",
	} {
		f.Add(seed)
	}
	env := map[string]string{"B": "b c", "C": "", "X": "args"}
	f.Fuzz(func(t *testing.T, script string) {
		lists, err := parseShell(script)
		if err != nil {
			var se *shSyntaxError
			require.ErrorAs(t, err, &se)
			return
		}
		var out, errb bytes.Buffer
		tools := &fakeTools{}
		s := &shell{ctx: context.Background(), getenv: func(k string) string { return env[k] }, vars: map[string]string{},
			args: []string{"sh", "1"}, stdout: &out, stderr: &errb, external: tools.run}
		code := s.run(lists)
		assert.GreaterOrEqual(t, code, 0)
		assert.LessOrEqual(t, code, 255)
	})
}
