package sandbox

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/ktrdr/sandboxkit/sandbox/gate"
)

// UpOptions are the inputs of Up.
type UpOptions struct {
	Dir      string
	NoWait   bool             // skip the startability gate
	Build    bool             // compose up --build; also rebuilds the stand-in image
	Timeout  time.Duration    // gate timeout; 0 means the gate's default
	Progress func(gate.State) // live gate progress (optional)
	Output   io.Writer        // compose's own output (optional)
	// AllowSync: folders outside the checkout and the shared root that may
	// go to another engine this time, each exactly (besides the manager's
	// AllowSync; outside.go).
	AllowSync []string
}

// UpResult says what Up did.
type UpResult struct {
	ID             string            `json:"id"`
	Slot           int               `json:"slot"`
	AlreadyRunning bool              `json:"already_running"`
	Interrupted    bool              `json:"interrupted,omitempty"` // the gate was cut short: the stack runs, its readiness is unknown
	Gate           *gate.Result      `json:"gate,omitempty"`
	URLs           []NamedURL        `json:"urls"`
	Logs           map[string]string `json:"logs,omitempty"` // log tails of the services behind failed checks
	// Hooks are the steps after start that ran (or were to run) before the
	// gate could pass, each a check of Gate named "Hook <name> (<service>)".
	Hooks []Hook `json:"hooks,omitempty"`
}

// ErrGateFailed is returned by Up when the stack started but the gate failed.
var ErrGateFailed = errors.New("startability gate failed")

// ComposeError reports that compose itself failed.
type ComposeError struct{ Err error }

func (e *ComposeError) Error() string { return e.Err.Error() }
func (e *ComposeError) Unwrap() error { return e.Err }

// Up starts the sandbox that holds o.Dir: port preflight and the memory
// budget (budget.go: *LowMemoryError), compose up, then the startability
// gate. On a sandbox whose stack already runs it starts
// nothing and only runs the gate. The stand-in image is built first when
// the sandbox uses it and it is missing.
func (m *Manager) Up(ctx context.Context, o UpOptions) (*UpResult, error) {
	l, err := m.locate(o.Dir)
	if err != nil {
		return nil, err
	}
	m = m.on(l.Env.Engine)
	go m.Compose(ctx) // found while the stack file is read
	// The stack's secrets (secrets.go): in memory only. The stack is read
	// with them, compose gets them as one more --env-file, and every text
	// Up returns is masked.
	decided, err := m.Profile.EnvValues(filepath.Join(l.Root, m.Profile.EnvFile))
	if err != nil {
		return nil, err
	}
	if l.Secrets, err = m.loadSecrets(ctx, decided); err != nil {
		return nil, err
	}
	sec := l.Secrets
	sp, sf, err := m.locatedStack(ctx, &l)
	if err != nil {
		return nil, sec.MaskError(err)
	}
	m.warnStack(sf)
	stack := m.stack(l)
	if stack.Secrets, err = sec.env(); err != nil {
		return nil, err
	}
	o.Progress = sec.maskProgress(o.Progress)
	if o.Output != nil && sec.Len() > 0 {
		mw := &maskingWriter{w: o.Output, s: sec}
		defer mw.Flush()
		o.Output = mw
	}
	res, err := m.upStack(ctx, sp, sf, l.Env, stack, l.Root, o, sec)
	sec.maskResult(res)
	return res, sec.MaskError(err)
}

// upStack starts the stack of the stack file sf (adapted profile sp) with
// the suite's override, then runs the gate.
func (m *Manager) upStack(ctx context.Context, p *Profile, sf *StackFile, env Env, stack driver.Stack, root string, o UpOptions, sec *Secrets) (*UpResult, error) {
	res := &UpResult{ID: env.InstanceID, Slot: env.Slot, URLs: p.URLsOn(m.engine, env.Ports)}
	hooks, err := stackHooks(p, sf, root, m.Hooks)
	if err != nil {
		return nil, err
	}
	res.Hooks = hooks
	// On another engine, only the checkout's and the shared root's folders
	// go there (outside.go): refused before anything else runs.
	if err := m.checkSent(sf, root, env, slices.Concat(m.AllowSync, o.AllowSync), !env.Standin); err != nil {
		return nil, err
	}
	// Nothing is made before every check passed. The checks only read, so
	// they run at once, the port and external checks too although a stack
	// that already runs needs neither (the first error in this order wins).
	var (
		c                 *driver.Compose
		states            map[string]*driver.StackState
		subnets           map[string]netip.Prefix
		volumes           []string // the stack's volumes before this up
		ports, exts, nets error
	)
	if err := concurrently(
		func() (err error) { c, err = m.Compose(ctx); return err },
		func() (err error) {
			states, err = driver.StackStates(ctx, m.Runner, m.Profile.InstanceLabel)
			return err
		},
		func() error { ports = m.preflight(ctx, p, env.Slot, env.Ports, stack.Project); return nil },
		func() error { exts = m.checkExternal(ctx, sf); return nil },
		// Subnets from the suite's pool (subnets.go): a reservation, recorded
		// in the sandbox's state folder; nothing is made on the engine.
		func() error { subnets, nets = m.reserveSubnets(ctx, sf, stack.Project); return nil },
		// What a start that is refused must not leave behind.
		func() (err error) { volumes, err = driver.ProjectVolumes(ctx, m.Runner, stack.Project); return err },
	); err != nil {
		return nil, err
	}
	if st := states[stack.Project]; st != nil && st.Running() == len(p.Services) {
		res.AlreadyRunning = true
		m.emit(Event{Kind: EvAlreadyRunning, ID: stack.Project, Running: st.Running(), Total: len(p.Services)})
	} else {
		// The memory budget (budget.go) asks docker stats, which takes about
		// a second: it runs meanwhile, and its verdict is taken once the
		// containers exist, before the first one starts.
		budget := m.startBudgetCheck(ctx, states, stack.Project)
		if err := cmp.Or(ports, exts, nets); err != nil {
			return nil, err
		}
		build := o.Build
		if env.Standin || m.engine.Remote() {
			// Stand-in services run it; on another engine the folder sync's
			// helper container does too.
			if err := m.ensureStandinImage(ctx, root, o.Build && env.Standin); err != nil {
				return nil, err
			}
		}
		if env.Standin {
			if err := m.ensureDBImage(ctx, root, o.Build); err != nil {
				return nil, err
			}
		}
		if env.Standin {
			build = false // -build rebuilt the stand-in image; the file's builds never run in stand-in mode
		}
		var synced map[string]string
		var err error
		if m.engine.Remote() {
			// The checkout's folders do not exist on the engine's host:
			// they go to volumes of the sandbox, filled from here.
			if synced, err = m.syncVolumes(ctx, sf, stack.Project, env.Standin, false); err != nil {
				return nil, err
			}
		}
		override, err := m.writeOverride(p, sf, stack.Project, env.Standin, synced, subnets)
		if err != nil {
			return nil, err
		}
		stack.Files = append(stack.Files, override)
		m.emit(Event{Kind: EvStarting, ID: stack.Project, Slot: env.Slot, Port: env.Ports[p.APIPortKey]})
		if mt := m.readMeta(stack.Project); mt.Phase == "" && mt.Services != len(p.Services) {
			mt.Services = len(p.Services)
			if err := m.writeMeta(stack.Project, mt); err != nil {
				return nil, err
			}
		}
		var refused error
		ready := func() error { refused = budget(); return refused }
		if err := m.startStack(ctx, c, stack, sf.project, p.ReadinessProbes(m.engine.ProbeHost(), env.Ports), build, o.Output, ready); err != nil {
			// Leave no half-started stack behind; its volumes (data) stay.
			cctx, cancel := cleanupContext(ctx)
			defer cancel()
			if refused != nil {
				// Nothing started: what compose made for this up goes again.
				m.unmake(cctx, c, stack, states[stack.Project], volumes)
				return nil, refused
			}
			var se *StartError
			if errors.As(err, &se) && se.Waited != "" {
				// What the dependency said before it failed, read before it is removed.
				if tail, lerr := c.LogTail(cctx, stack, se.Waited, GateLogLines); lerr == nil {
					res.Logs = map[string]string{se.Waited: tail}
				}
			}
			if derr := c.DownTimeout(cctx, stack, false, nil, 1); derr == nil {
				m.emit(Event{Kind: EvPartlyStartedStopped, ID: stack.Project})
			}
			return res, &ComposeError{Err: err}
		}
	}
	if o.NoWait {
		return res, nil
	}
	checks := p.GateChecks(m.engine.ProbeHost(), env.Ports)
	g := &gate.Gate{
		Checks:   append(checks, hookChecks(c, stack, sf, checks, hooks)...),
		Timeout:  o.Timeout,
		Watch:    m.watch(p, stack.Project),
		Progress: o.Progress,
	}
	gr := g.Run(ctx)
	if gr.Interrupted {
		// Interrupted is not failed: the stack runs; nothing is recorded.
		res.Interrupted = true
		return res, fmt.Errorf("startability gate of %s: interrupted after %s: %w", stack.Project, gr.Elapsed.Round(time.Millisecond), context.Cause(ctx))
	}
	sec.maskGate(&gr)
	res.Gate = &gr
	m.saveGate(stack.Project, gr)
	if !gr.Passed {
		res.Logs = map[string]string{}
		for _, svc := range gr.FailedServices() {
			if tail, err := c.LogTail(context.WithoutCancel(ctx), stack, svc, GateLogLines); err == nil {
				res.Logs[svc] = tail
			} else {
				res.Logs[svc] = "(could not read logs: " + err.Error() + ")"
			}
		}
		return res, ErrGateFailed
	}
	return res, nil
}

// watch reports a service whose container exited, died or restart-loops.
func (m *Manager) watch(p *Profile, project string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		states, err := driver.StackStates(ctx, m.Runner, m.Profile.InstanceLabel)
		if err != nil {
			return nil // a failed look is not a dead service
		}
		st := states[project]
		if st == nil {
			return nil
		}
		for _, svc := range p.Services {
			s, ok := st.Services[svc.Name]
			if !ok {
				continue
			}
			switch s.State {
			case "exited", "dead", "restarting":
				return &gate.ServiceDownError{Service: svc.Name, State: s.Status}
			}
		}
		return nil
	}
}

func (m *Manager) saveGate(id string, gr gate.Result) {
	dir, err := m.ownInstanceDir(id)
	if err != nil {
		return
	}
	data, err := json.MarshalIndent(struct {
		At time.Time `json:"at"`
		gate.Result
	}{m.Now().UTC(), gr}, "", "  ")
	if err == nil {
		_ = WriteFileAtomic(filepath.Join(dir, "gate.json"), append(data, '\n'), 0o644)
	}
}

// LastGate is the most recent gate result of an instance, if one was kept.
type LastGate struct {
	At time.Time `json:"at"`
	gate.Result
}

func (m *Manager) lastGate(id string) *LastGate {
	dir, ok := m.keptDir(id)
	if !ok {
		return nil
	}
	data, err := readOwnFile(filepath.Join(dir, "gate.json"), MaxCheckoutFile)
	if err != nil {
		return nil
	}
	var lg LastGate
	if json.Unmarshal(data, &lg) != nil {
		return nil
	}
	return &lg
}

// ensureStandinImage builds the stand-in image when it is missing, or
// always when rebuild is set (up -build after changing cmd/standin).
func (m *Manager) ensureStandinImage(ctx context.Context, root string, rebuild bool) error {
	p := m.Profile
	if m.engine.Context != "" {
		return m.ensureRemoteStandinImage(ctx, root, rebuild)
	}
	if !rebuild {
		ok, err := driver.StandinImageExists(ctx, m.Runner, p.StandinImage)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	m.emit(Event{Kind: EvImageBuilding, Image: p.StandinImage, Source: p.StandinSource})
	return driver.BuildStandinImage(ctx, m.Runner, root, p.StandinSource, p.StandinImage, m.log())
}

// ensureRemoteStandinImage gives another engine the stand-in image: the
// local one, built if needed, loaded there when the engine lacks it or has
// another build of it (docker save | docker --context X load). An engine
// on another CPU architecture gets one built for it, imported there.
func (m *Manager) ensureRemoteStandinImage(ctx context.Context, root string, rebuild bool) error {
	p := m.Profile
	out, err := m.Runner.Run(ctx, driver.Cmd{Name: "docker", Args: []string{"version", "--format", "{{.Server.Arch}}"}})
	if err != nil {
		return fmt.Errorf("ask engine %s for its architecture: %w", m.engine.Name(), err)
	}
	if arch := strings.TrimSpace(string(out)); arch != "" && arch != runtime.GOARCH {
		if !rebuild {
			if id, err := driver.ImageID(ctx, m.Runner, p.StandinImage); err != nil || id != "" {
				return err
			}
		}
		m.emit(Event{Kind: EvImageBuilding, Image: p.StandinImage, Source: p.StandinSource, Arch: arch, Engine: m.engine.Name()})
		return driver.BuildStandinImageFor(ctx, m.Runner, root, p.StandinSource, p.StandinImage, arch, m.log())
	}
	local := m.on(Engine{})
	if err := local.ensureStandinImage(ctx, root, rebuild); err != nil {
		return err
	}
	want, err := driver.ImageID(ctx, local.Runner, p.StandinImage)
	if err != nil {
		return err
	}
	have, err := driver.ImageID(ctx, m.Runner, p.StandinImage)
	if err != nil || have == want {
		return err
	}
	m.emit(Event{Kind: EvImageLoading, Image: p.StandinImage, Engine: m.engine.Name()})
	if err := copyImage(ctx, m.base, p.StandinImage, m.engine.Context); err != nil {
		return err
	}
	// The build it replaced there is left over unless a container uses it.
	if err := driver.RemoveReplacedStandin(ctx, m.Runner, p.StandinImage, have, m.log()); err != nil {
		fmt.Fprintf(m.log(), "note: %v\n", err)
	}
	return nil
}

// ensureDBImage gives the engine stand-in mode's database image
// (Profile.StandinDBImage) when the profile has one: built here from the
// host's PostgreSQL when it is missing (or always with rebuild), and on
// another engine loaded there when it lacks this build. An engine on
// another CPU architecture cannot run the host's PostgreSQL: that is an
// error saying so.
func (m *Manager) ensureDBImage(ctx context.Context, root string, rebuild bool) error {
	p := m.Profile
	if p.StandinDBImage == "" {
		return nil
	}
	if m.engine.Context != "" {
		out, err := m.Runner.Run(ctx, driver.Cmd{Name: "docker", Args: []string{"version", "--format", "{{.Server.Arch}}"}})
		if err != nil {
			return fmt.Errorf("ask engine %s for its architecture: %w", m.engine.Name(), err)
		}
		if arch := strings.TrimSpace(string(out)); arch != "" && arch != runtime.GOARCH {
			if id, err := driver.ImageID(ctx, m.Runner, p.StandinDBImage); err != nil || id != "" {
				return err
			}
			return fmt.Errorf("give engine %s (%s) the database image %s: it is built from this machine's PostgreSQL, which is %s", m.engine.Name(), arch, p.StandinDBImage, runtime.GOARCH)
		}
		local := m.on(Engine{})
		if err := local.ensureDBImage(ctx, root, rebuild); err != nil {
			return err
		}
		want, err := driver.ImageID(ctx, local.Runner, p.StandinDBImage)
		if err != nil {
			return err
		}
		have, err := driver.ImageID(ctx, m.Runner, p.StandinDBImage)
		if err != nil || have == want {
			return err
		}
		m.emit(Event{Kind: EvImageLoading, Image: p.StandinDBImage, Engine: m.engine.Name()})
		if err := copyImage(ctx, m.base, p.StandinDBImage, m.engine.Context); err != nil {
			return err
		}
		if err := driver.RemoveReplacedStandin(ctx, m.Runner, p.StandinDBImage, have, m.log()); err != nil {
			fmt.Fprintf(m.log(), "note: %v\n", err)
		}
		return nil
	}
	if !rebuild {
		ok, err := driver.StandinImageExists(ctx, m.Runner, p.StandinDBImage)
		if err != nil || ok {
			return err
		}
	}
	m.emit(Event{Kind: EvImageBuilding, Image: p.StandinDBImage, Source: "the host's PostgreSQL packages"})
	return driver.BuildPostgresImage(ctx, m.Runner, root, p.StandinSource, p.StandinDBImage, m.log())
}

// copyImage streams image from the local engine into the engine of Docker
// context to: docker save | docker --context to load (no registry).
func copyImage(ctx context.Context, r driver.Runner, image, to string) error {
	pr, pw := io.Pipe()
	saved := make(chan error, 1)
	go func() {
		_, err := r.Run(ctx, driver.Cmd{Name: "docker", Args: []string{"save", image}, Stdout: pw})
		pw.CloseWithError(err)
		saved <- err
	}()
	_, err := r.Run(ctx, driver.Cmd{Name: "docker", Args: []string{"--context", to, "load", "--quiet"}, Stdin: pr})
	pr.CloseWithError(err)
	if serr := <-saved; serr != nil {
		return fmt.Errorf("save image %s from the local engine: %w", image, serr)
	}
	if err != nil {
		return fmt.Errorf("load image %s into engine %s: %w", image, to, err)
	}
	return nil
}

// DownOptions are the inputs of Down.
type DownOptions struct {
	Dir     string    // a folder of the sandbox
	Volumes bool      // remove its volumes too (its data)
	Out     io.Writer // compose's own output; nil discards it
}

// Down stops the sandbox's stack; volumes are removed only when asked. It
// returns the instance's id.
func (m *Manager) Down(ctx context.Context, o DownOptions) (string, error) {
	volumes, out := o.Volumes, o.Out
	l, err := m.locate(o.Dir)
	if err != nil {
		return "", err
	}
	m = m.on(l.Env.Engine)
	c, err := m.Compose(ctx)
	if err != nil {
		return "", err
	}
	if volumes {
		// Removing data: prove the project's containers are this sandbox's.
		if err := m.checkOwned(ctx, l.Env.InstanceID); err != nil {
			return l.Env.InstanceID, err
		}
	}
	sec := m.bestEffortSecrets(ctx)
	if err := c.Down(ctx, withSecrets(m.stack(l), sec), volumes, out); err != nil {
		if !m.onlyNetworksLeft(ctx, l.Env.InstanceID, err) {
			return l.Env.InstanceID, sec.MaskError(&ComposeError{Err: err})
		}
	}
	if volumes && m.engine.Remote() {
		if err := m.removeSyncVolumes(ctx, l.Env.InstanceID); err != nil {
			return l.Env.InstanceID, err
		}
	}
	return l.Env.InstanceID, nil
}

// LogsOptions are the inputs of Logs.
type LogsOptions struct {
	Dir     string    // a folder of the sandbox
	Service string    // one service; "" for all
	Follow  bool      // keep streaming until ctx ends
	Tail    int       // only the last Tail lines of each container; 0 for all
	Out     io.Writer // where the logs go
}

// serviceName is what compose accepts as a service's name.
var serviceName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`)

// Logs streams the sandbox's compose logs.
func (m *Manager) Logs(ctx context.Context, o LogsOptions) error {
	if o.Service != "" && !serviceName.MatchString(o.Service) {
		return fmt.Errorf("logs of service %q: not a service name (letters, digits, '.', '_' and '-', starting with a letter or digit)", o.Service)
	}
	l, err := m.locate(o.Dir)
	if err != nil {
		return err
	}
	m = m.on(l.Env.Engine)
	c, err := m.Compose(ctx)
	if err != nil {
		return err
	}
	sec := m.bestEffortSecrets(ctx)
	return sec.MaskError(c.Logs(ctx, withSecrets(m.stack(l), sec), o.Service, o.Follow, o.Tail, o.Out))
}

// concurrently runs fns at once and returns the error of the first of them
// (in argument order) that failed.
func concurrently(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// unmake removes what compose made for a start that was then refused: the
// containers and networks of a stack none of whose containers ran before
// (before: its state then), and the volumes that were not there before
// (kept: their names). A stack that was partly running keeps what runs.
func (m *Manager) unmake(ctx context.Context, c *driver.Compose, stack driver.Stack, before *driver.StackState, kept []string) {
	if before.Running() > 0 {
		return
	}
	_ = c.DownTimeout(ctx, stack, false, nil, 1)
	now, err := driver.ProjectVolumes(ctx, m.Runner, stack.Project)
	if err != nil {
		return
	}
	var made []string
	for _, v := range now {
		if !slices.Contains(kept, v) {
			made = append(made, v)
		}
	}
	if len(made) > 0 {
		_, _ = m.Runner.Run(ctx, driver.Cmd{Name: "docker", Args: append([]string{"volume", "rm"}, made...)})
	}
}
