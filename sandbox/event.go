package sandbox

import "time"

// EventKind names one step of a long operation.
type EventKind string

// The steps the Manager reports, with the Event fields each one sets.
const (
	EvSlotReserved              EventKind = "slot_reserved"               // ID, Slot
	EvWorktreeCreated           EventKind = "worktree_created"            // Path, Branch, NewBranch
	EvStarting                  EventKind = "starting"                    // ID (the compose project), Slot, Port (the API's)
	EvAlreadyRunning            EventKind = "already_running"             // ID, Running, Total
	EvPartlyStartedStopped      EventKind = "partly_started_stopped"      // ID
	EvPortsAdded                EventKind = "ports_added"                 // Source (the stack file), Path (the env file)
	EvImageBuilding             EventKind = "image_building"              // Image, Source; Engine and Arch when it is built for another engine
	EvImageLoading              EventKind = "image_loading"               // Image, Engine
	EvVolumeSynced              EventKind = "volume_synced"               // Source (the local folder), Volume, Engine
	EvMainStackStarting         EventKind = "main_stack_starting"         // ID (the compose project), Source (the main compose file)
	EvStackRemoved              EventKind = "stack_removed"               // ID
	EvEngineUnreachable         EventKind = "engine_unreachable"          // ID, Engine, Err
	EvWorktreeRemoved           EventKind = "worktree_removed"            // Path
	EvWorktreeAlreadyGone       EventKind = "worktree_already_gone"       // Path
	EvCheckoutKept              EventKind = "checkout_kept"               // Path, Source (the env file's name, removed)
	EvBranchDeleted             EventKind = "branch_deleted"              // Branch
	EvRefLockRemoved            EventKind = "ref_lock_removed"            // Path (the lock file), Branch ("" for packed-refs.lock)
	EvWorktreeRecordRemoved     EventKind = "worktree_record_removed"     // Path (git's record), Source (the worktree's folder)
	EvStillWaiting              EventKind = "still_waiting"               // ID, Service (waiting), Source (what it waits for), Condition, Elapsed
	EvOptionalDependencySkipped EventKind = "optional_dependency_skipped" // ID, Service, Source (the dependency, required: false), Err
	EvBudgetUnknown             EventKind = "budget_unknown"              // Engine, Err: up goes on without the memory budget check
	EvStackStopped              EventKind = "stack_stopped"               // ID, Path, Engine (down -all)
	EvStackStopFailed           EventKind = "stack_stop_failed"           // ID, Path, Engine, Err (down -all)
	EvNetworkLeft               EventKind = "network_left"                // ID, Source (the network the engine would not remove: it counts an endpoint no container has)
	EvStackWarning              EventKind = "stack_warning"               // Source (the stack file), Service, Err (what every sandbox shares: a literal port, a named volume …)
	EvShellStarting             EventKind = "shell_starting"              // ID, Service, Source (the shell: bash, or sh where the image has no bash)
)

// Event is one step of a long operation (create, up, destroy …), reported
// to Manager.Events as it happens. The library only reports; the edge (the
// mage targets) decides how a person sees it.
type Event struct {
	Kind      EventKind     `json:"kind"`
	ID        string        `json:"id,omitempty"`
	Path      string        `json:"path,omitempty"`
	Branch    string        `json:"branch,omitempty"`
	NewBranch bool          `json:"new_branch,omitempty"`
	Slot      int           `json:"slot,omitempty"`
	Port      int           `json:"port,omitempty"`
	Running   int           `json:"running,omitempty"`
	Total     int           `json:"total,omitempty"`
	Source    string        `json:"source,omitempty"`
	Image     string        `json:"image,omitempty"`
	Arch      string        `json:"arch,omitempty"`
	Volume    string        `json:"volume,omitempty"`
	Engine    string        `json:"engine,omitempty"`
	Err       string        `json:"error,omitempty"`
	Service   string        `json:"service,omitempty"`
	Condition string        `json:"condition,omitempty"` // a depends_on condition: service_healthy, …
	Elapsed   time.Duration `json:"elapsed_ns,omitempty"`
}

// emit reports e to m.Events, if set.
func (m *Manager) emit(e Event) {
	if m.Events != nil {
		m.Events(e)
	}
}
