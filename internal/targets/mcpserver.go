package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ktrdr/sandboxkit/sandbox"
	"github.com/ktrdr/sandboxkit/sandbox/gate"
)

// The MCP server (sandbox:mcp) gives coding agents the targets as tools.
// A tool takes the sandbox's name where the target would use the current
// folder, runs the library as the target does, and answers with the
// document the target's -json prints as structured content, plus a line of
// text. A failure is a tool result marked as an error that carries the
// message, the hint and the exit code the target would have used
// (exitcodes.go), never a protocol error; a panic in a tool's work is a
// failed call too. Calls run concurrently:
// each loads its own manager, and the library's locks keep them apart.

// mcpServer holds what every call shares.
type mcpServer struct {
	ctx  context.Context // the server's life: when it ends, every call in progress is cancelled
	dir  string          // the checkout the server runs in: create makes sandboxes beside it
	home string          // whose sandboxes: the user's home folder
	log  io.Writer       // each call's steps, for a person reading the server's stderr

	logMu sync.Mutex
}

// mcpInstructions is what the server tells a client about itself.
const mcpInstructions = `Isolated copies of the ktrdr stack, one per git worktree, each with its own ports and database.
Start with create (name, standin: true when the real images are not built, up: true to start it and wait until it is ready);
its api_url is the sandbox's API. status, logs, url and ports look at a sandbox by name; down stops it (data kept);
destroy removes it with its worktree (force: true to lose uncommitted work). Failures carry a hint and the exit code.`

// newMCPServer returns the server of the sandbox tools for the checkout
// dir; ctx is its life (the SDK does not cancel calls in progress when the
// server stops, this does).
func newMCPServer(ctx context.Context, dir, home string, log io.Writer) *mcp.Server {
	s := &mcpServer{ctx: ctx, dir: dir, home: home, log: log}
	srv := mcp.NewServer(&mcp.Implementation{Name: "ktrdr-sandbox", Title: "ktrdr sandboxes", Version: "1"},
		&mcp.ServerOptions{Instructions: mcpInstructions, Capabilities: &mcp.ServerCapabilities{}})
	s.addTools(srv)
	srv.AddReceivingMiddleware(structuredRefusals)
	return srv
}

// usageCode is the exit code of a command line the target refuses before
// it runs (EX_USAGE): here, arguments a tool refuses.
const usageCode = 64

// argError is an argument a tool refuses before it runs (exit 64).
type argError struct{ err error }

func (e *argError) Error() string { return e.err.Error() }
func (e *argError) Unwrap() error { return e.err }

// structuredRefusals gives the SDK's own refusals of a call's arguments
// (a missing name, an unknown argument, a wrong type: checked against the
// tool's input schema before its handler runs) the shape of every other
// failure, with exit code 64.
func structuredRefusals(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		if tr, ok := res.(*mcp.CallToolResult); ok && err == nil && tr.IsError && tr.StructuredContent == nil {
			var parts []string
			for _, c := range tr.Content {
				if t, ok := c.(*mcp.TextContent); ok {
					parts = append(parts, t.Text)
				}
			}
			ed := &errorDoc{Message: strings.Join(parts, "\n"), Hint: "the tool's arguments are in its input schema (tools/list)", ExitCode: usageCode}
			fixed, out := toolError(ed, nil)
			fixed.StructuredContent = out
			return fixed, nil
		}
		return res, err
	}
}

// toolFunc is the work of one tool: the document it answers with, a line
// of text for the agent, and the error the target would exit with. A
// failed call may still have a document (up's gate result).
type toolFunc[In any] func(ctx context.Context, c *toolCall, in In) (doc any, text string, err error)

// addTool adds a tool whose failures are classified as target's.
func addTool[In any](srv *mcp.Server, s *mcpServer, target string, tool *mcp.Tool, fn toolFunc[In]) {
	mcp.AddTool(srv, tool, func(ctx context.Context, req *mcp.CallToolRequest, in In) (res *mcp.CallToolResult, out any, _ error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(s.ctx, cancel)()
		c := &toolCall{ctx: ctx, server: s, tool: tool.Name, session: req.Session, token: req.Params.GetProgressToken()}
		defer func() {
			if p := recover(); p != nil {
				s.logf("%s: internal error: %v\n%s", tool.Name, p, debug.Stack())
				res, out = toolError(&errorDoc{Message: fmt.Sprintf("%s: internal error: %v", tool.Name, p), ExitCode: 1}, nil)
			}
		}()
		doc, text, err := fn(ctx, c, in)
		if err != nil {
			ed := newErrorDoc(target, err)
			if ae := (*argError)(nil); errors.As(err, &ae) {
				ed.ExitCode = usageCode
			}
			s.logf("%s: %s (exit %d)", tool.Name, ed.Message, ed.ExitCode)
			res, out = toolError(ed, doc)
			return res, out, nil
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, doc, nil
	})
}

// toolFailure is the structured content of a failed call: the error and,
// when the work got that far, the document the target prints with it.
type toolFailure struct {
	Error  *errorDoc `json:"error"`
	Result any       `json:"result,omitempty"`
}

// toolError is the result of a failed call. The error is said once: a
// create's document, which carries it for sandbox:create -json, goes
// without it.
func toolError(ed *errorDoc, doc any) (*mcp.CallToolResult, any) {
	if cd, ok := doc.(*createdDoc); ok && cd.Error != nil {
		without := *cd
		without.Error = nil
		doc = &without
	}
	text := ed.Message
	if ed.Hint != "" {
		text += "\nhint: " + ed.Hint
	}
	text += fmt.Sprintf("\n(exit code %d)", ed.ExitCode)
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}}, toolFailure{Error: ed, Result: doc}
}

// Write writes library messages to the server's log, one call at a time.
func (s *mcpServer) Write(p []byte) (int, error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.Write(p)
}

func (s *mcpServer) logf(format string, a ...any) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.log, format+"\n", a...)
}

// toolCall is one call in progress: it reports steps as progress
// notifications when the client asked for them, and to the server's log.
type toolCall struct {
	ctx     context.Context
	server  *mcpServer
	tool    string
	session *mcp.ServerSession
	token   any // the client's progress token; nil: it wants none

	mu       sync.Mutex
	sent     float64
	lastGate string
}

// progress reports one step.
func (c *toolCall) progress(msg string) {
	c.server.logf("%s: %s", c.tool, msg)
	if c.token == nil || c.session == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent++
	_ = c.session.NotifyProgress(c.ctx, &mcp.ProgressNotificationParams{ProgressToken: c.token, Progress: c.sent, Message: msg})
}

// gateProgress reports the gate's state whenever what it waits for changes.
func (c *toolCall) gateProgress(st gate.State) {
	msg := gateLine(st)
	c.mu.Lock()
	same := msg == c.lastGate
	c.lastGate = msg
	c.mu.Unlock()
	if !same {
		c.progress(msg)
	}
}

// gateLine sums up a gate state: how many checks passed, what it waits for.
func gateLine(st gate.State) string {
	passed := 0
	var waiting []string
	for _, ch := range st.Checks {
		if ch.Passed {
			passed++
		} else {
			waiting = append(waiting, ch.Name)
		}
	}
	line := fmt.Sprintf("gate: %d of %d checks passed", passed, len(st.Checks))
	if len(waiting) > 0 && !st.Done {
		line += "; waiting for " + strings.Join(waiting, ", ")
	}
	return line
}

// manager loads the library's manager for one call: its steps are the
// call's progress.
func (s *mcpServer) manager(c *toolCall) (*sandbox.Manager, error) {
	m, err := sandbox.LoadManager(s.home)
	if err != nil {
		return nil, &settingsError{err}
	}
	m.Runner = runner
	m.Events = func(e sandbox.Event) { c.progress(eventText(e)) }
	m.Log = s
	return m, nil
}

// folder is the folder of the sandbox name, for a call with its manager.
func (s *mcpServer) folder(c *toolCall, name string) (*sandbox.Manager, string, error) {
	m, err := s.manager(c)
	if err != nil {
		return nil, "", err
	}
	dir, err := m.Folder(name)
	return m, dir, err
}
