package targets

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/ktrdr/sandboxkit/sandbox"
	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// Sandbox holds the targets that manage isolated ktrdr stacks, one per checkout.
type Sandbox mg.Namespace

// Create makes a new sandbox: a git worktree ../ktrdr--<name> beside the main checkout,
// its own slot of ports, .env.sandbox and a registry entry; with -up it then starts it and
// waits for the gate, as sandbox:up in its folder. Exit 1 no slot or port conflict, 2
// worktree failed, 3 folder exists; with -up, a failed start exits as sandbox:up does and
// the sandbox stays.
func (Sandbox) Create(ctx context.Context, name string,
	branch *string, // branch to check out (default: <name>, created from HEAD if missing)
	slot *int, // slot to take (default: the lowest free one)
	standin *bool, // run the bundled stand-in images instead of the real ktrdr images
	context *string, // run on the Docker engine of this Docker context (default: the local engine)
	json *bool, // print what was created as JSON (steps go to stderr); with -up one document after the gate
	up *bool, // then start it and wait for the startability gate, as sandbox:up in its folder
	timeout *time.Duration, // with -up: how long the gate may wait (default 2m0s)
) (err error) {
	defer exitAs(tCreate, &err)
	m, cwd, err := manager(json)
	if err != nil {
		return err
	}
	jsonOut := deref(json)
	uo, stop := upOptions(sandbox.UpOptions{Timeout: deref(timeout)}, jsonOut)
	defer stop()
	co := sandbox.CreateOptions{Name: name, Branch: deref(branch), Slot: deref(slot), Standin: deref(standin), Dir: cwd, Context: deref(context)}
	doc, err := createAndStart(ctx, m, co, deref(up), uo, func(res *createdDoc) {
		if !jsonOut {
			printCreated(res)
		}
	})
	stop()
	if doc == nil {
		return err
	}
	if jsonOut {
		if perr := printJSON(doc); perr != nil {
			return perr
		}
		return err
	}
	switch {
	case !deref(up):
		fmt.Fprintf(stdout, "Next: cd %s && go tool mage sandbox:up\n", doc.Path)
	default:
		showUp(doc.Up)
		if err == nil {
			fmt.Fprintf(stdout, "Ready: cd %s (API %s)\n", doc.Path, doc.APIURL)
		}
	}
	return err
}

// Init adopts the current clone or worktree as a sandbox (writes .env.sandbox, registers
// it); a checkout whose .env.sandbox outlived its registry entry is registered again as
// that file says. Exit 1 already a sandbox, 2 not a git checkout of this project, 3 port
// conflict.
func (Sandbox) Init(ctx context.Context,
	slot *int, // slot to take (default: the lowest free one)
	name *string, // sandbox name (default: the folder's name)
	standin *bool, // run the bundled stand-in images instead of the real ktrdr images
	context *string, // run on the Docker engine of this Docker context (default: the local engine)
) (err error) {
	defer exitAs(tInit, &err)
	m, cwd, err := manager()
	if err != nil {
		return err
	}
	res, err := m.Init(ctx, sandbox.InitOptions{Name: deref(name), Slot: deref(slot), Standin: deref(standin), Dir: cwd, Context: deref(context)})
	if err != nil {
		return err
	}
	kind := "clone"
	if res.IsWorktree {
		kind = "worktree"
	}
	if res.Reregistered {
		fmt.Fprintf(stdout, "Registered %s %s again as sandbox %s in slot %d, as its .env.sandbox says (API http://localhost:%d)\n", kind, res.Path, res.ID, res.Slot, res.Ports["KTRDR_API_PORT"])
		if res.MovedFrom != "" {
			fmt.Fprintf(stdout, "It was registered for %s, which is gone: the entry now points here\n", res.MovedFrom)
		}
		fmt.Fprintln(stdout, "Next: go tool mage sandbox:status")
		return nil
	}
	fmt.Fprintf(stdout, "Adopted %s %s as sandbox %s in slot %d (API http://%s:%d)\n", kind, res.Path, res.ID, res.Slot, res.Host, res.Ports["KTRDR_API_PORT"])
	fmt.Fprintln(stdout, "Next: go tool mage sandbox:up")
	return nil
}

// Up starts this checkout's stack, then waits for the startability gate. Exit 1 compose
// failed (or no free subnet in the pool, or on another engine a folder outside the checkout
// and the shared root), 2 gate failed, 3 port conflict, 4 an external network or volume is
// missing, 5 not enough free memory on the engine (min_free_memory in
// ~/.ktrdr/sandbox/config.json).
func (Sandbox) Up(ctx context.Context,
	nowait *bool, // do not wait for the startability gate
	build *bool, // build images before starting (compose up --build; rebuilds the stand-in image)
	timeout *time.Duration, // how long the gate may wait (default 2m0s)
	json *bool, // print the result (gate checks, URLs) as JSON; progress goes to stderr
	allowSync *string, // on another engine, also send these folders outside the checkout and the shared root (absolute, comma separated; each exactly, not what lies below it)
) (err error) {
	defer exitAs(tUp, &err)
	allowed, err := allowList(allowSync)
	if err != nil {
		return err
	}
	m, cwd, err := manager(json)
	if err != nil {
		return err
	}
	opts, stop := upOptions(sandbox.UpOptions{Dir: cwd, NoWait: deref(nowait), Build: deref(build), Timeout: deref(timeout), AllowSync: allowed}, deref(json))
	res, err := m.Up(ctx, opts)
	stop()
	if deref(json) && res != nil {
		if perr := printJSON(res); perr != nil {
			return perr
		}
	} else {
		showUp(res)
	}
	if err != nil && res != nil && res.Interrupted {
		return &leftRunningError{err}
	}
	if err != nil {
		return err
	}
	if res.Gate == nil && !deref(json) {
		fmt.Fprintf(stdout, "Started %s without waiting; check readiness with go tool mage sandbox:status\n", res.ID)
	}
	return nil
}

// Down stops this checkout's stack; its data (volumes) is kept unless -volumes. With -all it
// stops every running sandbox of the registry, from anywhere, two at a time (data kept).
// Exit 1 failed (with -all: any of them, named).
func (Sandbox) Down(ctx context.Context,
	volumes *bool, // also remove the stack's volumes (database, metrics, dashboards)
	all *bool, // stop every running sandbox of this registry, from anywhere (data kept; refused with -volumes)
	json *bool, // print what was stopped as JSON; steps go to stderr
) (err error) {
	defer exitAs(tDown, &err)
	m, cwd, err := manager(json)
	if err != nil {
		return err
	}
	if deref(all) {
		if deref(volumes) {
			return &allVolumesError{}
		}
		return downAll(ctx, m, deref(json))
	}
	id, err := m.Down(ctx, sandbox.DownOptions{Dir: cwd, Volumes: deref(volumes), Out: verboseOut()})
	if err != nil {
		return err
	}
	if deref(json) {
		return printJSON(downDoc{id, deref(volumes)})
	}
	if deref(volumes) {
		fmt.Fprintf(stdout, "Stopped %s and removed its volumes\n", id)
	} else {
		fmt.Fprintf(stdout, "Stopped %s (data kept; -volumes removes it)\n", id)
	}
	return nil
}

// downAll is sandbox:down -all: each sandbox is reported as it stops (on
// stderr with -json), then what was done.
func downAll(ctx context.Context, m *sandbox.Manager, jsonOut bool) error {
	res, err := m.DownAll(ctx, sandbox.DownAllOptions{Out: verboseOut()})
	if res == nil {
		return err
	}
	if jsonOut {
		if perr := printJSON(res); perr != nil {
			return perr
		}
		return err
	}
	stopped := 0
	for _, r := range res.Sandboxes {
		if r.Stopped {
			stopped++
		}
	}
	switch {
	case len(res.Sandboxes) == 0:
		fmt.Fprintln(stdout, "No sandbox is running: nothing to stop")
	case err == nil:
		fmt.Fprintf(stdout, "Stopped %d sandbox(es) (data kept)\n", stopped)
	}
	return err
}

// Destroy removes this sandbox for good: its stack with volumes, its registry entry and
// its worktree (never an adopted clone). Refuses to lose work without -force.
func (Sandbox) Destroy(ctx context.Context,
	keepWorktree *bool, // keep the worktree folder
	force *bool, // destroy even with uncommitted changes or unshared commits
	name *string, // destroy the sandbox of this name instead of the current one
	json *bool, // print what was removed as JSON; steps go to stderr
) (err error) {
	defer exitAs(tDestroy, &err)
	m, cwd, err := manager(json)
	if err != nil {
		return err
	}
	res, err := m.Destroy(ctx, sandbox.DestroyOptions{Dir: cwd, Name: deref(name), KeepWorktree: deref(keepWorktree), Force: deref(force)})
	if err != nil {
		return err
	}
	if deref(json) {
		return printJSON(res)
	}
	if res.AlreadyGone {
		fmt.Fprintf(stdout, "%s is not registered: nothing to destroy\n", res.ID)
		return nil
	}
	fmt.Fprintf(stdout, "Destroyed %s\n", res.ID)
	if res.LeftOnEngine != "" {
		fmt.Fprintf(stdout, "Its engine did not answer: when it is back, remove what stays there with:\n  %s\n", res.LeftOnEngine)
	}
	return nil
}

// List shows every sandbox: slot, state, CPU and memory of running ones, API port, branch
// and path. Cleans stale registry entries and reports unregistered stacks.
func (Sandbox) List(ctx context.Context,
	json *bool, // print JSON for scripts
) (err error) {
	defer exitAs(tList, &err)
	m, _, err := manager()
	if err != nil {
		return err
	}
	m.Events, m.Log = printEvents(stderr), stderr
	l, err := m.List(ctx)
	if err != nil {
		return err
	}
	if deref(json) {
		return printJSON(listingJSON(l))
	}
	if len(l.Instances) == 0 {
		fmt.Fprintln(stdout, "No sandboxes. Create one with: go tool mage sandbox:create <name>")
	} else {
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "INSTANCE\tSLOT\tSTATE\tCPU\tMEM\tENGINE\tAPI PORT\tBRANCH\tPATH")
		for _, e := range l.Instances {
			cpu, mem := usageCells(e)
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.ID, e.Slot, e.State, cpu, mem, e.Engine, e.APIPort, orDash(e.Branch), e.Path)
		}
		w.Flush()
	}
	for _, e := range l.Instances {
		switch {
		case e.Interrupted != "":
			name, _ := sandbox.KTRDR().NameOf(e.ID)
			what := map[string]string{"creating": "create", "destroying": "destroy"}[e.Interrupted]
			fmt.Fprintf(stdout, "Interrupted %s of %s (%s): remove what it left with go tool mage sandbox:destroy -name=%s -force\n", what, e.ID, e.Path, name)
		case e.Removed:
			fmt.Fprintf(stdout, "Cleaned stale entry %s (%s): %s\n", e.ID, e.Path, e.Reason)
		case e.State == sandbox.StateMissing:
			name, _ := sandbox.KTRDR().NameOf(e.ID)
			why := "its stack still has containers"
			if l.Warning != "" {
				why = "its stack's state is unknown"
			}
			fmt.Fprintf(stdout, "Kept stale entry %s (%s): %s, but %s; remove both with go tool mage sandbox:destroy -name=%s\n", e.ID, e.Path, e.Reason, why, name)
		}
	}
	if l.Warning != "" {
		fmt.Fprintf(stderr, "warning: %s\n  hint: is the Docker engine running? (docker info)\n", l.Warning)
	}
	for _, c := range slices.Sorted(maps.Keys(l.EngineErrors)) {
		fmt.Fprintf(stderr, "warning: engine %s did not answer (its sandboxes' states are unknown): %s\n  hint: docker --context %s info\n", c, l.EngineErrors[c], c)
	}
	for _, name := range slices.Sorted(maps.Keys(l.StatsErrors)) {
		fmt.Fprintf(stderr, "warning: engine %s did not say what its containers use (CPU and MEM not shown): %s\n", name, l.StatsErrors[name])
	}
	for _, o := range l.Orphans {
		fmt.Fprintf(stdout, "Unregistered stack %s (%d containers); remove it with: %s\n", o.Project, o.Containers, orphanRemedy(o))
	}
	return nil
}

// Status shows this checkout's sandbox: slot, branch, state of each service, every URL
// and the last gate result. Exit 1 outside a sandbox.
func (Sandbox) Status(ctx context.Context,
	json *bool, // print JSON for scripts (a stable shape)
) (err error) {
	defer exitAs(tStatus, &err)
	m, cwd, err := manager()
	if err != nil {
		return err
	}
	s, err := m.Status(ctx, sandbox.StatusOptions{Dir: cwd})
	if err != nil {
		return err
	}
	if deref(json) {
		return printJSON(s)
	}
	if s.Warning != "" {
		fmt.Fprintf(stderr, "warning: %s\n  hint: is the Docker engine running? (docker info)\n", s.Warning)
	}
	reg := ""
	if !s.Registered {
		reg = " (not in the registry: run sandbox:list)"
	}
	fmt.Fprintf(stdout, "Sandbox %s%s\n  slot %d · branch %s · %s · engine %s\n  path %s\n\nServices:\n", s.ID, reg, s.Slot, orDash(s.Branch), s.State, s.Engine, s.Path)
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, svc := range s.Services {
		fmt.Fprintf(w, "  %s\t%s\t%s\n", svc.Service, svc.State, svc.Health)
	}
	w.Flush()
	fmt.Fprintln(stdout, "\nURLs:")
	for _, u := range s.URLs {
		fmt.Fprintf(w, "  %s\t%s\n", u.Label, u.URL)
	}
	w.Flush()
	switch {
	case s.LastGate == nil:
		fmt.Fprintln(stdout, "\nStartability gate: not run yet (go tool mage sandbox:up)")
	case s.LastGate.Passed:
		fmt.Fprintf(stdout, "\nStartability gate: PASSED at %s in %.1fs\n", s.LastGate.At.Local().Format(time.DateTime), s.LastGate.Elapsed.Seconds())
	default:
		fmt.Fprintf(stdout, "\nStartability gate: FAILED at %s: %s\n", s.LastGate.At.Local().Format(time.DateTime), strings.Join(s.LastGate.FailedServices(), ", "))
	}
	return nil
}

// Logs shows the compose logs of this checkout's stack (one service with -service).
func (Sandbox) Logs(ctx context.Context,
	service *string, // only this service, e.g. backend
	follow *bool, // keep streaming
	tail *int, // only the last N lines of each container
) (err error) {
	defer exitAs(tLogs, &err)
	m, cwd, err := manager()
	if err != nil {
		return err
	}
	return m.Logs(ctx, sandbox.LogsOptions{Dir: cwd, Service: deref(service), Follow: deref(follow), Tail: deref(tail), Out: stdout})
}

// Shell opens an interactive shell in a running service of this sandbox (default: the
// API's, backend): bash where its image has it, else sh. With stdin not a terminal the
// shell reads its commands from stdin. Exit: the shell's own status; 1 not a sandbox, no
// such service, or the service is not running.
func (Sandbox) Shell(ctx context.Context,
	service *string, // the service to enter (default: the API's, e.g. backend)
) (err error) {
	defer exitAs(tShell, &err)
	toStderr := true // steps go to stderr: stdout is the shell's
	m, cwd, err := manager(&toStderr)
	if err != nil {
		return err
	}
	_, err = m.Shell(ctx, sandbox.ShellOptions{Dir: cwd, Service: deref(service), TTY: readsTerminal(stdin),
		Stdin: stdin, Stdout: stdout, Stderr: stderr})
	return err
}

// Sync pushes this sandbox's local folders (./data, the shared folders, every folder its
// stack mounts) again to its volumes on another Docker engine; nothing is copied back. A
// folder outside the checkout and the shared root is refused unless allowed.
func (Sandbox) Sync(ctx context.Context,
	mirror *bool, // also delete what only the volumes hold (files deleted here, and what containers wrote there)
	json *bool, // print what was synced as JSON
	allowSync *string, // also send these folders outside the checkout and the shared root (absolute, comma separated; each exactly, not what lies below it)
) (err error) {
	defer exitAs(tSync, &err)
	allowed, err := allowList(allowSync)
	if err != nil {
		return err
	}
	m, cwd, err := manager(json)
	if err != nil {
		return err
	}
	res, err := m.Sync(ctx, sandbox.SyncOptions{Dir: cwd, Mirror: deref(mirror), AllowSync: allowed})
	if err != nil {
		return err
	}
	if deref(json) {
		return printJSON(res)
	}
	if res.Engine == "local" {
		fmt.Fprintf(stdout, "%s runs on the local engine, which mounts its folders directly: nothing to sync\n", res.ID)
		return nil
	}
	fmt.Fprintf(stdout, "Synced %d folder(s) of %s to engine %s\n", len(res.Volumes), res.ID, res.Engine)
	return nil
}

// Ports shows the port plan of this checkout's stack file: every published-port variable,
// its rule and its port in each sandbox slot (or in slot N).
func (Sandbox) Ports(ctx context.Context,
	slot *int, // show only this slot
	json *bool, // print the plan as JSON
) (err error) {
	defer exitAs(tPorts, &err)
	m, cwd, err := manager(json)
	if err != nil {
		return err
	}
	plan, err := m.Ports(ctx, sandbox.PortsOptions{Dir: cwd, Slot: deref(slot)})
	if err != nil {
		return err
	}
	if deref(json) {
		return printJSON(plan)
	}
	fmt.Fprintf(stdout, "Ports of %s (slots %d–%d):\n", plan.File, plan.MinSlot, plan.MaxSlot)
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "VARIABLE\tSERVICE\tRULE\tSLOT 0\tSANDBOX SLOTS")
	for _, l := range plan.Ports {
		rule := l.Rule
		if l.Chosen {
			rule += " (chosen)"
		}
		var ports []string
		for s := plan.MinSlot; s <= plan.MaxSlot; s++ {
			if p, ok := l.Slots[s]; ok {
				ports = append(ports, fmt.Sprintf("%d:%d", s, p))
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", l.Key, l.Service, rule, l.Slot0, strings.Join(ports, " "))
	}
	for _, l := range plan.Literal {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", l.Key, l.Service, l.Label, l.Slot0, "the same in every slot")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, warn := range plan.Warnings {
		fmt.Fprintln(stdout, "warning: "+stackWarningText(warn))
	}
	return nil
}

// stackWarningText is one warning about a stack file, for a person.
func stackWarningText(w sandbox.StackWarning) string {
	if w.Service == "" {
		return w.Text
	}
	return "service " + w.Service + " " + w.Text
}

// usageCells are the CPU and MEM cells of a list row: "-" when not known
// (a stopped sandbox, or an engine that did not say).
func usageCells(e sandbox.ListEntry) (cpu, mem string) {
	cpu, mem = "-", "-"
	if e.CPUPercent != nil {
		cpu = strconv.FormatFloat(*e.CPUPercent, 'f', 1, 64) + "%"
	}
	if e.MemoryBytes != nil {
		mem = driver.FormatSize(*e.MemoryBytes)
	}
	return cpu, mem
}

// orphanRemedy is the command that removes an unregistered stack.
func orphanRemedy(o sandbox.Orphan) string {
	return fmt.Sprintf("docker compose -p %s down --volumes", o.Project)
}

// listingJSON is the listing as sandbox:list -json prints it: each orphan
// with its remedy.
func listingJSON(l *sandbox.Listing) any {
	type orphan struct {
		sandbox.Orphan
		Remedy string `json:"remedy"`
	}
	orphans := make([]orphan, len(l.Orphans))
	for i, o := range l.Orphans {
		orphans[i] = orphan{o, orphanRemedy(o)}
	}
	return struct {
		*sandbox.Listing
		Orphans []orphan `json:"orphans"`
	}{l, orphans}
}

// allowList is the value of -allowSync: absolute folders, comma separated.
func allowList(flag *string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(deref(flag), ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out, sandbox.ValidateAllowSync(out)
}
