package targets

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// The tools' arguments. A field without omitempty is required; the
// descriptions are what the agent reads.
type (
	nameArg struct {
		Name string `json:"name" jsonschema:"the sandbox's name, as given to create (lowercase letters, digits, single hyphens)"`
	}
	createArgs struct {
		Name    string `json:"name" jsonschema:"the new sandbox's name: lowercase letters, digits and single hyphens, at most 40; its worktree is ../ktrdr--<name> beside this checkout"`
		Branch  string `json:"branch,omitempty" jsonschema:"the branch to check out (default: the name, created from HEAD if missing)"`
		Slot    int    `json:"slot,omitempty" jsonschema:"the slot of ports to take (default: the lowest free one)"`
		Standin bool   `json:"standin,omitempty" jsonschema:"run the bundled stand-in images instead of the real ktrdr images"`
		Context string `json:"context,omitempty" jsonschema:"run on the Docker engine of this Docker context (default: the local engine)"`
		Up      bool   `json:"up,omitempty" jsonschema:"then start it and wait until it is ready (the startability gate)"`
		Timeout string `json:"timeout,omitempty" jsonschema:"with up: how long the gate may wait, e.g. 5m (default 2m)"`
	}
	upArgs struct {
		Name      string   `json:"name" jsonschema:"the sandbox's name"`
		Build     bool     `json:"build,omitempty" jsonschema:"build images before starting"`
		NoWait    bool     `json:"nowait,omitempty" jsonschema:"do not wait for the startability gate"`
		Timeout   string   `json:"timeout,omitempty" jsonschema:"how long the gate may wait, e.g. 5m (default 2m)"`
		AllowSync []string `json:"allowSync,omitempty" jsonschema:"on another engine, also send these absolute folders outside the checkout and the shared root (each exactly)"`
	}
	downArgs struct {
		Name    string `json:"name" jsonschema:"the sandbox's name"`
		Volumes bool   `json:"volumes,omitempty" jsonschema:"also remove its volumes (database, metrics); data is kept otherwise"`
	}
	destroyArgs struct {
		Name         string `json:"name" jsonschema:"the sandbox's name"`
		Force        bool   `json:"force,omitempty" jsonschema:"destroy even with uncommitted changes or unshared commits, which are lost"`
		KeepWorktree bool   `json:"keepWorktree,omitempty" jsonschema:"keep the worktree folder"`
	}
	logsArgs struct {
		Name    string `json:"name" jsonschema:"the sandbox's name"`
		Service string `json:"service,omitempty" jsonschema:"only this service, e.g. backend"`
		Tail    int    `json:"tail,omitempty" jsonschema:"the last lines of each container (default 100, at most 1000)"`
	}
	portsArgs struct {
		Name string `json:"name" jsonschema:"the sandbox's name"`
		Slot int    `json:"slot,omitempty" jsonschema:"show only this slot"`
	}
	listArgs struct{}
)

// Bounds of the logs tool: an agent reads a tail, never a stream.
const (
	defaultLogTail = 100
	maxLogTail     = 1000
	maxLogBytes    = 256 << 10
	logsTimeout    = time.Minute
)

// logsDoc is what the logs tool returns.
type logsDoc struct {
	ID        string `json:"id"`
	Service   string `json:"service,omitempty"`
	Tail      int    `json:"tail"`
	Truncated bool   `json:"truncated,omitempty"` // the first bytes were dropped to stay within maxLogBytes
	Logs      string `json:"logs"`
}

// downDoc is what sandbox:down -json prints, and the down tool returns.
type downDoc struct {
	ID             string `json:"id"`
	VolumesRemoved bool   `json:"volumes_removed"`
}

func (s *mcpServer) addTools(srv *mcp.Server) {
	closed := func(b bool) *bool { return &b }
	addTool(srv, s, tCreate, &mcp.Tool{Name: "create", Title: "Create a sandbox",
		Description: "Make a new sandbox: a git worktree ../ktrdr--<name>, its own slot of ports and its registry entry; with up: true, also start it and wait until it is ready. Returns what sandbox:create -json prints (with up: one document, including the gate's checks and api_url). A failed start leaves the sandbox created."},
		s.create)
	addTool(srv, s, tUp, &mcp.Tool{Name: "up", Title: "Start a sandbox",
		Description: "Start a sandbox's stack and wait for the startability gate (what sandbox:up -json prints: each check, the URLs). Sends progress notifications while it waits."},
		s.up)
	addTool(srv, s, tDown, &mcp.Tool{Name: "down", Title: "Stop a sandbox",
		Description: "Stop a sandbox's stack; its data is kept unless volumes: true.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: closed(false)}}, s.down)
	addTool(srv, s, tDestroy, &mcp.Tool{Name: "destroy", Title: "Destroy a sandbox",
		Description: "Remove a sandbox for good: its stack with volumes, its registry entry and its worktree. Refused if work would be lost, unless force: true.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: closed(true)}}, s.destroy)
	addTool(srv, s, tStatus, &mcp.Tool{Name: "status", Title: "A sandbox's status",
		Description: "A sandbox's services, URLs and last gate result (what sandbox:status -json prints).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, s.status)
	addTool(srv, s, tList, &mcp.Tool{Name: "list", Title: "List sandboxes",
		Description: "Every sandbox of this machine: slot, state, CPU and memory, API port, branch, path (what sandbox:list -json prints).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, s.list)
	addTool(srv, s, tURL, &mcp.Tool{Name: "url", Title: "A sandbox's API URL",
		Description: "The URL of a sandbox's ktrdr API (what sandbox:url -json prints there).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, s.url)
	addTool(srv, s, tLogs, &mcp.Tool{Name: "logs", Title: "A sandbox's logs",
		Description: "The last lines of a sandbox's compose logs (default 100 per container, at most 1000; at most 256 KiB).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, s.logs)
	addTool(srv, s, tPorts, &mcp.Tool{Name: "ports", Title: "A sandbox's port plan",
		Description: "The port plan of a sandbox's stack file: every variable, its rule, its port per slot (what sandbox:ports -json prints).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, s.ports)
}

// duration is a tool's timeout argument: "" for the default.
func duration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, &argError{fmt.Errorf("%s %q: not a positive duration such as 90s or 5m", field, v)}
	}
	return d, nil
}

func (s *mcpServer) create(ctx context.Context, c *toolCall, in createArgs) (any, string, error) {
	var timeout time.Duration
	if in.Up {
		var err error
		if timeout, err = duration("timeout", in.Timeout); err != nil {
			return nil, "", err
		}
	}
	if err := sandbox.ValidateName(in.Name); err != nil {
		return nil, "", err
	}
	m, err := s.manager(c)
	if err != nil {
		return nil, "", err
	}
	co := sandbox.CreateOptions{Name: in.Name, Branch: in.Branch, Slot: in.Slot, Standin: in.Standin, Dir: s.dir, Context: in.Context}
	uo := sandbox.UpOptions{Timeout: timeout, Progress: c.gateProgress}
	doc, err := createAndStart(ctx, m, co, in.Up, uo, nil)
	if doc == nil {
		return nil, "", err
	}
	text := fmt.Sprintf("Created sandbox %s in slot %d at %s (API %s)", doc.ID, doc.Slot, doc.Path, doc.APIURL)
	if in.Up && err == nil {
		text += "; " + upLine(doc.Up)
	}
	return doc, text, err
}

func (s *mcpServer) up(ctx context.Context, c *toolCall, in upArgs) (any, string, error) {
	timeout, err := duration("timeout", in.Timeout)
	if err != nil {
		return nil, "", err
	}
	if err := sandbox.ValidateAllowSync(in.AllowSync); err != nil {
		return nil, "", err
	}
	m, dir, err := s.folder(c, in.Name)
	if err != nil {
		return nil, "", err
	}
	res, err := m.Up(ctx, sandbox.UpOptions{Dir: dir, NoWait: in.NoWait, Build: in.Build, Timeout: timeout, Progress: c.gateProgress, AllowSync: in.AllowSync})
	if err != nil && res != nil && res.Interrupted {
		err = &leftRunningError{err}
	}
	if res == nil {
		return nil, "", err
	}
	return res, upLine(res), err
}

// upLine sums up up's result in a line.
func upLine(res *sandbox.UpResult) string {
	switch {
	case res.Gate == nil:
		return fmt.Sprintf("%s started without waiting for the gate", res.ID)
	case res.Gate.Passed:
		return fmt.Sprintf("%s is ready: gate PASSED in %.1fs", res.ID, res.Gate.Elapsed.Seconds())
	default:
		return fmt.Sprintf("%s: gate FAILED", res.ID)
	}
}

func (s *mcpServer) down(ctx context.Context, c *toolCall, in downArgs) (any, string, error) {
	m, dir, err := s.folder(c, in.Name)
	if err != nil {
		return nil, "", err
	}
	id, err := m.Down(ctx, sandbox.DownOptions{Dir: dir, Volumes: in.Volumes})
	if err != nil {
		return nil, "", err
	}
	text := "Stopped " + id + " (data kept)"
	if in.Volumes {
		text = "Stopped " + id + " and removed its volumes"
	}
	return downDoc{id, in.Volumes}, text, nil
}

func (s *mcpServer) destroy(ctx context.Context, c *toolCall, in destroyArgs) (any, string, error) {
	if err := sandbox.ValidateName(in.Name); err != nil {
		return nil, "", err
	}
	m, err := s.manager(c)
	if err != nil {
		return nil, "", err
	}
	res, err := m.Destroy(ctx, sandbox.DestroyOptions{Name: in.Name, Force: in.Force, KeepWorktree: in.KeepWorktree})
	if err != nil {
		return nil, "", err
	}
	text := "Destroyed " + res.ID
	switch {
	case res.AlreadyGone:
		text = res.ID + " is not registered: nothing to destroy"
	case res.LeftOnEngine != "":
		text += "; its engine did not answer: when it is back, remove what stays there with: " + res.LeftOnEngine
	}
	return res, text, nil
}

func (s *mcpServer) status(ctx context.Context, c *toolCall, in nameArg) (any, string, error) {
	m, dir, err := s.folder(c, in.Name)
	if err != nil {
		return nil, "", err
	}
	st, err := m.Status(ctx, sandbox.StatusOptions{Dir: dir})
	if err != nil {
		return nil, "", err
	}
	return st, fmt.Sprintf("%s: %s (slot %d, %s)", st.ID, st.State, st.Slot, st.Path), nil
}

func (s *mcpServer) list(ctx context.Context, c *toolCall, _ listArgs) (any, string, error) {
	m, err := s.manager(c)
	if err != nil {
		return nil, "", err
	}
	l, err := m.List(ctx)
	if err != nil {
		return nil, "", err
	}
	return listingJSON(l), fmt.Sprintf("%d sandbox(es)", len(l.Instances)), nil
}

func (s *mcpServer) url(_ context.Context, c *toolCall, in nameArg) (any, string, error) {
	m, err := s.manager(c)
	if err != nil {
		return nil, "", err
	}
	u, err := m.APIURL(in.Name)
	if err != nil {
		return nil, "", err
	}
	return urlDoc{u}, u, nil
}

func (s *mcpServer) logs(ctx context.Context, c *toolCall, in logsArgs) (any, string, error) {
	tail := in.Tail
	switch {
	case tail < 0:
		return nil, "", &argError{fmt.Errorf("tail %d: not a number of lines", tail)}
	case tail == 0:
		tail = defaultLogTail
	case tail > maxLogTail:
		tail = maxLogTail
	}
	m, dir, err := s.folder(c, in.Name)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, logsTimeout)
	defer cancel()
	out := &lastBytes{max: maxLogBytes}
	if err := m.Logs(ctx, sandbox.LogsOptions{Dir: dir, Service: in.Service, Tail: tail, Out: out}); err != nil {
		return nil, "", err
	}
	doc := logsDoc{ID: m.Profile.InstanceID(in.Name), Service: in.Service, Tail: tail, Truncated: out.dropped, Logs: out.String()}
	return doc, doc.Logs, nil
}

func (s *mcpServer) ports(ctx context.Context, c *toolCall, in portsArgs) (any, string, error) {
	m, dir, err := s.folder(c, in.Name)
	if err != nil {
		return nil, "", err
	}
	plan, err := m.Ports(ctx, sandbox.PortsOptions{Dir: dir, Slot: in.Slot})
	if err != nil {
		return nil, "", err
	}
	return plan, fmt.Sprintf("%d port variables in %s", len(plan.Ports), plan.File), nil
}

// lastBytes keeps the last max bytes written to it.
type lastBytes struct {
	max     int
	buf     bytes.Buffer
	dropped bool // bytes were dropped from the start
	partial bool // the kept bytes start within a line
}

func (l *lastBytes) Write(p []byte) (int, error) {
	l.buf.Write(p)
	if over := l.buf.Len() - l.max; over > 0 {
		l.partial = l.buf.Bytes()[over-1] != '\n'
		l.buf.Next(over)
		l.dropped = true
	}
	return len(p), nil
}

// String is what was kept, from its first whole line.
func (l *lastBytes) String() string {
	b := l.buf.Bytes()
	if i := bytes.IndexByte(b, '\n'); l.partial && i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}
