package magerun

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testSignatures are two targets shaped like sandbox:create and sandbox:up.
var testSignatures = &signatures{
	Targets: map[string]targetSig{
		"sandbox:create": {Name: "sandbox:create", Args: []argSig{{"name", "string", false}, {"slot", "int", true}, {"standin", "bool", true}}},
		"sandbox:up":     {Name: "sandbox:up", Args: []argSig{{"nowait", "bool", true}, {"timeout", "time.Duration", true}}},
		"sandbox:list":   {Name: "sandbox:list"},
		"stack:scale":    {Name: "stack:scale", Args: []argSig{{"n", "int", false}, {"f", "float64", true}}},
	},
	Aliases: map[string]string{"up": "sandbox:up"},
}

// check refuses exactly what mage's generated program refuses (exit 2
// there), and names the target, the flag and the type expected.
func TestSignaturesCheck(t *testing.T) {
	tests := []struct {
		args []string
		want string // part of the error; "" : accepted
	}{
		{[]string{"sandbox:up"}, ""},
		{[]string{"Sandbox:Up", "-timeout=5m", "-nowait"}, ""},
		{[]string{"up", "-NoWait=false"}, ""},
		{[]string{"sandbox:create", "feat", "-slot=3", "-standin", "sandbox:up", "-timeout=1h30m"}, ""},
		{[]string{"sandbox:create", "-feat"}, ""}, // a required argument may start with a dash
		{[]string{"sandbox:list", "sandbox:list"}, ""},
		{[]string{"stack:scale", "3", "-f=0.5"}, ""},
		{[]string{"sandbox:up", "-timeout=abc"}, `sandbox:up: flag -timeout=abc: "abc" is not a duration`},
		{[]string{"sandbox:up", "-timeout"}, "sandbox:up: flag -timeout needs a value"},
		{[]string{"sandbox:up", "-nowait=maybe"}, `"maybe" is not true or false (bool)`},
		{[]string{"sandbox:up", "-tmeout=5m"}, "sandbox:up has no flag -tmeout; its flags: -nowait, -timeout"},
		{[]string{"sandbox:upp"}, `unknown target "sandbox:upp"`},
		{[]string{"sandbox:create"}, "sandbox:create needs <name>"},
		{[]string{"sandbox:create", "feat", "-slot=x"}, `flag -slot=x: "x" is not an integer (int)`},
		{[]string{"stack:scale", "many"}, `argument <n> "many" is not an integer`},
		{[]string{"stack:scale", "3", "-f=half"}, `"half" is not a number (float64)`},
		{[]string{"sandbox:list", "-json"}, "-json is not a flag of the target before it"},
		{[]string{"sandbox:up", "-timeout=5m", "sandbox:nope"}, `unknown target "sandbox:nope"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := testSignatures.check(tt.args)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			var ue *UsageError
			require.ErrorAs(t, err, &ue)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// The signatures of this project's magefiles: the targets of
// internal/targets, named as mage lists them, with their flags' types.
func TestParseSignaturesOfThisProject(t *testing.T) {
	dir, err := filepath.Abs("../../magefiles")
	require.NoError(t, err)
	files, err := findMagefiles(filepath.Dir(dir), "", "", &bytes.Buffer{})
	require.NoError(t, err)
	s, err := parseSignatures("go", dir, files, false)
	require.NoError(t, err)
	up, ok := s.Targets["sandbox:up"]
	require.True(t, ok, "sandbox:up is a target: %v", s.Targets)
	assert.Contains(t, up.Args, argSig{"timeout", "time.Duration", true})
	assert.Equal(t, "sandbox:initShared", s.Targets["sandbox:initshared"].Name)
	assert.Equal(t, "sandbox:url", s.Targets["sandbox:url"].Name)
	assert.Contains(t, s.Targets["sandbox:create"].Args, argSig{"name", "string", false})
	assert.Error(t, s.check([]string{"sandbox:up", "-timeout=abc"}))
	assert.NoError(t, s.check([]string{"sandbox:up", "-timeout=3m", "-json"}))
}

// Through Run, as go tool mage: a module whose magefile imports an internal
// package of the module with //mage:import is built in the workspace (no
// fallback), a bad flag exits 64 before the program runs, and a change in
// the internal package is a new program.
func TestRunBuildsInternalImportAndRefusesBadFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program with go")
	}
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("go.mod", "module example.test/proj\n\ngo 1.22\n")
	write("magefiles/targets.go", "//go:build mage\n\npackage main\n\nimport (\n\t//mage:import\n\t_ \"example.test/proj/internal/targets\"\n)\n")
	target := func(greeting string) string {
		return "package targets\n\nimport \"fmt\"\n\n// Hello greets n times.\nfunc Hello(n *int) error {\n\tfor range max(1, deref(n)) {\n\t\tfmt.Println(\"" + greeting + "\")\n\t}\n\treturn nil\n}\n\nfunc deref(p *int) int {\n\tif p == nil {\n\t\treturn 0\n\t}\n\treturn *p\n}\n"
	}
	write("internal/targets/targets.go", target("hello"))
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	require.NoError(t, err)
	t.Setenv("GOCACHE", strings.TrimSpace(string(gocache))) // not below the new XDG_CACHE_HOME
	t.Setenv("XDG_CACHE_HOME", filepath.Join(root, "cache"))
	t.Setenv("GOTOOLCHAIN", "local")
	t.Chdir(root)

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Run(&out, &errb, strings.NewReader(""), args)
		return code, out.String(), errb.String()
	}
	code, out, errOut := run("-debug", "hello", "-n=2")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "hello\nhello\n", out)
	assert.NotContains(t, errOut, "use of internal package", "built in the workspace, not by the fallback")
	cache := filepath.Join(root, "cache", "ktrdr-sandbox", "mage")
	var sigs []string
	sigs, err = filepath.Glob(filepath.Join(cache, "*"+signaturesSuffix))
	require.NoError(t, err)
	assert.Len(t, sigs, 1, "the signatures are kept beside the program")

	code, out, errOut = run("hello", "-n=abc")
	assert.Equal(t, ExitUsage, code)
	assert.Empty(t, out, "the program did not run")
	assert.Contains(t, errOut, `hello: flag -n=abc: "abc" is not an integer (int)`)
	code, _, errOut = run("helo")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut, `unknown target "helo"`)
	code, _, _ = run("-t=abc", "hello")
	assert.Equal(t, ExitUsage, code, "a bad flag of mage's own is a usage error too")

	write("internal/targets/targets.go", target("bonjour"))
	code, out, errOut = run("hello")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "bonjour\n", out, "a change in the imported internal package is picked up")
}
