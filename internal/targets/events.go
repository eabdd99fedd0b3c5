package targets

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// printEvents returns a Manager.Events function printing each step as a
// line for a person on w.
func printEvents(w io.Writer) func(sandbox.Event) {
	return func(e sandbox.Event) { fmt.Fprintln(w, eventText(e)) }
}

// eventText is the line a person reads for a step of a long operation.
func eventText(e sandbox.Event) string {
	switch e.Kind {
	case sandbox.EvSlotReserved:
		return fmt.Sprintf("Reserved slot %d for %s", e.Slot, e.ID)
	case sandbox.EvWorktreeCreated:
		if e.NewBranch {
			return fmt.Sprintf("Created worktree %s on new branch %s", e.Path, e.Branch)
		}
		return fmt.Sprintf("Created worktree %s on branch %s", e.Path, e.Branch)
	case sandbox.EvStarting:
		return fmt.Sprintf("Starting %s (slot %d, API port %d)…", e.ID, e.Slot, e.Port)
	case sandbox.EvAlreadyRunning:
		return fmt.Sprintf("%s is already running (%d/%d services): nothing to start", e.ID, e.Running, e.Total)
	case sandbox.EvPartlyStartedStopped:
		return fmt.Sprintf("Stopped the partly started %s again (data kept)", e.ID)
	case sandbox.EvPortsAdded:
		return fmt.Sprintf("Added the ports of new variables of %s to %s", e.Source, e.Path)
	case sandbox.EvImageBuilding:
		if e.Engine != "" {
			return fmt.Sprintf("Building the stand-in image %s for %s on engine %s…", e.Image, e.Arch, e.Engine)
		}
		return fmt.Sprintf("Building the stand-in image %s from %s…", e.Image, e.Source)
	case sandbox.EvImageLoading:
		return fmt.Sprintf("Loading the stand-in image %s into engine %s…", e.Image, e.Engine)
	case sandbox.EvVolumeSynced:
		return fmt.Sprintf("Synced %s to volume %s on engine %s", e.Source, e.Volume, e.Engine)
	case sandbox.EvMainStackStarting:
		return fmt.Sprintf("Starting the main stack from %s as project %s on the standard ports…", e.Source, e.ID)
	case sandbox.EvStackRemoved:
		return fmt.Sprintf("Removed the stack of %s (containers, network, volumes)", e.ID)
	case sandbox.EvEngineUnreachable:
		return fmt.Sprintf("Engine %s did not answer: the stack of %s and its volumes stay there (%s)", e.Engine, e.ID, e.Err)
	case sandbox.EvWorktreeRemoved:
		return fmt.Sprintf("Removed worktree %s", e.Path)
	case sandbox.EvWorktreeAlreadyGone:
		return fmt.Sprintf("Worktree %s was already gone", e.Path)
	case sandbox.EvCheckoutKept:
		return fmt.Sprintf("Kept the checkout %s (removed its %s)", e.Path, e.Source)
	case sandbox.EvBranchDeleted:
		return fmt.Sprintf("Deleted branch %s (created by this sandbox)", e.Branch)
	case sandbox.EvRefLockRemoved:
		if e.Branch == "" {
			return fmt.Sprintf("Removed %s, left by a git killed while it changed this sandbox's branch", e.Path)
		}
		return fmt.Sprintf("Removed %s, left by a git killed while it wrote branch %s", e.Path, e.Branch)
	case sandbox.EvWorktreeRecordRemoved:
		return fmt.Sprintf("Removed %s, git's record of worktree %s that a killed git left half written", e.Path, e.Source)
	case sandbox.EvStillWaiting:
		return fmt.Sprintf("%s still waits for %s (%s), %s…", e.Service, e.Source, strings.TrimPrefix(e.Condition, "service_"), e.Elapsed)
	case sandbox.EvOptionalDependencySkipped:
		return fmt.Sprintf("Starting %s without its optional dependency %s, which %s", e.Service, e.Source, e.Err)
	case sandbox.EvBudgetUnknown:
		return fmt.Sprintf("Memory budget not checked: engine %s did not say how much memory it has free (%s)", e.Engine, e.Err)
	case sandbox.EvStackStopped:
		return fmt.Sprintf("Stopped %s (%s; data kept)", e.ID, e.Path)
	case sandbox.EvStackStopFailed:
		return fmt.Sprintf("Could not stop %s (%s): %s", e.ID, e.Path, e.Err)
	case sandbox.EvShellStarting:
		return fmt.Sprintf("%s in service %s of sandbox %s (exit to leave)", e.Source, e.Service, e.ID)
	case sandbox.EvNetworkLeft:
		return fmt.Sprintf("Warning: %s is down, but the engine would not remove its network %s (it counts an endpoint that no container has; an engine fault): restart the Docker engine, then docker network rm %s", e.ID, e.Source, e.Source)
	case sandbox.EvStackWarning:
		return "Warning: " + stackWarningText(sandbox.StackWarning{Service: e.Service, Text: e.Err}) + " (" + filepath.Base(e.Source) + ")"
	default:
		return fmt.Sprintf("%s %+v", e.Kind, e)
	}
}
