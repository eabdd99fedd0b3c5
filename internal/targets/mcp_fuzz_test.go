package targets

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzMCPToolArguments sends any arguments to any tool: the server answers
// every call with a result (never a protocol error, never a crash), a
// failure carries an exit code, and nothing is made outside the folders a
// sandbox may use.
func FuzzMCPToolArguments(f *testing.F) {
	seeds := []struct{ tool, args string }{
		{"status", `{"name":"../../etc"}`},
		{"create", `{"name":"../../etc"}`},
		{"create", `{"name":"a","slot":-1}`},
		{"create", `{"name":"a","branch":"../../x"}`},
		{"create", `{"name":"a","branch":"--orphan"}`},
		{"create", `{"name":"a","context":"--help"}`},
		{"create", `{"name":"a","up":true,"timeout":"-5s"}`},
		{"destroy", `{"name":"..","force":true}`},
		{"logs", `{"name":"a","tail":1000000000,"service":"--follow"}`},
		{"ports", `{"name":"a","slot":99999}`},
		{"down", `{"name":"a","volumes":"yes"}`},
		{"url", `{}`},
		{"list", `{"extra":1}`},
		{"up", `null`},
		{"status", `[]`},
		{"status", `"feat"`},
	}
	for _, s := range seeds {
		f.Add(s.tool, s.args)
	}
	tools := []string{"create", "up", "down", "destroy", "status", "list", "url", "logs", "ports"}
	f.Fuzz(func(t *testing.T, tool, args string) {
		if !slices.Contains(tools, tool) || !json.Valid([]byte(args)) {
			t.Skip()
		}
		w := newWorld(t)
		cs := mcpClient(t, w, nil)
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: json.RawMessage(args)})
		require.NoError(t, err, "a result, never a protocol error")
		if res.IsError {
			e := toolErr(t, res, structured(t, res))
			assert.GreaterOrEqual(t, e["exit_code"], float64(1), "every failure has its exit code")
		}
		entries, err := os.ReadDir(w.dev)
		require.NoError(t, err)
		for _, en := range entries {
			assert.True(t, en.Name() == "ktrdr2" || strings.HasPrefix(en.Name(), "ktrdr--"), "only sandboxes beside the checkout: %s", en.Name())
		}
		_, list := call(t, cs, "list", nil)
		assert.NotNil(t, list, "the server still answers")
	})
}
