package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/ktrdr/sandboxkit/sandbox/gate"
)

// MainCheckProject is the compose project CheckMainStack uses, so that it
// never touches a main stack a person started under the folder's name.
func (p *Profile) MainCheckProject() string { return p.App + "-main-check" }

// CheckMainStack proves the main checkout's workflow still works: it brings
// the main compose file up with no sandbox variables (slot 0, the standard
// ports), checks GET <api>/api/v1/health is 200 and that the gate passes,
// then brings the stack down with its volumes whatever happened. With
// standin the images are the bundled stand-in's (the only variables set).
func (m *Manager) CheckMainStack(ctx context.Context, root string, standin bool, progress func(gate.State)) (*gate.Result, error) {
	p := m.Profile
	project := p.MainCheckProject()
	c, err := m.Compose(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := m.ownInstanceDir(project)
	if err != nil {
		return nil, err
	}
	var env strings.Builder
	env.WriteString("# Only the images: every other value is the main compose file's default.\n")
	if standin {
		for _, k := range p.ImageKeys {
			fmt.Fprintf(&env, "%s=%s\n", k, p.standinImageFor(k))
		}
		if err := m.ensureStandinImage(ctx, root, false); err != nil {
			return nil, err
		}
		if err := m.ensureDBImage(ctx, root, false); err != nil {
			return nil, err
		}
	}
	envPath := filepath.Join(dir, "main.env")
	if err := WriteFileAtomic(envPath, []byte(env.String()), 0o644); err != nil {
		return nil, err
	}
	stack := driver.Stack{Project: project, Dir: root, Files: []string{filepath.Join(root, p.MainCompose)}, EnvFile: envPath}
	if err := Preflight(ctx, m.Runner, p, 0, project); err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		c.Down(cctx, stack, true, nil)
		m.removeInstanceDir(project)
	}()
	m.emit(Event{Kind: EvMainStackStarting, ID: project, Source: p.MainCompose})
	if err := c.Up(ctx, stack, false, nil); err != nil {
		return nil, &ComposeError{Err: err}
	}
	ports := p.PortsFor(0)
	g := &gate.Gate{Checks: p.GateChecks("127.0.0.1", ports), Watch: m.watch(p, project), Progress: progress}
	gr := g.Run(ctx)
	if !gr.Passed {
		return &gr, ErrGateFailed
	}
	url := fmt.Sprintf("http://localhost:%d/api/v1/health", ports[p.APIPortKey])
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(hctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return &gr, fmt.Errorf("GET %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &gr, fmt.Errorf("GET %s: status %d, want 200", url, resp.StatusCode)
	}
	return &gr, nil
}
