package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// BenchmarkAgentOneStep is issue 22's figure: an agent's way to a ready
// sandbox (stand-in stack, whole processes through go tool mage with a warm
// mage cache), each the median of three alternating rounds:
//   - sandbox:create -standin -up -json (one command, through PASSED);
//   - sandbox:create -standin, then sandbox:up in its folder (two commands);
//   - the MCP server's create tool with up, the server already running;
//
// and what the server itself costs: from starting go tool mage sandbox:mcp
// to its answer to initialize, and a list call with one sandbox. Each
// sandbox is destroyed between rounds.
func BenchmarkAgentOneStep(b *testing.B) {
	needDocker(b)
	e := newEnv(b)
	ctx, cancel := context.WithTimeout(b.Context(), 30*time.Minute)
	defer cancel()
	run := func(dir string, args ...string) {
		cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "mage"}, args...)...)
		cmd.Dir, cmd.Env = dir, e.Env
		out, err := cmd.CombinedOutput()
		require.NoError(b, err, "%v: %s", args, out)
	}
	run(e.Main, "sandbox:list") // warm the mage cache

	// The server, started once; the time to its first answer.
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "tool", "mage", "sandbox:mcp")
	cmd.Dir, cmd.Env = e.Main, e.Env
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	require.NoError(b, err)
	mcpStart := time.Since(start)
	b.Cleanup(func() { cs.Close() })
	tool := func(name string, args map[string]any) map[string]any {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		require.NoError(b, err)
		data, _ := json.Marshal(res.StructuredContent)
		require.False(b, res.IsError, "%s: %s", name, data)
		var doc map[string]any
		require.NoError(b, json.Unmarshal(data, &doc))
		return doc
	}

	var oneStep, twoSteps, viaMCP, list []time.Duration
	for round := range 3 {
		name := fmt.Sprintf("%sagent%d", benchPrefix, round)
		t0 := time.Now()
		run(e.Main, "sandbox:create", name+"a", "-standin", "-up", "-json")
		oneStep = append(oneStep, time.Since(t0))
		run(e.Main, "sandbox:destroy", "-name="+name+"a", "-force")

		t0 = time.Now()
		run(e.Main, "sandbox:create", name+"b", "-standin")
		run(e.sandboxDir(name+"b"), "sandbox:up")
		twoSteps = append(twoSteps, time.Since(t0))
		run(e.Main, "sandbox:destroy", "-name="+name+"b", "-force")

		t0 = time.Now()
		doc := tool("create", map[string]any{"name": name + "c", "standin": true, "up": true})
		viaMCP = append(viaMCP, time.Since(t0))
		require.Equal(b, true, doc["up"].(map[string]any)["gate"].(map[string]any)["passed"])
		for range 4 {
			t0 = time.Now()
			tool("list", nil)
			list = append(list, time.Since(t0))
		}
		tool("destroy", map[string]any{"name": name + "c", "force": true})
	}
	b.Logf("create -up -json: %v; create, then up: %v; MCP create with up: %v; MCP list: %v; MCP server start: %v",
		oneStep, twoSteps, viaMCP, list, mcpStart)
	b.ReportMetric(benchMedian(oneStep).Seconds(), "s/create-up")
	b.ReportMetric(benchMedian(twoSteps).Seconds(), "s/create-then-up")
	b.ReportMetric(benchMedian(viaMCP).Seconds(), "s/mcp-create-up")
	b.ReportMetric(benchMS(mcpStart), "ms/mcp-start")
	b.ReportMetric(benchMS(benchMedian(list)), "ms/mcp-list")
}
