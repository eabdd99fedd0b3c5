package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// protocolLines passes a server's stdout on to the client and keeps every
// line that is not a JSON-RPC message.
type protocolLines struct {
	mu    sync.Mutex
	stray []string
	lines int
}

func (p *protocolLines) watch(r io.Reader) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var msg struct {
				JSONRPC string `json:"jsonrpc"`
			}
			p.mu.Lock()
			p.lines++
			if json.Unmarshal(sc.Bytes(), &msg) != nil || msg.JSONRPC != "2.0" {
				p.stray = append(p.stray, sc.Text())
			}
			p.mu.Unlock()
			if _, err := pw.Write(append(sc.Bytes(), '\n')); err != nil {
				break
			}
		}
		pw.CloseWithError(sc.Err())
	}()
	return pr
}

// An agent's whole round through the real entry point: go tool mage
// sandbox:mcp on stdio, the SDK's client, stand-in images on the real
// engine. create (with up) → status → logs → destroy, and nothing but
// protocol messages on stdout.
func TestMCPServerOverStdio(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	name := namePrefix + "mcp"
	project := "ktrdr--" + name

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var progress []string
	srv := startMCP(t, e, ctx, func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		progress = append(progress, msg)
	})
	cs := srv.cs

	callTool := func(tool string, args map[string]any, token any) (*mcp.CallToolResult, map[string]any) {
		t.Helper()
		p := &mcp.CallToolParams{Name: tool, Arguments: args}
		if token != nil {
			p.SetProgressToken(token)
		}
		res, err := cs.CallTool(ctx, p)
		require.NoError(t, err, "%s: a failure is a tool error, never a protocol error", tool)
		data, err := json.Marshal(res.StructuredContent)
		require.NoError(t, err)
		var doc map[string]any
		require.NoError(t, json.Unmarshal(data, &doc))
		var text []string
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				text = append(text, tc.Text)
			}
		}
		t.Logf("%s %v → error %v: %s", tool, args, res.IsError, strings.Join(text, "\n"))
		return res, doc
	}

	res, created := callTool("create", map[string]any{"name": name, "standin": true, "up": true, "timeout": "4m"}, "up-1")
	require.False(t, res.IsError, "create with up")
	apiURL, _ := created["api_url"].(string)
	require.NotEmpty(t, apiURL)
	up, _ := created["up"].(map[string]any)
	require.NotNil(t, up, "the document has up's result")
	assert.Equal(t, true, up["gate"].(map[string]any)["passed"])
	code, body := get(apiURL + "/api/v1/health")
	assert.Equal(t, 200, code, "the API answers at the URL create printed: %s", body)
	mu.Lock()
	assert.Contains(t, strings.Join(progress, "\n"), "gate: ", "the wait was reported as progress")
	mu.Unlock()

	res, status := callTool("status", map[string]any{"name": name}, nil)
	require.False(t, res.IsError)
	assert.Equal(t, "running", status["state"])
	res, logs := callTool("logs", map[string]any{"name": name, "service": "backend", "tail": 5}, nil)
	require.False(t, res.IsError)
	assert.NotEmpty(t, logs["logs"])
	res, bad := callTool("status", map[string]any{"name": "../../etc"}, nil)
	require.True(t, res.IsError)
	assert.Equal(t, float64(1), bad["error"].(map[string]any)["exit_code"])

	res, destroyed := callTool("destroy", map[string]any{"name": name, "force": true}, nil)
	require.False(t, res.IsError)
	assert.Equal(t, true, destroyed["stack_removed"])
	c, v, n := projectResources(project)
	assert.Zero(t, c+v+n, "no containers, volumes or networks of %s are left", project)
	assert.NoDirExists(t, e.sandboxDir(name))
	reg, _ := os.ReadFile(filepath.Join(e.Home, ".ktrdr", "sandbox", "instances.json"))
	assert.NotContains(t, string(reg), project)

	require.NoError(t, cs.Close())
	select {
	case err := <-srv.exited:
		assert.NoError(t, err, "the server exits 0 when the client closes")
	case <-time.After(time.Minute):
		t.Fatal("the server did not exit when its client closed")
	}
	srv.proto.mu.Lock()
	defer srv.proto.mu.Unlock()
	assert.NotZero(t, srv.proto.lines)
	assert.Empty(t, srv.proto.stray, "nothing but protocol messages on stdout")
	assert.Contains(t, srv.stderr.String(), "create: Reserved slot", "steps go to stderr")
}

// readmeMCPCommand is the command of the README's .mcp.json example: the
// test starts the server exactly as an agent registered that way does.
func readmeMCPCommand(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	_, block, ok := strings.Cut(string(data), "```json\n{\n  \"mcpServers\"")
	require.True(t, ok, "README.md has a .mcp.json example")
	block, _, _ = strings.Cut("{\"mcpServers\""+block, "```")
	var cfg struct {
		MCPServers map[string]struct {
			Command string   `json:"command"`
			Args    []string `json:"args"`
		} `json:"mcpServers"`
	}
	require.NoError(t, json.Unmarshal([]byte(block), &cfg), "the example is valid JSON:\n%s", block)
	server, ok := cfg.MCPServers["ktrdr-sandbox"]
	require.True(t, ok, "the example registers ktrdr-sandbox")
	require.NotEmpty(t, server.Command)
	return append([]string{server.Command}, server.Args...)
}

// mcpProcess is a server started as the README's .mcp.json says, with a
// client connected to it over its standard input and output.
type mcpProcess struct {
	cs     *mcp.ClientSession
	cmd    *exec.Cmd
	exited chan error
	proto  *protocolLines
	stderr *lockedBuffer
}

// startMCP starts the server in e's main checkout, in a process group of
// its own (go tool mage runs the server as a child); progress gets each
// progress message. The test's end closes its input and, if it has not
// ended within 30 s, kills the group.
func startMCP(t *testing.T, e *env, ctx context.Context, progress func(string)) *mcpProcess {
	t.Helper()
	argv := readmeMCPCommand(t)
	p := &mcpProcess{cmd: exec.CommandContext(ctx, argv[0], argv[1:]...), exited: make(chan error, 1), proto: &protocolLines{}, stderr: &lockedBuffer{}}
	p.cmd.Dir, p.cmd.Env = e.Main, e.Env
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := p.cmd.StdinPipe()
	require.NoError(t, err)
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		in.Close()
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			p.kill()
		}
		t.Logf("server's stderr:\n%s", p.stderr.String())
	})
	opts := &mcp.ClientOptions{}
	if progress != nil {
		opts.ProgressNotificationHandler = func(_ context.Context, r *mcp.ProgressNotificationClientRequest) { progress(r.Params.Message) }
	}
	p.cs, err = mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, opts).Connect(ctx, &mcp.IOTransport{Reader: p.proto.watch(out), Writer: in}, nil)
	require.NoError(t, err)
	return p
}

// kill kills the server's whole process group with SIGKILL.
func (p *mcpProcess) kill() { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }
