package targets

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// Every kind of event the library declares has its own line here: none
// falls through to the raw form.
func TestEveryEventKindHasItsLine(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../sandbox/event.go", nil, 0)
	require.NoError(t, err)
	var kinds []string
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "EventKind" {
				lit := vs.Values[0].(*ast.BasicLit)
				kinds = append(kinds, strings.Trim(lit.Value, `"`))
			}
		}
		return true
	})
	require.NotEmpty(t, kinds)
	for _, k := range kinds {
		line := eventText(sandbox.Event{Kind: sandbox.EventKind(k), ID: "ktrdr--a", Path: "/p", Branch: "b", Slot: 1, Port: 8001})
		assert.NotContains(t, line, k, "kind %s has no line of its own", k)
	}
	assert.Equal(t, "Created worktree /p on new branch b", eventText(sandbox.Event{Kind: sandbox.EvWorktreeCreated, Path: "/p", Branch: "b", NewBranch: true}))
	assert.Equal(t, "Starting ktrdr--a (slot 1, API port 8001)…", eventText(sandbox.Event{Kind: sandbox.EvStarting, ID: "ktrdr--a", Slot: 1, Port: 8001}))
}
