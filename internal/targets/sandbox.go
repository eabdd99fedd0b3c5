package targets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/magefile/mage/mg"
	"github.com/mattn/go-isatty"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// Sandbox holds the targets that manage isolated ktrdr stacks, one per checkout.
type Sandbox mg.Namespace

// manager returns the library's manager for this user, printing steps to
// stdout, or to stderr when stdout carries JSON.
func manager(jsonOut ...*bool) (*sandbox.Manager, string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, "", fail(1, fmt.Errorf("find the home folder: %w", err), "set HOME")
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, "", fail(1, fmt.Errorf("find the current folder: %w", err), "")
	}
	steps := io.Writer(os.Stdout)
	if len(jsonOut) > 0 && deref(jsonOut[0]) {
		steps = os.Stderr
	}
	m, err := sandbox.LoadManager(home, steps)
	if err != nil {
		return nil, "", fail(1, err, "fix or remove the settings file")
	}
	return m, cwd, nil
}

// Create makes a new sandbox: a git worktree ../ktrdr--<name> beside the main checkout,
// its own slot of ports, .env.sandbox and a registry entry. Exit 1 no slot or port
// conflict, 2 worktree failed, 3 folder exists.
func (Sandbox) Create(ctx context.Context, name string,
	branch *string, // branch to check out (default: <name>, created from HEAD if missing)
	slot *int, // slot to take (default: the lowest free one)
	standin *bool, // run the bundled stand-in images instead of the real ktrdr images
	context *string, // run on the Docker engine of this Docker context (default: the local engine)
	json *bool, // print what was created as JSON (steps go to stderr)
) error {
	m, cwd, err := manager(json)
	if err != nil {
		return err
	}
	res, err := m.Create(ctx, sandbox.CreateOptions{Name: name, Branch: deref(branch), Slot: deref(slot), Standin: deref(standin), Dir: cwd, Context: deref(context)})
	if err != nil {
		return explain(err)
	}
	if deref(json) {
		return printJSON(res)
	}
	for _, s := range sortedSlots(res.Skipped) {
		fmt.Printf("Skipped slot %d: %s\n", s, res.Skipped[s])
	}
	on := ""
	if res.Engine != "local" {
		on = " on engine " + res.Engine
	}
	fmt.Printf("Created sandbox %s in slot %d%s (API http://%s:%d)\n", res.ID, res.Slot, on, res.Host, res.Ports["KTRDR_API_PORT"])
	fmt.Printf("Next: cd %s && go tool mage sandbox:up\n", res.Path)
	return nil
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
) error {
	m, cwd, err := manager()
	if err != nil {
		return err
	}
	res, err := m.Init(ctx, sandbox.InitOptions{Name: deref(name), Slot: deref(slot), Standin: deref(standin), Dir: cwd, Context: deref(context)})
	if err != nil {
		var se *sandbox.SlotError
		var pe *sandbox.PortInUseError
		var nf *sandbox.NoFreeSlotError
		var rr *sandbox.ReregisterError
		var ef *sandbox.EnvFileError
		var um *sandbox.UnrepairedMoveError
		var cc *sandbox.ClaimCheckError
		switch {
		case errors.As(err, &rr):
			again := "go tool mage sandbox:init"
			if rr.Standin {
				again += " -standin"
			}
			return fail(1, err, fmt.Sprintf("to adopt the checkout afresh (a free slot, new ports): stop its stack if it runs (docker compose -p %s down), remove %s, then run %s", rr.ID, rr.EnvPath, again))
		case errors.As(err, &ef):
			return fail(1, err, "fix the key named above, or remove "+ef.Path+" and run go tool mage sandbox:init again to adopt the checkout afresh")
		case errors.As(err, &um):
			return fail(1, err, "let git know where the worktree is now (git worktree repair, run in "+um.Here+"), then run go tool mage sandbox:init again")
		case errors.As(err, &cc):
			return fail(1, err, "is the Docker engine running (docker info)? init asks it which folder runs the stack before it registers an existing .env.sandbox; start it and run sandbox:init again")
		}
		if errors.As(err, &se) && errors.As(err, &pe) {
			return fail(3, err, "free those ports, or pick another slot with -slot=N (see go tool mage sandbox:list)")
		}
		if errors.As(err, &nf) && skippedForPorts(nf) {
			return fail(3, err, "free the ports named above, or destroy a sandbox you no longer need (go tool mage sandbox:list)")
		}
		return explain(err)
	}
	kind := "clone"
	if res.IsWorktree {
		kind = "worktree"
	}
	if res.Reregistered {
		fmt.Printf("Registered %s %s again as sandbox %s in slot %d, as its .env.sandbox says (API http://localhost:%d)\n", kind, res.Path, res.ID, res.Slot, res.Ports["KTRDR_API_PORT"])
		if res.MovedFrom != "" {
			fmt.Printf("It was registered for %s, which is gone: the entry now points here\n", res.MovedFrom)
		}
		fmt.Println("Next: go tool mage sandbox:status")
		return nil
	}
	fmt.Printf("Adopted %s %s as sandbox %s in slot %d (API http://%s:%d)\n", kind, res.Path, res.ID, res.Slot, res.Host, res.Ports["KTRDR_API_PORT"])
	fmt.Println("Next: go tool mage sandbox:up")
	return nil
}

// Up starts this checkout's stack, then waits for the startability gate. Exit 1 compose
// failed, 2 gate failed, 3 port conflict, 4 an external network or volume is missing.
func (Sandbox) Up(ctx context.Context,
	nowait *bool, // do not wait for the startability gate
	build *bool, // build images before starting (compose up --build; rebuilds the stand-in image)
	timeout *time.Duration, // how long the gate may wait (default 2m0s)
	json *bool, // print the result (gate checks, URLs) as JSON; progress goes to stderr
) error {
	m, cwd, err := manager(json)
	if err != nil {
		return err
	}
	progressOut := os.Stdout
	if deref(json) {
		progressOut = os.Stderr
	}
	tty := isatty.IsTerminal(progressOut.Fd())
	update, stop := sandbox.NewGateProgress(progressOut, tty)
	opts := sandbox.UpOptions{Dir: cwd, NoWait: deref(nowait), Build: deref(build), Timeout: deref(timeout), Progress: update}
	if mg.Verbose() {
		opts.Output = os.Stderr
	}
	res, err := m.Up(ctx, opts)
	stop()
	if deref(json) && res != nil {
		if perr := printJSON(res); perr != nil {
			return perr
		}
	} else if res != nil && res.Gate != nil {
		fmt.Println()
		sandbox.WriteGateReport(os.Stdout, *res.Gate, res.URLs, res.Logs)
	}
	if err != nil {
		var me *sandbox.MissingExternalError
		if errors.As(err, &me) {
			return fail(4, err, "create them, then run sandbox:up again: "+strings.Join(me.Commands(), "; "))
		}
		if errors.Is(err, sandbox.ErrGateFailed) {
			return fail(2, err, "inspect with go tool mage sandbox:logs -service=<service>; fix, then run sandbox:up again")
		}
		if res != nil && res.Interrupted {
			return fail(1, err, "the stack was started and keeps running; go tool mage sandbox:up again re-runs the gate, sandbox:down stops it")
		}
		return explain(err)
	}
	if res.Gate == nil && !deref(json) {
		fmt.Printf("Started %s without waiting; check readiness with go tool mage sandbox:status\n", res.ID)
	}
	return nil
}

// Down stops this checkout's stack; its data (volumes) is kept unless -volumes.
func (Sandbox) Down(ctx context.Context,
	volumes *bool, // also remove the stack's volumes (database, metrics, dashboards)
) error {
	m, cwd, err := manager()
	if err != nil {
		return err
	}
	id, err := m.Down(ctx, cwd, deref(volumes), verboseOut())
	if err != nil {
		return explain(err)
	}
	if deref(volumes) {
		fmt.Printf("Stopped %s and removed its volumes\n", id)
	} else {
		fmt.Printf("Stopped %s (data kept; -volumes removes it)\n", id)
	}
	return nil
}

// Destroy removes this sandbox for good: its stack with volumes, its registry entry and
// its worktree (never an adopted clone). Refuses to lose work without -force.
func (Sandbox) Destroy(ctx context.Context,
	keepWorktree *bool, // keep the worktree folder
	force *bool, // destroy even with uncommitted changes or unshared commits
	name *string, // destroy the sandbox of this name instead of the current one
) error {
	m, cwd, err := manager()
	if err != nil {
		return err
	}
	res, err := m.Destroy(ctx, sandbox.DestroyOptions{Dir: cwd, Name: deref(name), KeepWorktree: deref(keepWorktree), Force: deref(force)})
	if err != nil {
		var we *sandbox.WouldLoseError
		if errors.As(err, &we) {
			hint := "commit and push what you need, or run again with -force to lose it"
			if len(we.Ignored) > 0 {
				hint = "move the ignored files you need out of the worktree (or into the shared folders, see sandbox:initShared), or run again with -force to lose them"
			}
			return fail(1, err, hint)
		}
		var np *sandbox.NotProvenError
		if errors.As(err, &np) {
			name := np.ID
			if n, ok := sandbox.KTRDR().NameOf(np.ID); ok {
				name = n
			}
			return fail(1, err, "nothing was deleted. If the folder is not this sandbox's, forget the sandbox and keep the folder with go tool mage sandbox:destroy -name="+name+" -keepWorktree")
		}
		return explain(err)
	}
	if res.AlreadyGone {
		fmt.Printf("%s is not registered: nothing to destroy\n", res.ID)
		return nil
	}
	fmt.Printf("Destroyed %s\n", res.ID)
	if res.LeftOnEngine != "" {
		fmt.Printf("Its engine did not answer: when it is back, remove what stays there with:\n  %s\n", res.LeftOnEngine)
	}
	return nil
}

// List shows every sandbox: slot, state, API port, branch and path. Cleans stale
// registry entries and reports unregistered stacks.
func (Sandbox) List(ctx context.Context,
	json *bool, // print JSON for scripts
) error {
	m, _, err := manager()
	if err != nil {
		return err
	}
	m.Out = os.Stderr
	l, err := m.List(ctx)
	if err != nil {
		return explain(err)
	}
	if deref(json) {
		return printJSON(l)
	}
	if len(l.Instances) == 0 {
		fmt.Println("No sandboxes. Create one with: go tool mage sandbox:create <name>")
	} else {
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "INSTANCE\tSLOT\tSTATE\tENGINE\tAPI PORT\tBRANCH\tPATH")
		for _, e := range l.Instances {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", e.ID, e.Slot, e.State, e.Engine, e.APIPort, orDash(e.Branch), e.Path)
		}
		w.Flush()
	}
	for _, e := range l.Instances {
		switch {
		case e.Interrupted != "":
			name, _ := sandbox.KTRDR().NameOf(e.ID)
			what := map[string]string{"creating": "create", "destroying": "destroy"}[e.Interrupted]
			fmt.Printf("Interrupted %s of %s (%s): remove what it left with go tool mage sandbox:destroy -name=%s -force\n", what, e.ID, e.Path, name)
		case e.Removed:
			fmt.Printf("Cleaned stale entry %s (%s): %s\n", e.ID, e.Path, e.Reason)
		case e.State == sandbox.StateMissing:
			name, _ := sandbox.KTRDR().NameOf(e.ID)
			why := "its stack still has containers"
			if l.Warning != "" {
				why = "its stack's state is unknown"
			}
			fmt.Printf("Kept stale entry %s (%s): %s, but %s; remove both with go tool mage sandbox:destroy -name=%s\n", e.ID, e.Path, e.Reason, why, name)
		}
	}
	if l.Warning != "" {
		fmt.Fprintf(os.Stderr, "warning: %s\n  hint: is the Docker engine running? (docker info)\n", l.Warning)
	}
	for _, c := range slices.Sorted(maps.Keys(l.EngineErrors)) {
		fmt.Fprintf(os.Stderr, "warning: engine %s did not answer (its sandboxes' states are unknown): %s\n  hint: docker --context %s info\n", c, l.EngineErrors[c], c)
	}
	for _, o := range l.Orphans {
		fmt.Printf("Unregistered stack %s (%d containers); remove it with: %s\n", o.Project, o.Containers, o.Remedy)
	}
	return nil
}

// Status shows this checkout's sandbox: slot, branch, state of each service, every URL
// and the last gate result. Exit 1 outside a sandbox.
func (Sandbox) Status(ctx context.Context,
	json *bool, // print JSON for scripts (a stable shape)
) error {
	m, cwd, err := manager()
	if err != nil {
		return err
	}
	s, err := m.Status(ctx, cwd)
	if err != nil {
		return explain(err)
	}
	if deref(json) {
		return printJSON(s)
	}
	if s.Warning != "" {
		fmt.Fprintf(os.Stderr, "warning: %s\n  hint: is the Docker engine running? (docker info)\n", s.Warning)
	}
	reg := ""
	if !s.Registered {
		reg = " (not in the registry: run sandbox:list)"
	}
	fmt.Printf("Sandbox %s%s\n  slot %d · branch %s · %s · engine %s\n  path %s\n\nServices:\n", s.ID, reg, s.Slot, orDash(s.Branch), s.State, s.Engine, s.Path)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	for _, svc := range s.Services {
		fmt.Fprintf(w, "  %s\t%s\t%s\n", svc.Service, svc.State, svc.Health)
	}
	w.Flush()
	fmt.Println("\nURLs:")
	for _, u := range s.URLs {
		fmt.Fprintf(w, "  %s\t%s\n", u.Label, u.URL)
	}
	w.Flush()
	switch {
	case s.LastGate == nil:
		fmt.Println("\nStartability gate: not run yet (go tool mage sandbox:up)")
	case s.LastGate.Passed:
		fmt.Printf("\nStartability gate: PASSED at %s in %.1fs\n", s.LastGate.At.Local().Format(time.DateTime), s.LastGate.Elapsed.Seconds())
	default:
		fmt.Printf("\nStartability gate: FAILED at %s: %s\n", s.LastGate.At.Local().Format(time.DateTime), strings.Join(s.LastGate.FailedServices(), ", "))
	}
	return nil
}

// Logs shows the compose logs of this checkout's stack (one service with -service).
func (Sandbox) Logs(ctx context.Context,
	service *string, // only this service, e.g. backend
	follow *bool, // keep streaming
) error {
	m, cwd, err := manager()
	if err != nil {
		return err
	}
	if err := m.Logs(ctx, cwd, deref(service), deref(follow), os.Stdout); err != nil {
		var ee *sandbox.ExitError
		if errors.As(err, &ee) && ee.Code > 0 {
			return mg.Fatal(ee.Code, err.Error()) // compose's own exit code
		}
		return explain(err)
	}
	return nil
}

// skippedForPorts reports whether a slot was passed over because something
// holds its ports (a port conflict, exit 3, rather than a full registry).
func skippedForPorts(nf *sandbox.NoFreeSlotError) bool {
	for _, err := range nf.Skipped {
		var pe *sandbox.PortInUseError
		if errors.As(err, &pe) {
			return true
		}
	}
	return false
}

// explain maps library errors to the contract's exit codes and adds the
// remedy a person needs.
// toolHint names the remedy for the program that failed: git, compose or docker.
func toolHint(e *sandbox.ExitError) string {
	switch {
	case strings.HasPrefix(e.Cmd, "git "):
		return "git refused (its message is above); fix what it names and run the command again. A sandbox left half-made by a killed command is removed with go tool mage sandbox:destroy -name=<name> -force"
	case strings.HasPrefix(e.Cmd, "docker compose "), strings.HasPrefix(e.Cmd, "docker --context ") && strings.Contains(e.Cmd, " compose "):
		return "run again with -v to see compose's output"
	default:
		return "docker failed (its message is above); is the engine running (docker info)?"
	}
}

func explain(err error) error {
	var (
		inv   *sandbox.InvalidNameError
		dir   *sandbox.DirExistsError
		br    *sandbox.BranchInUseError
		wt    *sandbox.WorktreeError
		np    *sandbox.NotProjectError
		ns    *sandbox.NotSandboxError
		as    *sandbox.AlreadySandboxError
		nf    *sandbox.NoFreeSlotError
		se    *sandbox.SlotError
		pe    *sandbox.PortInUseError
		ce    *sandbox.ComposeError
		rc    *sandbox.RegistryCorruptError
		ef    *sandbox.EnvFileError
		no    *sandbox.NotOwnedError
		nr    *sandbox.NotRegisteredError
		el    *sandbox.ElsewhereError
		ar    *sandbox.AlreadyRegisteredError
		cl    *sandbox.ClaimedError
		up    *sandbox.UnsafePathError
		cf    *sandbox.CheckoutFileError
		exitE *sandbox.ExitError
		bn    *sandbox.BranchNameError
		cx    *sandbox.ContextError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return fail(1, err, "interrupted; the registry, env file and worktree are consistent: run the command again to finish")
	case errors.As(err, &inv):
		return fail(1, err, "")
	case errors.As(err, &bn):
		return fail(1, err, "")
	case errors.As(err, &cx) && cx.Reason == "does not exist":
		return fail(1, err, "list the contexts with docker context ls, or create this one: docker context create "+cx.Context+" --docker host=ssh://you@host (or host=tcp://host:2375)")
	case errors.As(err, &cx):
		return fail(1, err, "nothing was created; check that the engine answers (docker --context "+cx.Context+" info: is it running, is the host reachable, does ssh log in without a prompt?) and run the command again")
	case errors.As(err, &dir):
		return fail(3, err, "pick another name, or remove the folder if it is not needed")
	case errors.As(err, &br):
		return fail(2, err, "use another branch with -branch=B, or destroy the sandbox in "+br.Worktree)
	case errors.As(err, &wt):
		return fail(2, err, "")
	case errors.As(err, &np):
		return fail(2, err, "run this in a checkout of the ktrdr project (main or a worktree)")
	case errors.As(err, &ns):
		return fail(1, err, "create one with go tool mage sandbox:create <name>, or adopt this checkout with go tool mage sandbox:init")
	case errors.As(err, &as):
		return fail(1, err, "see it with go tool mage sandbox:status")
	case errors.As(err, &nf):
		return fail(1, err, "free a slot with go tool mage sandbox:destroy -name=<name> (see go tool mage sandbox:list)")
	case errors.As(err, &se):
		return fail(1, err, "omit -slot to take the lowest free slot (see go tool mage sandbox:list)")
	case errors.As(err, &pe):
		return fail(3, err, "stop what holds those ports (for a sandbox: go tool mage sandbox:down in its checkout), then run sandbox:up again")
	case errors.As(err, &rc) && rc.ID != "":
		return fail(1, err, registryEntryHint(rc))
	case errors.As(err, &up):
		return fail(1, err, fmt.Sprintf("the sandbox tool did not make %s: look at what it is, move it aside (mv %s %s.bad), then run the command again", up.Path, up.Path, up.Path))
	case errors.As(err, &cf):
		return fail(1, err, "the checkout's own regular file is needed here (a symlink may point only inside the checkout): restore it (git checkout -- <file>, or copy the file the link points to in its place), then run the command again")
	case errors.Is(err, sandbox.ErrEnvSymlink):
		return fail(1, err, "a sandbox's .env.sandbox is written by sandbox:create and sandbox:init, never linked: remove the symlink, then run go tool mage sandbox:init in the checkout if it is to be a sandbox")
	case errors.As(err, &rc):
		return fail(1, err, "then run go tool mage sandbox:init in each sandbox's folder (sandbox:create makes them beside the main checkout as ktrdr--<name>; adopted clones are where you adopted them)")
	case errors.As(err, &ef):
		return fail(1, err, "fix the key named above, or remove the sandbox by name with go tool mage sandbox:destroy -name=<name> (names: go tool mage sandbox:list) and create it again")
	case errors.As(err, &no):
		return fail(1, err, "that project was not started by this sandbox; inspect it with docker compose -p "+no.Project+" ps")
	case errors.As(err, &el) && el.Gone:
		return fail(1, err, "if this folder is that sandbox, moved here, run go tool mage sandbox:init in it: the entry is moved to this path")
	case errors.As(err, &cl):
		return fail(1, err, "one of the two folders is a copy: remove the copy's .env.sandbox (go tool mage sandbox:init -name=<new name> there makes it a sandbox of its own), then run go tool mage sandbox:init in the other")
	case errors.As(err, &el):
		return fail(1, err, "this folder is a copy of "+el.Registered+": run sandbox commands there. To make this folder a sandbox of its own, remove its .env.sandbox and run go tool mage sandbox:init -name=<new name>")
	case errors.As(err, &ar):
		name := ar.ID
		if n, ok := sandbox.KTRDR().NameOf(ar.ID); ok {
			name = n
		}
		return fail(1, err, fmt.Sprintf("pick another name, or remove the existing sandbox with go tool mage sandbox:destroy -name=%s (an entry whose folder is gone is kept while it has containers, or for a short grace period after it was written)", name))
	case errors.As(err, &nr):
		return fail(1, err, "see go tool mage sandbox:list")
	case errors.Is(err, sandbox.ErrNoCompose):
		return fail(1, err, "install the Docker Compose v2 plugin (docker compose version must print v2.x); .ci/run shows how to build it from source")
	case errors.As(err, &ce):
		return fail(1, err, "run again with -v to see compose's output")
	case errors.As(err, &exitE):
		return fail(1, err, toolHint(exitE))
	default:
		return fail(1, err, "")
	}
}

// registryEntryHint is the remedy for one invalid registry entry.
func registryEntryHint(rc *sandbox.RegistryCorruptError) string {
	fix := fmt.Sprintf("nothing was deleted on its account; the other entries are fine: correct or remove entry %q in %s by hand (its id must be ktrdr--<name>, its paths absolute, its slot its own), or move the file aside and run go tool mage sandbox:init in each sandbox's folder", rc.ID, rc.Path)
	if rc.Field == "slot" && strings.Contains(rc.Reason, "outside") {
		return "if you lowered max_slot in ~/.ktrdr/sandbox/config.json, raise it again so that the entry's slot fits; otherwise " + fix
	}
	return fix
}

// Sync pushes this sandbox's local folders (./data, the shared folders, every folder its
// stack mounts) again to its volumes on another Docker engine; nothing is copied back.
func (Sandbox) Sync(ctx context.Context,
	mirror *bool, // also delete what only the volumes hold (files deleted here, and what containers wrote there)
	json *bool, // print what was synced as JSON
) error {
	m, cwd, err := manager(json)
	if err != nil {
		return err
	}
	res, err := m.Sync(ctx, cwd, deref(mirror))
	if err != nil {
		return explain(err)
	}
	if deref(json) {
		return printJSON(res)
	}
	if res.Engine == "local" {
		fmt.Printf("%s runs on the local engine, which mounts its folders directly: nothing to sync\n", res.ID)
		return nil
	}
	fmt.Printf("Synced %d folder(s) of %s to engine %s\n", len(res.Volumes), res.ID, res.Engine)
	return nil
}

// Ports shows the port plan of this checkout's stack file: every published-port variable,
// its rule and its port in each sandbox slot (or in slot N).
func (Sandbox) Ports(ctx context.Context,
	slot *int, // show only this slot
	json *bool, // print the plan as JSON
) error {
	m, cwd, err := manager(json)
	if err != nil {
		return err
	}
	plan, err := m.Ports(ctx, cwd, deref(slot))
	if err != nil {
		return explain(err)
	}
	if deref(json) {
		return printJSON(plan)
	}
	fmt.Printf("Ports of %s (slots %d–%d):\n", plan.File, plan.MinSlot, plan.MaxSlot)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
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
	if err := w.Flush(); err != nil {
		return err
	}
	for _, l := range plan.Literal {
		fmt.Printf("warning: service %s publishes the literal host port %s: every slot publishes it, so only one sandbox (or the main stack) at a time can run; use ${VAR:-%d} in the file\n", l.Service, l.Key, l.Slot0)
	}
	return nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// verboseOut is where compose's own output goes: stderr with -v, else nowhere
// (it is kept for the error message). A nil interface, never a nil *os.File.
func verboseOut() io.Writer {
	if mg.Verbose() {
		return os.Stderr
	}
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sortedSlots(m map[int]string) []int {
	s := make([]int, 0, len(m))
	for k := range m {
		s = append(s, k)
	}
	sort.Ints(s)
	return s
}
