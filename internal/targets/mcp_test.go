package targets

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magefile/mage/mg"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// The MCP server's tools, driven with the SDK's own client over the
// in-memory transport, in the command tests' world (real git, fake docker).

// mcpClient connects a client to a server for the world's main checkout;
// progress receives the progress notifications.
func mcpClient(t *testing.T, w *world, progress func(*mcp.ProgressNotificationParams)) *mcp.ClientSession {
	t.Helper()
	ct, st := mcp.NewInMemoryTransports()
	ss, err := newMCPServer(t.Context(), w.main, w.home, w.errOut).Connect(t.Context(), st, nil)
	require.NoError(t, err)
	t.Cleanup(func() { ss.Close() })
	opts := &mcp.ClientOptions{}
	if progress != nil {
		opts.ProgressNotificationHandler = func(_ context.Context, r *mcp.ProgressNotificationClientRequest) { progress(r.Params) }
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, opts).Connect(t.Context(), ct, nil)
	require.NoError(t, err)
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call calls a tool and returns its result and structured content as JSON
// values; a protocol error fails the test.
func call(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) (*mcp.CallToolResult, map[string]any) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: args})
	require.NoError(t, err, "a tool's failure is a result, never a protocol error")
	return res, structured(t, res)
}

func structured(t *testing.T, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	if res.StructuredContent == nil {
		return nil
	}
	data, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	return doc
}

// targetJSON runs a target that prints JSON and returns its document.
func targetJSON(t *testing.T, w *world, run func() error) map[string]any {
	t.Helper()
	w.out.Reset()
	require.NoError(t, run())
	var doc map[string]any
	require.NoError(t, json.Unmarshal(w.out.Bytes(), &doc), "%s", w.out)
	return doc
}

func textOf(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// toolErr is the error of a failed call's structured content.
func toolErr(t *testing.T, res *mcp.CallToolResult, doc map[string]any) map[string]any {
	t.Helper()
	require.True(t, res.IsError, "the call failed: %s", textOf(res))
	require.IsType(t, map[string]any{}, doc["error"], "the failure is structured: %v", doc)
	return doc["error"].(map[string]any)
}

func TestMCPToolsAreTheTargets(t *testing.T) {
	w := newWorld(t)
	cs := mcpClient(t, w, nil)
	tools, err := cs.ListTools(t.Context(), nil)
	require.NoError(t, err)
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
		assert.NotEmpty(t, tool.Description, tool.Name)
	}
	assert.ElementsMatch(t, []string{"create", "up", "down", "destroy", "status", "list", "url", "logs", "ports"}, names)
	for _, tool := range tools.Tools {
		if tool.Name == "list" {
			continue
		}
		schema, err := json.Marshal(tool.InputSchema)
		require.NoError(t, err)
		assert.Contains(t, string(schema), `"required":["name"]`, "%s names its sandbox", tool.Name)
	}
}

// Each tool answers with the document its target's -json prints.
func TestMCPToolsAnswerAsTheTargetsPrint(t *testing.T) {
	w := newWorld(t)
	cs := mcpClient(t, w, nil)

	res, created := call(t, cs, "create", map[string]any{"name": "feat", "slot": 9})
	require.False(t, res.IsError, textOf(res))
	assert.Equal(t, "ktrdr--feat", created["id"])
	assert.Equal(t, "http://localhost:8009", created["api_url"])
	assert.Contains(t, textOf(res), "Created sandbox ktrdr--feat in slot 9")
	folder := filepath.Join(w.dev, "ktrdr--feat")
	assert.Equal(t, folder, created["path"])

	res, _ = call(t, cs, "create", map[string]any{"name": "other", "slot": 8})
	require.False(t, res.IsError, textOf(res))
	t.Chdir(w.main)
	other := targetJSON(t, w, func() error {
		return Sandbox{}.Create(t.Context(), "third", nil, ptr(7), nil, nil, ptr(true), nil, nil)
	})
	assert.ElementsMatch(t, keys(created), keys(other), "create: the target's document")

	_, list := call(t, cs, "list", nil)
	assert.Equal(t, targetJSON(t, w, func() error { return Sandbox{}.List(t.Context(), ptr(true)) }), list, "list")

	t.Chdir(folder)
	_, status := call(t, cs, "status", map[string]any{"name": "feat"})
	assert.Equal(t, targetJSON(t, w, func() error { return Sandbox{}.Status(t.Context(), ptr(true)) }), status, "status")
	_, ports := call(t, cs, "ports", map[string]any{"name": "feat", "slot": 3})
	assert.Equal(t, targetJSON(t, w, func() error { return Sandbox{}.Ports(t.Context(), ptr(3), ptr(true)) }), ports, "ports")
	res, url := call(t, cs, "url", map[string]any{"name": "feat"})
	assert.Equal(t, targetJSON(t, w, func() error { return Sandbox{}.URL(nil, nil, ptr(true)) }), url, "url")
	assert.Equal(t, "http://localhost:8009", textOf(res))
	_, down := call(t, cs, "down", map[string]any{"name": "feat"})
	assert.Equal(t, targetJSON(t, w, func() error { return Sandbox{}.Down(t.Context(), nil, nil, ptr(true)) }), down, "down")

	res, destroyed := call(t, cs, "destroy", map[string]any{"name": "feat"})
	require.False(t, res.IsError, textOf(res))
	assert.Equal(t, "ktrdr--feat", destroyed["id"])
	assert.Equal(t, true, destroyed["worktree_removed"])
	assert.NoDirExists(t, folder)
	t.Chdir(w.main)
	again := targetJSON(t, w, func() error { return Sandbox{}.Destroy(t.Context(), nil, nil, ptr("other"), ptr(true)) })
	assert.ElementsMatch(t, keys(destroyed), keys(again), "destroy: the target's document")
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A failure is a tool error with the target's message, hint and exit code;
// bad input never reaches the library, and never stops the server.
func TestMCPToolErrors(t *testing.T) {
	w := newWorld(t)
	cs := mcpClient(t, w, nil)
	res, _ := call(t, cs, "create", map[string]any{"name": "feat", "slot": 9})
	require.False(t, res.IsError, textOf(res))

	tests := []struct {
		name string
		tool string
		args map[string]any
		code float64
		says string // part of the message
		hint string // part of the hint
	}{
		{"a path for a name", "status", map[string]any{"name": "../../etc"}, 1, `character '.' is not allowed`, ""},
		{"a path to create", "create", map[string]any{"name": "../../etc"}, 1, `character '.' is not allowed`, ""},
		{"a path to destroy", "destroy", map[string]any{"name": "/etc", "force": true}, 1, "not allowed", ""},
		{"a name with a slash", "logs", map[string]any{"name": "feat/../../x"}, 1, "not allowed", ""},
		{"not registered", "up", map[string]any{"name": "ghost"}, 1, "ktrdr--ghost is not registered", "sandbox:list"},
		{"folder exists", "create", map[string]any{"name": "feat"}, 3, "already exists", "pick another name"},
		{"slot out of range", "create", map[string]any{"name": "other", "slot": 99}, 1, "slot 99", "omit -slot"},
		{"a bad timeout", "up", map[string]any{"name": "feat", "timeout": "soon"}, 64, `timeout "soon"`, ""},
		{"negative tail", "logs", map[string]any{"name": "feat", "tail": -1}, 64, "tail -1", ""},
		{"an option for a service", "logs", map[string]any{"name": "feat", "service": "--follow"}, 1, "not a service name", ""},
		{"not a folder to send", "up", map[string]any{"name": "feat", "allowSync": []string{"relative"}}, 1, "relative", "absolute folders"},
		{"a missing name", "status", map[string]any{}, 64, "name", "input schema"},
		{"an unknown argument", "down", map[string]any{"name": "feat", "rm": "-rf"}, 64, "rm", "input schema"},
		{"a wrong type", "create", map[string]any{"name": "x", "slot": "nine"}, 64, "slot", "input schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, doc := call(t, cs, tt.tool, tt.args)
			require.True(t, res.IsError, textOf(res))
			e := toolErr(t, res, doc)
			assert.Equal(t, tt.code, e["exit_code"])
			assert.Contains(t, e["message"], tt.says)
			if tt.hint != "" {
				assert.Contains(t, e["hint"], tt.hint)
			}
			assert.Contains(t, textOf(res), fmt.Sprintf("(exit code %d)", int(tt.code)))
		})
	}
	assert.NoDirExists(t, filepath.Join(w.dev, "etc"))
	res, _ = call(t, cs, "list", nil)
	assert.False(t, res.IsError, "the server still answers")
}

// create with up: one document; a failed start leaves the sandbox, with
// up's exit code; the wait is reported as progress.
func TestMCPCreateUpProgressAndFailure(t *testing.T) {
	w := newWorld(t)
	var mu sync.Mutex
	var got []*mcp.ProgressNotificationParams
	cs := mcpClient(t, w, func(p *mcp.ProgressNotificationParams) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, p)
	})
	params := &mcp.CallToolParams{Name: "create", Arguments: map[string]any{"name": "feat", "slot": 9, "up": true, "timeout": "1s"}}
	params.SetProgressToken("create-feat")
	res, err := cs.CallTool(t.Context(), params)
	require.NoError(t, err)
	doc := structured(t, res)
	e := toolErr(t, res, doc)
	assert.Equal(t, float64(2), e["exit_code"], "the gate's exit code")
	assert.Contains(t, e["hint"], "the sandbox stays created")
	require.IsType(t, map[string]any{}, doc["result"])
	result := doc["result"].(map[string]any)
	assert.Equal(t, "ktrdr--feat", result["id"])
	require.IsType(t, map[string]any{}, result["up"])
	assert.Contains(t, result["up"], "gate")

	mu.Lock()
	var messages []string
	for i, p := range got {
		assert.Equal(t, "create-feat", p.ProgressToken)
		assert.Equal(t, float64(i+1), p.Progress, "progress increases")
		messages = append(messages, p.Message)
	}
	mu.Unlock()
	all := strings.Join(messages, "\n")
	assert.Contains(t, all, "Reserved slot 9 for ktrdr--feat")
	assert.Contains(t, all, "Starting ktrdr--feat")
	assert.Contains(t, all, "gate: 0 of")

	res, status := call(t, cs, "status", map[string]any{"name": "feat"})
	require.False(t, res.IsError, "the sandbox stays: %s", textOf(res))
	assert.Equal(t, "ktrdr--feat", status["id"])
	assert.NotNil(t, status["last_gate"])
}

// logs is a bounded tail.
func TestMCPLogsTail(t *testing.T) {
	w := newWorld(t)
	cs := mcpClient(t, w, nil)
	res, _ := call(t, cs, "create", map[string]any{"name": "feat", "slot": 9})
	require.False(t, res.IsError, textOf(res))
	var tails []string
	w.docker.answer = func(c driver.Cmd) ([]byte, error, bool) {
		if !isCompose(c, "logs") {
			return nil, nil, false
		}
		i := slices.Index(c.Args, "--tail")
		require.GreaterOrEqual(t, i, 0, "logs are always a tail: %s", c)
		tails = append(tails, c.Args[i+1])
		if c.Stdout != nil {
			fmt.Fprint(c.Stdout, strings.Repeat("backend  | a line of the log\n", 20000))
		}
		return nil, nil, true
	}
	res, doc := call(t, cs, "logs", map[string]any{"name": "feat", "service": "backend"})
	require.False(t, res.IsError, textOf(res))
	res, _ = call(t, cs, "logs", map[string]any{"name": "feat", "tail": 100000})
	require.False(t, res.IsError, textOf(res))
	assert.Equal(t, []string{"100", "1000"}, tails)
	assert.Equal(t, true, doc["truncated"])
	logs := doc["logs"].(string)
	assert.LessOrEqual(t, len(logs), maxLogBytes)
	assert.True(t, strings.HasPrefix(logs, "backend  | a line"), "from a whole line")
}

// Calls arrive at once: the library's locks keep them apart.
func TestMCPConcurrentCalls(t *testing.T) {
	w := newWorld(t)
	cs := mcpClient(t, w, nil)
	names := []string{"c1", "c2", "c3", "c4"}
	var wg sync.WaitGroup
	results := make([]map[string]any, len(names))
	for i, n := range names {
		wg.Go(func() {
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "create", Arguments: map[string]any{"name": n}})
			if assert.NoError(t, err) && assert.False(t, res.IsError, textOf(res)) {
				results[i] = structured(t, res)
			}
		})
		wg.Go(func() {
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "list"})
			if assert.NoError(t, err) {
				assert.False(t, res.IsError, textOf(res))
			}
		})
	}
	wg.Wait()
	slots := map[float64]string{}
	for i, doc := range results {
		require.NotNil(t, doc, names[i])
		slot := doc["slot"].(float64)
		assert.NotContains(t, slots, slot, "each its own slot")
		slots[slot] = names[i]
		assert.DirExists(t, doc["path"].(string))
	}
	_, list := call(t, cs, "list", nil)
	assert.Len(t, list["instances"], len(names))
}

// sandbox:mcp itself: protocol on stdout until the client closes.
func TestMCPTarget(t *testing.T) {
	w := newWorld(t)
	t.Chdir(w.main)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	oldIn := stdin
	t.Cleanup(func() { stdin = oldIn })
	stdin, stdout = inR, outW
	done := make(chan error, 1)
	go func() { done <- Sandbox{}.Mcp(t.Context()); outW.Close() }()
	_, err := io.WriteString(inW, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`+"\n")
	require.NoError(t, err)
	lines := bufio.NewScanner(outR)
	require.True(t, lines.Scan(), "an answer")
	var msg map[string]any
	require.NoError(t, json.Unmarshal(lines.Bytes(), &msg), "only protocol messages on stdout: %q", lines.Text())
	assert.Equal(t, "2.0", msg["jsonrpc"])
	assert.Contains(t, lines.Text(), `"name":"ktrdr-sandbox"`)
	inW.Close()
	select {
	case err := <-done:
		assert.NoError(t, err, "the client closed: exit 0")
	case <-time.After(time.Minute):
		t.Fatal("sandbox:mcp did not end when its input did")
	}
	assert.False(t, lines.Scan(), "nothing else on stdout: %q", lines.Text())

	t.Setenv("HOME", "")
	err = Sandbox{}.Mcp(t.Context())
	assert.Equal(t, 1, mg.ExitStatus(err), "no home: %v", err)
}
