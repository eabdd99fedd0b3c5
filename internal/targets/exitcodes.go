package targets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/ktrdr/sandboxkit/sandbox/shared"

	"github.com/magefile/mage/mg"

	"github.com/ktrdr/sandboxkit/sandbox"
	"github.com/ktrdr/sandboxkit/sandbox/merge"
)

// The targets' names, as mage lists them.
const (
	tCreate     = "sandbox:create"
	tInit       = "sandbox:init"
	tUp         = "sandbox:up"
	tPorts      = "sandbox:ports"
	tDown       = "sandbox:down"
	tDestroy    = "sandbox:destroy"
	tList       = "sandbox:list"
	tSync       = "sandbox:sync"
	tStatus     = "sandbox:status"
	tLogs       = "sandbox:logs"
	tShell      = "sandbox:shell"
	tInitShared = "sandbox:initShared"
	tURL        = "sandbox:url"
	tImages     = "stack:images"
	tApply      = "merge:apply"
	tVerify     = "merge:verify"
	tRollback   = "merge:rollback"
)

// composeCode stands for the exit code of the compose command itself
// (sandbox:logs passes it through; for sandbox:shell it is the shell's, as
// compose exec passes that on).
const composeCode = -1

// upCode stands for sandbox:up's exit code, which sandbox:create -up exits
// with when the sandbox was made but did not start.
const upCode = -2

// exitCode is one exit code of a target and what it means to a person.
type exitCode struct {
	Code    int
	Meaning string
}

// exitCodes is the contract: every exit code of every target. README.md's
// target table shows exactly this (TestReadmeExitCodes).
var exitCodes = map[string][]exitCode{
	tCreate:     {{0, ""}, {1, "no slot / port conflict / unusable context"}, {2, "not a checkout of this project / worktree failed"}, {3, "folder exists"}, {upCode, "(the sandbox stays)"}},
	tInit:       {{0, ""}, {1, "already a sandbox"}, {2, "not a checkout of this project"}, {3, "port conflict"}},
	tUp:         {{0, ""}, {1, "compose failed / a folder outside the checkout (another engine)"}, {2, "gate failed (a hook too)"}, {3, "port conflict"}, {4, "external network or volume missing"}, {5, "not enough free memory"}, {6, "secrets refused (file not private / secrets_command failed)"}},
	tPorts:      {{0, ""}, {1, ""}},
	tDown:       {{0, ""}, {1, "failed (-all: any of them)"}},
	tDestroy:    {{0, ""}, {1, "refused / failed"}},
	tList:       {{0, ""}, {1, "registry damaged or unreadable"}},
	tSync:       {{0, ""}, {1, ""}},
	tStatus:     {{0, ""}, {1, "not a sandbox"}},
	tLogs:       {{composeCode, ""}, {1, "not a sandbox / compose did not run"}},
	tShell:      {{composeCode, "(the shell's)"}, {1, "not a sandbox / no such service / service not running"}},
	tInitShared: {{0, ""}, {1, ""}},
	tURL:        {{0, ""}, {1, ""}},
	tImages:     {{0, ""}, {1, ""}},
	tApply:      {{0, ""}, {1, "refused / failed (nothing changed)"}},
	tVerify:     {{0, "pass"}, {1, "fail"}},
	tRollback:   {{0, ""}, {1, ""}},
}

// renderCodes writes a target's exit codes as the README's table does:
// "0 · 1 already a sandbox · 2 …".
func renderCodes(codes []exitCode) string {
	parts := make([]string, len(codes))
	for i, c := range codes {
		n := strconv.Itoa(c.Code)
		switch c.Code {
		case composeCode:
			n = "compose's"
		case upCode:
			n = "with -up: sandbox:up's"
		}
		parts[i] = strings.TrimSpace(n + " " + c.Meaning)
	}
	return strings.Join(parts, " · ")
}

// rule maps one category of error to an exit code and the hint a person
// needs. Rules are tried in order; the first that matches wins.
type rule struct {
	only  []string         // the targets it applies to; nil: every target
	code  int              // composeCode: the compose command's own code
	match func(error) bool // nil matches every error
	hint  func(error) string
}

// on restricts a rule to some targets.
func (r rule) on(targets ...string) rule { r.only = targets; return r }

func (r rule) appliesTo(target string) bool { return r.only == nil || slices.Contains(r.only, target) }

// typed matches errors that are or wrap a T for which cond (if any) holds,
// and renders the hint from that T.
func typed[T error](code int, hint func(T) string, cond ...func(T) bool) rule {
	find := func(err error) (T, bool) {
		var t T
		if !errors.As(err, &t) {
			return t, false
		}
		for _, c := range cond {
			if !c(t) {
				return t, false
			}
		}
		return t, true
	}
	return rule{code: code,
		match: func(err error) bool { _, ok := find(err); return ok },
		hint:  func(err error) string { t, _ := find(err); return hint(t) }}
}

// is matches errors that wrap one of the sentinels.
func is(code int, hint string, sentinels ...error) rule {
	return rule{code: code, hint: hintText(hint), match: func(err error) bool {
		return slices.ContainsFunc(sentinels, func(s error) bool { return errors.Is(err, s) })
	}}
}

// anyError matches every error: the last rule of a target whose hint is its own.
func anyError(code int, hint string) rule { return rule{code: code, hint: hintText(hint)} }

func hintText(s string) func(error) string { return func(error) string { return s } }

func fixed[T error](s string) func(T) string { return func(T) string { return s } }

// rules is the one table from error categories to exit codes and hints.
// Target-specific rules come first; the last rule catches every error.
var rules = []rule{
	// sandbox:create -up: the sandbox was made, its start failed.
	typed(upCode, startFailedHint).on(tCreate),

	// Failures of the edge itself.
	typed(1, fixed[*homeError]("set HOME")),
	typed(1, fixed[*settingsError]("fix or remove the settings file")),
	typed(1, fixed[*acceptError]("name each intended change as <service>.<field> the way the report shows it, e.g. -accept=db.image,backend.environment")),

	// sandbox:init
	typed(1, func(e *sandbox.ReregisterError) string {
		again := "go tool mage sandbox:init"
		if e.Standin {
			again += " -standin"
		}
		return fmt.Sprintf("to adopt the checkout afresh (a free slot, new ports): stop its stack if it runs (docker compose -p %s down), remove %s, then run %s", e.ID, e.EnvPath, again)
	}).on(tInit),
	typed(1, func(e *sandbox.EnvFileError) string {
		return "fix the key named above, or remove " + e.Path + " and run go tool mage sandbox:init again to adopt the checkout afresh"
	}).on(tInit),
	typed(1, func(e *sandbox.UnrepairedMoveError) string {
		return "let git know where the worktree is now (git worktree repair, run in " + e.Here + "), then run go tool mage sandbox:init again"
	}).on(tInit),
	typed(1, fixed[*sandbox.ClaimCheckError]("is the Docker engine running (docker info)? init asks it which folder runs the stack before it registers an existing .env.sandbox; start it and run sandbox:init again")).on(tInit),
	typed(3, fixed[*sandbox.SlotError]("free those ports, or pick another slot with -slot=N (see go tool mage sandbox:list)"), func(e *sandbox.SlotError) bool {
		var pe *sandbox.PortInUseError
		return errors.As(e, &pe)
	}).on(tInit),
	typed(3, fixed[*sandbox.NoFreeSlotError]("free the ports named above, or destroy a sandbox you no longer need (go tool mage sandbox:list)"), skippedForPorts).on(tInit),

	// sandbox:up
	typed(4, func(e *sandbox.MissingExternalError) string {
		return "create them, then run sandbox:up again: " + strings.Join(e.Commands(), "; ")
	}).on(tUp),
	typed(1, fixed[*sandbox.SubnetPoolExhaustedError]("widen subnet_pool in ~/.ktrdr/sandbox/config.json (one CIDR or a list, e.g. {\"subnet_pool\": [\"172.16.0.0/16\", \"10.213.0.0/16\"]}: private ranges your network does not use), or free subnets by destroying sandboxes you no longer need (go tool mage sandbox:list, then sandbox:destroy -name=<name>); sandbox:down keeps a sandbox's subnets")).on(tUp),
	typed(1, func(e *sandbox.SubnetConflictError) string {
		return "a subnet the file sets serves one stack at a time: stop the stack that holds it, or remove network " + e.Network + "'s ipam section from the file so that each sandbox gets a subnet of its own from the suite's pool"
	}).on(tUp),
	is(2, "inspect with go tool mage sandbox:logs -service=<service>; fix, then run sandbox:up again", sandbox.ErrGateFailed).on(tUp),
	typed(5, lowMemoryHint).on(tUp),
	typed(6, func(e *sandbox.SecretsFileError) string {
		if e.Fix == "" {
			return "nothing was started; fix the secrets file, then run sandbox:up again"
		}
		return "nothing was started: " + e.Fix + ", then run sandbox:up again"
	}).on(tUp),
	typed(6, func(e *sandbox.SecretsCommandError) string {
		return "nothing was started; run the secrets_command of ~/.ktrdr/sandbox/config.json yourself (its standard output must be KEY=value lines, what ~/.ktrdr/sandbox/secrets.env holds), fix it, then run sandbox:up again"
	}).on(tUp),
	typed(1, func(e *sandbox.OutsideFolderError) string { return outsideHint(tUp, e) }).on(tUp),
	typed(1, fixed[*leftRunningError]("the stack was started and keeps running; go tool mage sandbox:up again re-runs the gate, sandbox:down stops it")).on(tUp),

	// sandbox:sync
	typed(1, func(e *sandbox.OutsideFolderError) string { return outsideHint(tSync, e) }).on(tSync),

	// sandbox:down
	typed(1, fixed[*allVolumesError]("-all stops every sandbox and keeps their data; to remove one sandbox's data run go tool mage sandbox:down -volumes in its folder (or sandbox:destroy -name=<name> to remove it for good)")).on(tDown),
	typed(1, func(e *sandbox.DownAllError) string {
		return "the others were stopped; stop each one named with go tool mage sandbox:down in its folder (or remove it with go tool mage sandbox:destroy -name=" + nameOf(e.Failed[0].ID) + "), or fix the cause and run sandbox:down -all again"
	}).on(tDown),

	// sandbox:destroy
	typed(1, func(e *sandbox.WouldLoseError) string {
		if len(e.Ignored) > 0 {
			return "move the ignored files you need out of the worktree (or into the shared folders, see sandbox:initShared), or run again with -force to lose them"
		}
		return "commit and push what you need, or run again with -force to lose it"
	}).on(tDestroy),
	typed(1, func(e *sandbox.NotProvenError) string {
		return "nothing was deleted. If the folder is not this sandbox's, forget the sandbox and keep the folder with go tool mage sandbox:destroy -name=" + nameOf(e.ID) + " -keepWorktree"
	}).on(tDestroy),

	// sandbox:logs: compose's own exit code.
	typed(composeCode, fixed[*driver.ExitError](""), func(e *driver.ExitError) bool { return e.Code > 0 }).on(tLogs),

	// sandbox:shell: the shell's own exit status, which compose exec passes on.
	typed(1, func(e *sandbox.ShellServiceError) string {
		if e.NotRunning {
			return "start the stack with go tool mage sandbox:up (go tool mage sandbox:status shows what runs), or pick a running service with -service=S"
		}
		return "pick one of the services named above with -service=S"
	}).on(tShell),
	typed(composeCode, fixed[*driver.ExitError](""), func(e *driver.ExitError) bool { return e.Code > 0 }).on(tShell),

	// sandbox:initShared
	is(1, "interrupted: what this run had copied or created was removed again and replaced files were put back; run it again to copy", context.Canceled, context.DeadlineExceeded).on(tInitShared),
	typed(1, func(e *shared.ConflictError) string {
		if len(e.Clashes) > 0 {
			return "move the clashing paths out of " + e.Root + ", then run it again"
		}
		return "run it again with -merge to overwrite them with the backup's version"
	}).on(tInitShared),
	is(1, "check the -from path", fs.ErrNotExist).on(tInitShared),
	anyError(1, "nothing was left half done: what this run had copied or created was removed again; fix the cause above and run it again").on(tInitShared),

	// sandbox:url
	is(1, "a sandbox's .env.sandbox is written by sandbox:create and sandbox:init, never linked: remove the symlink (or pass -port=N)", sandbox.ErrEnvSymlink).on(tURL),
	typed(1, func(e *sandbox.EnvFileError) string {
		return "the tool writes " + e.Key + " as plain decimal digits (e.g. 8001, no sign, no leading zero): fix it in " + e.Path + ", or pass -port=N"
	}, func(e *sandbox.EnvFileError) bool { return e.Key != "" }).on(tURL),
	anyError(1, "").on(tURL),

	// stack:images
	is(1, "stand-in mode's database is the PostgreSQL server of this machine's Debian packages, packed into an image: install it with apt-get install postgresql (its service need not run), then run the command again", driver.ErrNoHostPostgres).on(tImages, tUp, tVerify),
	anyError(1, "run it from the repository root; it needs Go and a running Docker engine").on(tImages),

	// merge:apply, merge:verify, merge:rollback
	is(1, "roll it back first with `go tool mage merge:rollback` (or scripts/sandbox-rollback.sh), then apply again", merge.ErrMergeApplied).on(tApply),
	typed(1, func(e *refusedMergeError) string {
		if h := acceptHint(tApply, e.report); h != "" {
			return h
		}
		return "docker-compose.yml is unchanged; fix the source and run merge:apply again"
	}).on(tApply),
	typed(1, func(e *verifyFailedError) string {
		hint := "fix docker-compose.yml, or restore the pre-merge file with `go tool mage merge:rollback`"
		if h := acceptHint(tVerify, e.report); h != "" {
			hint += "; " + h
		}
		return hint
	}).on(tVerify),
	typed(1, func(e *rollbackError) string {
		if e.res.Tag == "" {
			return ""
		}
		rel := e.res.Rel
		if rel == "" {
			rel = "docker-compose.yml"
		}
		return fmt.Sprintf("the pre-merge file is at tag %s: git show %s:%s", e.res.Tag, e.res.Tag, rel)
	}).on(tRollback),
	anyError(1, "").on(tApply, tVerify, tRollback),

	// Every sandbox target.
	is(1, "interrupted; the registry, env file and worktree are consistent: run the command again to finish", context.Canceled),
	typed(1, fixed[*sandbox.InvalidNameError]("")),
	typed(1, fixed[*sandbox.AllowSyncError]("-allowSync and allow_sync in ~/.ktrdr/sandbox/config.json take absolute folders, e.g. -allowSync=/srv/ktrdr-data,/mnt/big/models")),
	typed(1, fixed[*sandbox.BranchNameError]("")),
	typed(1, func(e *sandbox.ContextError) string {
		return "list the contexts with docker context ls, or create this one: docker context create " + e.Context + " --docker host=ssh://you@host (or host=tcp://host:2375)"
	}, func(e *sandbox.ContextError) bool { return e.Reason == "does not exist" }),
	typed(1, func(e *sandbox.ContextError) string {
		return "nothing was created; check that the engine answers (docker --context " + e.Context + " info: is it running, is the host reachable, does ssh log in without a prompt?) and run the command again"
	}),
	typed(3, fixed[*sandbox.DirExistsError]("pick another name, or remove the folder if it is not needed")).on(tCreate),
	typed(2, func(e *sandbox.BranchInUseError) string {
		return "use another branch with -branch=B, or destroy the sandbox in " + e.Worktree
	}).on(tCreate),
	typed(2, fixed[*sandbox.WorktreeError]("")).on(tCreate),
	typed(2, fixed[*sandbox.NotProjectError]("run this in a checkout of the ktrdr project (main or a worktree)")).on(tCreate, tInit),
	typed(1, fixed[*sandbox.NotProjectError]("run this in a checkout of the ktrdr project (main or a worktree)")),
	typed(1, fixed[*sandbox.NotSandboxError]("create one with go tool mage sandbox:create <name>, or adopt this checkout with go tool mage sandbox:init")),
	typed(1, fixed[*sandbox.AlreadySandboxError]("see it with go tool mage sandbox:status")),
	typed(1, fixed[*sandbox.NoFreeSlotError]("free a slot with go tool mage sandbox:destroy -name=<name> (see go tool mage sandbox:list)")),
	typed(1, fixed[*sandbox.SlotError]("omit -slot to take the lowest free slot (see go tool mage sandbox:list)")),
	typed(3, fixed[*sandbox.PortInUseError]("stop what holds those ports (for a sandbox: go tool mage sandbox:down in its checkout), then run sandbox:up again")).on(tUp, tInit),
	typed(1, fixed[*sandbox.PortInUseError]("stop what holds those ports (for a sandbox: go tool mage sandbox:down in its checkout), then run sandbox:up again")),
	typed(1, registryEntryHint, func(e *sandbox.RegistryCorruptError) bool { return e.ID != "" }),
	typed(1, func(e *sandbox.UnsafePathError) string {
		return fmt.Sprintf("the sandbox tool did not make %s: look at what it is, move it aside (mv %s %s.bad), then run the command again", e.Path, e.Path, e.Path)
	}),
	typed(1, func(e *sandbox.CheckoutFileError) string {
		if e.Via != "" {
			return "compose files may make compose read only the checkout's own regular files (at most 1 MiB): change the " + strings.Fields(e.Via)[0] + " that names it, or copy the file into the checkout and name that copy; nothing was read from it"
		}
		return "the checkout's own regular file is needed here (a symlink may point only inside the checkout): restore it (git checkout -- <file>, or copy the file the link points to in its place), then run the command again"
	}),
	is(1, "a sandbox's .env.sandbox is written by sandbox:create and sandbox:init, never linked: remove the symlink, then run go tool mage sandbox:init in the checkout if it is to be a sandbox", sandbox.ErrEnvSymlink),
	typed(1, func(e *sandbox.RegistryCorruptError) string {
		return fmt.Sprintf("inspect it and fix it by hand, or move it aside (mv %s %s.bad) and run go tool mage sandbox:init in each sandbox's folder (sandbox:create makes them beside the main checkout as ktrdr--<name>; adopted clones are where you adopted them): init registers each again from its .env.sandbox", e.Path, e.Path)
	}),
	typed(1, fixed[*sandbox.EnvFileError]("fix the key named above, or remove the sandbox by name with go tool mage sandbox:destroy -name=<name> (names: go tool mage sandbox:list) and create it again")),
	typed(1, func(e *sandbox.NotOwnedError) string {
		return "that project was not started by this sandbox; inspect it with docker compose -p " + e.Project + " ps"
	}),
	typed(1, fixed[*sandbox.ElsewhereError]("if this folder is that sandbox, moved here, run go tool mage sandbox:init in it: the entry is moved to this path"), func(e *sandbox.ElsewhereError) bool { return e.Gone }),
	typed(1, fixed[*sandbox.ClaimedError]("one of the two folders is a copy: remove the copy's .env.sandbox (go tool mage sandbox:init -name=<new name> there makes it a sandbox of its own), then run go tool mage sandbox:init in the other")),
	typed(1, func(e *sandbox.ElsewhereError) string {
		return "this folder is a copy of " + e.Registered + ": run sandbox commands there. To make this folder a sandbox of its own, remove its .env.sandbox and run go tool mage sandbox:init -name=<new name>"
	}),
	typed(1, func(e *sandbox.AlreadyRegisteredError) string {
		return fmt.Sprintf("pick another name, or remove the existing sandbox with go tool mage sandbox:destroy -name=%s (an entry whose folder is gone is kept while it has containers, or for a short grace period after it was written)", nameOf(e.ID))
	}),
	typed(1, fixed[*sandbox.NotRegisteredError]("see go tool mage sandbox:list")),
	is(1, "install the Docker Compose v2 plugin (docker compose version must print v2.x); .ci/run shows how to build it from source", driver.ErrNoCompose),
	typed(1, fixed[*sandbox.ComposeError]("run again with -v to see compose's output")),
	typed(1, toolHint),
	anyError(1, ""),
}

// exit turns the error a target ends with into mage's error carrying the
// exit code and, on its own line, the hint of the first rule that matches.
func exit(target string, err error) error {
	if err == nil {
		return nil
	}
	code, hint := classify(target, err)
	if hint == "" {
		return mg.Fatal(code, err.Error())
	}
	return mg.Fatalf(code, "%v\n  hint: %s", err, hint)
}

// classify returns the exit code and hint of err for target.
func classify(target string, err error) (int, string) {
	for _, r := range rules {
		if !r.appliesTo(target) || (r.match != nil && !r.match(err)) {
			continue
		}
		code := r.code
		switch code {
		case composeCode:
			var ee *driver.ExitError
			errors.As(err, &ee)
			code = ee.Code
		case upCode:
			var se *startFailedError
			errors.As(err, &se)
			code = se.code
		}
		return code, r.hint(err)
	}
	return 1, ""
}

// exitAs is deferred by every target: it maps the error the target
// returns through the table.
func exitAs(target string, err *error) { *err = exit(target, *err) }

// Errors of the edge: what went wrong before or after the library ran, or
// a library error with what its hint needs.
type (
	homeError     struct{ err error }
	settingsError struct{ err error }
	acceptError   struct{ err error }
	// leftRunningError: up was interrupted after compose started the stack.
	leftRunningError struct{ err error }
	// allVolumesError: sandbox:down -all -volumes, refused.
	allVolumesError struct{}
	// refusedMergeError: merge:apply refused, with the report it made.
	refusedMergeError struct {
		err    error
		report merge.Report
	}
	// verifyFailedError: items of merge:verify's checklist failed.
	verifyFailedError struct{ report merge.Report }
	// rollbackError: merge:rollback failed, with what it found.
	rollbackError struct {
		err error
		res merge.Result
	}
)

func (e *homeError) Error() string        { return "find the home folder: " + e.err.Error() }
func (e *homeError) Unwrap() error        { return e.err }
func (e *settingsError) Error() string    { return e.err.Error() }
func (e *settingsError) Unwrap() error    { return e.err }
func (e *acceptError) Error() string      { return e.err.Error() }
func (e *acceptError) Unwrap() error      { return e.err }
func (e *leftRunningError) Error() string { return e.err.Error() }
func (e *allVolumesError) Error() string {
	return "sandbox:down -all -volumes: refused; -all stops every running sandbox and keeps its data, it never removes the data of them all"
}
func (e *leftRunningError) Unwrap() error { return e.err }
func (e *refusedMergeError) Error() string {
	return e.err.Error()
}
func (e *refusedMergeError) Unwrap() error { return e.err }
func (e *verifyFailedError) Error() string {
	return fmt.Sprintf("merge:verify: %d of %d items failed for %s", len(e.report.Failed()), len(e.report.Items), e.report.File)
}
func (e *rollbackError) Error() string { return e.err.Error() }
func (e *rollbackError) Unwrap() error { return e.err }

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

// toolHint names the remedy for the program that failed: git, compose or docker.
func toolHint(e *driver.ExitError) string {
	switch {
	case strings.HasPrefix(e.Cmd, "git "):
		return "git refused (its message is above); fix what it names and run the command again. A sandbox left half-made by a killed command is removed with go tool mage sandbox:destroy -name=<name> -force"
	case strings.HasPrefix(e.Cmd, "docker compose "), strings.HasPrefix(e.Cmd, "docker --context ") && strings.Contains(e.Cmd, " compose "):
		return "run again with -v to see compose's output"
	default:
		return "docker failed (its message is above); is the engine running (docker info)?"
	}
}

// lowMemoryHint is the remedy for up refused by the memory budget: stop
// one of the sandboxes named, or all of them, or change the floor.
func lowMemoryHint(e *sandbox.LowMemoryError) string {
	floor := "min_free_memory in ~/.ktrdr/sandbox/config.json sets the floor (e.g. \"1GiB\"; 0 turns the check off)"
	if len(e.Top) == 0 {
		return "free memory on engine " + e.Engine + " (stop containers you do not need), or lower it: " + floor
	}
	return fmt.Sprintf("stop a sandbox you do not need now (data kept): cd %s && go tool mage sandbox:down, or every running sandbox with go tool mage sandbox:down -all; then run sandbox:up again. %s", e.Top[0].Path, floor)
}

// registryEntryHint is the remedy for one invalid registry entry.
func registryEntryHint(rc *sandbox.RegistryCorruptError) string {
	fix := fmt.Sprintf("nothing was deleted on its account; the other entries are fine: correct or remove entry %q in %s by hand (its id must be ktrdr--<name>, its paths absolute, its slot its own), or move the file aside (mv %s %s.bad) and run go tool mage sandbox:init in each sandbox's folder", rc.ID, rc.Path, rc.Path, rc.Path)
	if rc.Field == "slot" && strings.Contains(rc.Reason, "outside") {
		return "if you lowered max_slot in ~/.ktrdr/sandbox/config.json, raise it again so that the entry's slot fits; otherwise " + fix
	}
	return fix
}

// nameOf is the sandbox name of an instance id (the id itself if it is none).
func nameOf(id string) string {
	if n, ok := sandbox.KTRDR().NameOf(id); ok {
		return n
	}
	return id
}

// outsideHint is the remedy for folders refused on another engine: mount
// folders of the checkout or the shared root, or allow exactly these.
func outsideHint(target string, e *sandbox.OutsideFolderError) string {
	hint := "nothing was made on engine " + e.Engine + ". Mount folders inside the checkout or the shared root instead (go tool mage sandbox:initShared fills ~/.ktrdr/shared), or run the sandbox on the local engine"
	allowed := e.Allowed()
	if len(allowed) == 0 {
		return hint
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	return fmt.Sprintf("%s. If engine %s may hold a copy of exactly these folders: go tool mage %s -allowSync=%s, or for good \"allow_sync\": [%s] in ~/.ktrdr/sandbox/config.json (each allows that folder only, not what lies below it)",
		hint, e.Engine, target, strings.Join(allowed, ","), strings.Join(quoted, ", "))
}
