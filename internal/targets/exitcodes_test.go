package targets

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/magefile/mage/mg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox"
	"github.com/ktrdr/sandboxkit/sandbox/merge"
)

// readmeTargets reads the target table under "## Targets" in README.md:
// each target's name and its exit-code cell.
func readmeTargets(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(data), "\n## Targets\n")
	require.True(t, ok, "README.md has a ## Targets section")
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("^\\| `([a-z]+:[a-zA-Z]+)[^`]*` \\|.*\\| ([^|]+) \\|$")
	out := map[string]string{}
	header := false
	for line := range strings.SplitSeq(section, "\n") {
		if line == "| target | what it does | exit codes |" {
			header = true
			continue
		}
		if !header || !strings.HasPrefix(line, "| `") {
			continue
		}
		m := row.FindStringSubmatch(line)
		require.NotNil(t, m, "a target row of README.md: %s", line)
		require.NotContains(t, out, m[1], "one row per target")
		out[m[1]] = m[2]
	}
	require.True(t, header, "README.md's ## Targets has the table | target | what it does | exit codes |")
	return out
}

// The README's exit codes are the table in code, target for target.
func TestReadmeExitCodes(t *testing.T) {
	readme := readmeTargets(t)
	assert.ElementsMatch(t, slices.Collect(maps.Keys(exitCodes)), slices.Collect(maps.Keys(readme)), "the same targets")
	for target, codes := range exitCodes {
		assert.Equal(t, renderCodes(codes), readme[target], "exit codes of %s", target)
	}
}

// Every target mage finds (every method of the namespaces) has its codes.
func TestEveryTargetHasExitCodes(t *testing.T) {
	var found []string
	for _, ns := range []any{Sandbox{}, Stack{}, Merge{}} {
		typ := reflect.TypeOf(ns)
		for i := range typ.NumMethod() {
			found = append(found, strings.ToLower(typ.Name())+":"+lowerFirst(typ.Method(i).Name))
		}
	}
	assert.ElementsMatch(t, slices.Collect(maps.Keys(exitCodes)), found)
}

func lowerFirst(s string) string {
	r := []rune(s)
	// mage lowers a leading run of capitals: URL → url.
	for i := range r {
		if !unicode.IsUpper(r[i]) || (i > 0 && i+1 < len(r) && unicode.IsLower(r[i+1])) {
			break
		}
		r[i] = unicode.ToLower(r[i])
	}
	return string(r)
}

// A rule gives only codes its targets declare, and every declared failure
// code comes from some rule.
func TestRulesGiveDeclaredCodes(t *testing.T) {
	given := map[string][]int{}
	for i, r := range rules {
		for target, codes := range exitCodes {
			if !r.appliesTo(target) {
				continue
			}
			declared := slices.ContainsFunc(codes, func(c exitCode) bool { return c.Code == r.code })
			assert.True(t, declared, "rule %d gives %s exit %d, which it does not declare", i, target, r.code)
			given[target] = append(given[target], r.code)
		}
		for _, target := range r.only {
			assert.Contains(t, exitCodes, target, "rule %d names a target", i)
		}
	}
	for target, codes := range exitCodes {
		for _, c := range codes {
			if c.Code != 0 {
				assert.Contains(t, given[target], c.Code, "no rule gives %s exit %d (%s)", target, c.Code, c.Meaning)
			}
		}
	}
	assert.Nil(t, rules[len(rules)-1].match, "the last rule catches every error")
}

// classify, error category by category: the code and the hint a person reads.
func TestClassify(t *testing.T) {
	portErr := &sandbox.PortInUseError{Slot: 2}
	outside := &sandbox.OutsideFolderError{Engine: "big", Checkout: "/dev/ktrdr--a", Folders: []sandbox.OutsideFolder{
		{Folder: "/etc", Kind: "bind mount", Services: []string{"backend"}, Resolved: "/etc", Reason: "lies outside them"},
		{Folder: "/dev/ktrdr--a/x", Kind: "bind mount", Services: []string{"backend"}, Resolved: "/srv/x", Reason: "leads to /srv/x, outside them"},
	}}
	tests := []struct {
		target   string
		err      error
		code     int
		hint     string // a part of the hint ("" : none)
		wantNone bool   // no hint at all
	}{
		{tCreate, &sandbox.DirExistsError{Path: "/dev/ktrdr--a"}, 3, "pick another name", false},
		{tCreate, &sandbox.BranchInUseError{Branch: "main", Worktree: "/dev/ktrdr2"}, 2, "destroy the sandbox in /dev/ktrdr2", false},
		{tCreate, &sandbox.WorktreeError{Path: "/dev/ktrdr--a", Err: errors.New("no commit")}, 2, "", true},
		{tCreate, &sandbox.NotProjectError{Dir: "/tmp"}, 2, "checkout of the ktrdr project", false},
		{tCreate, &sandbox.SlotError{Slot: 2, Err: portErr}, 1, "omit -slot", false},
		{tCreate, &sandbox.NoFreeSlotError{Min: 1, Max: 10, Skipped: map[int]error{1: portErr}}, 1, "free a slot", false},
		{tInit, &sandbox.SlotError{Slot: 2, Err: portErr}, 3, "free those ports", false},
		{tInit, &sandbox.NoFreeSlotError{Min: 1, Max: 10, Skipped: map[int]error{1: portErr}}, 3, "free the ports named above", false},
		{tInit, &sandbox.NoFreeSlotError{Min: 1, Max: 10}, 1, "free a slot", false},
		{tInit, &sandbox.NotProjectError{Dir: "/tmp"}, 2, "checkout of the ktrdr project", false},
		{tInit, &sandbox.AlreadySandboxError{}, 1, "sandbox:status", false},
		{tUp, fmt.Errorf("port preflight for slot 2: %w", portErr), 3, "stop what holds those ports", false},
		{tUp, fmt.Errorf("up: %w", sandbox.ErrGateFailed), 2, "sandbox:logs", false},
		{tUp, &sandbox.MissingExternalError{}, 4, "create them", false},
		{tUp, &sandbox.SubnetPoolExhaustedError{Pool: sandbox.DefaultSubnetPool()}, 1, "widen subnet_pool in ~/.ktrdr/sandbox/config.json", false},
		{tUp, &sandbox.SubnetConflictError{Network: "back"}, 1, "remove network back's ipam section", false},
		{tUp, &leftRunningError{context.Canceled}, 1, "keeps running", false},
		{tUp, &sandbox.ComposeError{Err: errors.New("boom")}, 1, "-v", false},
		{tUp, fmt.Errorf("up: %w", outside), 1, `nothing was made on engine big. Mount folders inside the checkout or the shared root instead (go tool mage sandbox:initShared fills ~/.ktrdr/shared), or run the sandbox on the local engine. If engine big may hold a copy of exactly these folders: go tool mage sandbox:up -allowSync=/etc,/srv/x, or for good "allow_sync": ["/etc", "/srv/x"] in ~/.ktrdr/sandbox/config.json (each allows that folder only, not what lies below it)`, false},
		{tSync, outside, 1, "go tool mage sandbox:sync -allowSync=/etc,", false},
		{tSync, &sandbox.OutsideFolderError{Engine: "big", Folders: []sandbox.OutsideFolder{{Folder: "/x", Reason: "cannot be followed"}}}, 1, "run the sandbox on the local engine", false},
		{tUp, &sandbox.AllowSyncError{Folder: "data"}, 1, "take absolute folders", false},
		{tDown, &sandbox.NotSandboxError{Dir: "/tmp"}, 1, "sandbox:create", false},
		{tUp, fmt.Errorf("up: %w", &sandbox.LowMemoryError{ID: "ktrdr--c", Engine: "local", Top: []sandbox.MemoryUser{{ID: "ktrdr--a", Path: "/dev/ktrdr--a"}}}), 5, "cd /dev/ktrdr--a && go tool mage sandbox:down, or every running sandbox with go tool mage sandbox:down -all", false},
		{tUp, &sandbox.LowMemoryError{ID: "ktrdr--c", Engine: "big"}, 5, "free memory on engine big", false},
		{tUp, &sandbox.SecretsFileError{Path: "/h/.ktrdr/sandbox/secrets.env", Reason: "may be read or written by others (mode 0644)", Fix: "chmod 600 /h/.ktrdr/sandbox/secrets.env"}, 6, "nothing was started: chmod 600 /h/.ktrdr/sandbox/secrets.env, then run sandbox:up again", false},
		{tUp, fmt.Errorf("up: %w", &sandbox.SecretsCommandError{Argv: []string{"op", "inject"}, ExitCode: 1, Reason: "failed with exit status 1"}), 6, "run the secrets_command of ~/.ktrdr/sandbox/config.json yourself", false},
		{tDown, &sandbox.DownAllError{Failed: []sandbox.StopResult{{ID: "ktrdr--b"}}, Of: 2}, 1, "sandbox:destroy -name=b", false},
		{tDown, &allVolumesError{}, 1, "sandbox:down -volumes in its folder", false},
		{tPorts, &sandbox.NotProjectError{Dir: "/tmp"}, 1, "checkout of the ktrdr project", false},
		{tList, &sandbox.RegistryCorruptError{Path: "/h/instances.json", Reason: "bad"}, 1, "mv /h/instances.json /h/instances.json.bad", false},
		{tList, &sandbox.RegistryCorruptError{Path: "/h/instances.json", ID: "ktrdr--a", Field: "slot", Reason: `entry "ktrdr--a": slot 12 is outside`}, 1, "raise it again", false},
		{tLogs, &driver.ExitError{Cmd: "docker compose logs", Code: 7}, 7, "", true},
		{tLogs, &sandbox.NotSandboxError{Dir: "/tmp"}, 1, "sandbox:create", false},
		{tInitShared, context.Canceled, 1, "interrupted", false},
		{tInitShared, errors.New("disk full"), 1, "nothing was left half done", false},
		{tURL, &sandbox.EnvFileError{Path: "/x/.env.sandbox", Key: "KTRDR_API_PORT", Err: errors.New("bad")}, 1, "-port=N", false},
		{tURL, errors.New("other"), 1, "", true},
		{tImages, errors.New("docker import failed"), 1, "running Docker engine", false},
		{tApply, fmt.Errorf("apply: %w", merge.ErrMergeApplied), 1, "merge:rollback", false},
		{tApply, &refusedMergeError{err: errors.New("refused")}, 1, "docker-compose.yml is unchanged", false},
		{tVerify, &verifyFailedError{}, 1, "merge:rollback", false},
		{tVerify, context.Canceled, 1, "", true},
		{tRollback, &rollbackError{err: errors.New("x"), res: merge.Result{Tag: "pre-merge-1"}}, 1, "git show pre-merge-1:docker-compose.yml", false},
		{tDestroy, &driver.ExitError{Cmd: "git worktree remove", Code: 128}, 1, "git refused", false},
		{tStatus, &homeError{errors.New("$HOME is not defined")}, 1, "set HOME", false},
	}
	for _, tt := range tests {
		t.Run(tt.target+" "+fmt.Sprintf("%T", tt.err), func(t *testing.T) {
			code, hint := classify(tt.target, tt.err)
			assert.Equal(t, tt.code, code)
			if tt.wantNone {
				assert.Empty(t, hint)
			} else {
				assert.Contains(t, hint, tt.hint)
			}
			err := exit(tt.target, tt.err)
			assert.Equal(t, tt.code, mg.ExitStatus(err))
			assert.True(t, strings.HasPrefix(err.Error(), tt.err.Error()), "the library's message comes first: %s", err)
		})
	}
	assert.NoError(t, exit(tUp, nil))
}

// A target's doc comment (what go tool mage -h shows) names only exit
// codes the table declares for it.
func TestDocCommentsNameDeclaredCodes(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments)
	require.NoError(t, err)
	code := regexp.MustCompile(`(?:^|, )(\d+) `)
	seen := 0
	for _, f := range pkgs["targets"].Files {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || fn.Doc == nil || !fn.Name.IsExported() {
				continue
			}
			id, ok := fn.Recv.List[0].Type.(*ast.Ident)
			if !ok || !id.IsExported() {
				continue // not a namespace: no target
			}
			recv := id.Name
			target := strings.ToLower(recv) + ":" + lowerFirst(fn.Name.Name)
			doc := strings.Join(strings.Fields(fn.Doc.Text()), " ")
			_, exits, ok := strings.Cut(doc, "Exit ")
			if !ok {
				continue
			}
			exits, _, _ = strings.Cut(exits, ".")
			seen++
			for _, m := range code.FindAllStringSubmatch(exits, -1) {
				n, err := strconv.Atoi(m[1])
				require.NoError(t, err)
				assert.True(t, slices.ContainsFunc(exitCodes[target], func(c exitCode) bool { return c.Code == n }),
					"the doc of %s names exit %d, which the table does not declare: %q", target, n, exits)
			}
		}
	}
	assert.NotZero(t, seen, "the docs were read")
}
