package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// Registering a checkout again from its env file. The registry is the
// machine's list of sandboxes, but each checkout's .env.sandbox also says
// which instance and slot it is. When the registry is lost (deleted, or moved
// aside because it was damaged) or a sandbox folder was moved, Init rebuilds
// the entry from the file instead of adopting the checkout afresh, so that
// the instance keeps its name, slot, ports and running stack.
//
// A file alone does not prove a checkout is the sandbox: a copied folder
// carries the same file. So the file is refused when another checkout has
// the stronger claim: it is registered and still there, it is a worktree of
// the same repository with a file naming the same instance, or it is where
// the instance's containers were started.

// ReregisterError reports that a checkout's surviving env file names a slot
// that cannot be registered: taken by another instance meanwhile, or outside
// the slot range now.
type ReregisterError struct {
	ID, EnvPath string
	Standin     bool // the file runs the stand-in images (to adopt afresh the same way)
	Err         error
}

func (e *ReregisterError) Error() string {
	return fmt.Sprintf("register %s again from %s: %v", e.ID, e.EnvPath, e.Err)
}

func (e *ReregisterError) Unwrap() error { return e.Err }

// ClaimedError reports that another checkout has a stronger claim to the
// instance an env file names.
type ClaimedError struct {
	ID, Here, Other string
	How             string // why Other's claim counts
}

func (e *ClaimedError) Error() string {
	return fmt.Sprintf("%s names instance %s, but %s %s", e.Here, e.ID, e.Other, e.How)
}

// reregister registers a checkout whose env file survived the loss of its
// registry entry, under the instance and slot that file names; the file is
// not touched. Options that contradict the file are refused, not ignored.
func (m *Manager) reregister(ctx context.Context, co Checkout, envPath string, o InitOptions) (*Created, error) {
	p := m.Profile
	env, err := p.ReadEnv(envPath)
	if err != nil {
		return nil, err
	}
	id := env.InstanceID
	name, _ := p.NameOf(id)
	afresh := "remove the file to adopt the checkout afresh"
	switch {
	case o.Name != "" && o.Name != name:
		return nil, fmt.Errorf("%s names sandbox %s, not %s: omit -name to register it again, or %s", envPath, name, o.Name, afresh)
	case o.Slot != 0 && o.Slot != env.Slot:
		return nil, fmt.Errorf("%s holds slot %d, not %d: omit -slot to register it again, or %s", envPath, env.Slot, o.Slot, afresh)
	case o.Context != env.Engine.Context && o.Context != "":
		return nil, fmt.Errorf("%s runs on engine %s, not %s: omit -context to register it again, or %s", envPath, env.Engine.Name(), o.Context, afresh)
	case o.Standin && !env.Standin:
		return nil, fmt.Errorf("%s does not run the stand-in images: omit -standin to register it again, or %s", envPath, afresh)
	}
	if env.Slot < p.MinSlot || env.Slot > p.MaxSlot {
		return nil, &ReregisterError{ID: id, EnvPath: envPath, Standin: env.Standin,
			Err: &SlotError{Slot: env.Slot, Reason: fmt.Sprintf("out of range: sandbox slots are %d–%d", p.MinSlot, p.MaxSlot)}}
	}
	// The slot's ports as the checkout's stack file has them (its variables
	// may be other than the documented ones); a variable the file gained
	// since is not in the env file yet, and up adds it.
	vals, err := p.EnvValues(envPath)
	if err != nil {
		return nil, err
	}
	sp, _, err := m.stackOf(ctx, co.Root, vals)
	if err != nil {
		return nil, err
	}
	want := sp.PortsFor(env.Slot)
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got, ok := env.Ports[k]; ok && got != want[k] {
			return nil, fmt.Errorf("%s: %s is %d, but slot %d uses %d (the file was edited, or copied from another sandbox): %s",
				envPath, k, env.Ports[k], env.Slot, want[k], afresh)
		}
	}

	reg := m.Registry()
	instances, err := reg.Instances()
	if err != nil {
		return nil, err
	}
	movedFrom := ""
	if in, ok := instances[id]; ok {
		if m.holdsInstance(in.Path, id) {
			return nil, &ElsewhereError{ID: id, Here: co.Root, Registered: in.Path}
		}
		if err := m.checkMove(ctx, co, id, in, env, envPath); err != nil {
			return nil, err
		}
		movedFrom = in.Path // the sandbox was moved (or its folder deleted): this checkout takes its place
	}
	if err := m.on(env.Engine).checkClaims(ctx, co, id, movedFrom); err != nil {
		return nil, err
	}

	parent := ""
	if co.IsWorktree {
		parent = co.MainRoot
	}
	entry := Instance{Path: co.Root, CreatedAt: FormatTime(m.Now()), IsWorktree: co.IsWorktree, ParentRepo: parent, Engine: env.Engine}
	if !env.CreatedAt.IsZero() {
		entry.CreatedAt = FormatTime(env.CreatedAt)
	}
	if movedFrom == "" {
		// Ports are not probed: the file already claims them, and its own
		// stack may hold them. up checks them, naming any holder, before it starts.
		if _, err := reg.Register(ctx, id, entry, env.Slot, nil); err != nil {
			var se *SlotError
			if errors.As(err, &se) {
				return nil, &ReregisterError{ID: id, EnvPath: envPath, Standin: env.Standin, Err: err}
			}
			return nil, fmt.Errorf("register %s again from %s: %w", id, envPath, err)
		}
	} else if err := reg.Update(ctx, func(mp map[string]Instance) error {
		in, ok := mp[id]
		if !ok || in.Path != movedFrom || dirExists(in.Path) {
			return fmt.Errorf("the registry entry of %s changed while %s was registered again: run init again", id, co.Root)
		}
		entry.Slot = in.Slot
		mp[id] = entry
		return nil
	}); err != nil {
		return nil, err
	}

	if err := m.saveTeardownCopy(id, co.Root, m.reusableMeta(id, co.Root, envPath)); err != nil {
		if movedFrom == "" {
			reg.Unregister(context.WithoutCancel(ctx), id)
		}
		return nil, err
	}
	return &Created{ID: id, Name: name, Slot: env.Slot, Path: co.Root, Branch: readBranch(co.Root),
		IsWorktree: co.IsWorktree, ParentRepo: parent, Ports: env.Ports, Reregistered: true, MovedFrom: movedFrom}, nil
}

// holdsInstance reports whether dir still is sandbox id: it exists and its
// env file names id. A folder recreated at a moved sandbox's old path is not.
func (m *Manager) holdsInstance(dir, id string) bool {
	e, err := m.Profile.ReadEnv(filepath.Join(dir, m.Profile.EnvFile))
	return err == nil && e.InstanceID == id
}

// checkMove accepts co as the new place of registered instance in, whose
// folder no longer holds it, only when co is the same kind of checkout of
// the same repository, in the same slot, and git knows a moved worktree at
// its new path (else destroy could not remove it later).
func (m *Manager) checkMove(ctx context.Context, co Checkout, id string, in Instance, env Env, envPath string) error {
	was := fmt.Sprintf("the registry has %s for %s, a folder that is gone or no longer that sandbox", id, in.Path)
	switch {
	case in.Slot != env.Slot:
		return fmt.Errorf("%s says slot %d, but %s in slot %d: remove the file to adopt the checkout afresh", envPath, env.Slot, was, in.Slot)
	case in.IsWorktree != co.IsWorktree:
		return fmt.Errorf("%s is %s, but %s, %s: remove the file to adopt the checkout afresh", co.Root, kindOf(co.IsWorktree), was, kindOf(in.IsWorktree))
	case !in.IsWorktree:
		return nil
	case !samePath(co.MainRoot, in.ParentRepo):
		return fmt.Errorf("%s is a worktree of %s, but %s, a worktree of %s: remove the file to adopt the checkout afresh", co.Root, co.MainRoot, was, in.ParentRepo)
	}
	out, err := m.git(ctx, co.MainRoot, "worktree", "list", "--porcelain")
	if err != nil {
		return fmt.Errorf("list the worktrees of %s: %w", co.MainRoot, err)
	}
	for _, wt := range worktreePaths(out) {
		if samePath(wt, co.Root) {
			return nil
		}
	}
	return &UnrepairedMoveError{ID: id, Here: co.Root, Old: in.Path}
}

func kindOf(worktree bool) string {
	if worktree {
		return "a worktree"
	}
	return "a clone"
}

// UnrepairedMoveError reports a worktree moved without git knowing: its
// repository still lists it at the old path.
type UnrepairedMoveError struct{ ID, Here, Old string }

func (e *UnrepairedMoveError) Error() string {
	return fmt.Sprintf("%s names instance %s, registered for %s, but its repository still has the worktree at %s (moved without git worktree move)", e.Here, e.ID, e.Old, e.Old)
}

// ClaimCheckError reports that init could not tell which folder runs an
// instance's stack, because docker did not answer.
type ClaimCheckError struct {
	ID  string
	Err error
}

func (e *ClaimCheckError) Error() string {
	return fmt.Sprintf("check which folder started the stack of %s: %v", e.ID, e.Err)
}

func (e *ClaimCheckError) Unwrap() error { return e.Err }

// checkClaims refuses id for co when another checkout claims it: the folder
// its containers were started from, if that folder still exists (movedFrom,
// the registered folder that is gone, does not count), or another worktree
// of the same repository whose env file names it. A stack started from co
// settles it in co's favour.
func (m *Manager) checkClaims(ctx context.Context, co Checkout, id, movedFrom string) error {
	p := m.Profile
	states, err := driver.StackStates(ctx, m.Runner, p.InstanceLabel)
	if err != nil {
		return &ClaimCheckError{ID: id, Err: err}
	}
	if st := states[id]; st != nil {
		if slices.ContainsFunc(st.WorkingDirs, func(wd string) bool { return samePath(wd, co.Root) }) {
			return nil // its stack was started from here
		}
		for _, wd := range st.WorkingDirs {
			if !samePath(wd, movedFrom) && dirExists(wd) {
				return &ClaimedError{ID: id, Here: co.Root, Other: wd, How: "is where its stack was started (its containers are there)"}
			}
		}
	}
	out, err := m.git(ctx, co.Root, "worktree", "list", "--porcelain")
	if err != nil {
		return fmt.Errorf("list the worktrees of %s: %w", co.Root, err)
	}
	for _, wt := range worktreePaths(out) {
		if !samePath(wt, co.Root) && m.holdsInstance(wt, id) {
			return &ClaimedError{ID: id, Here: co.Root, Other: wt, How: "(a worktree of the same repository) has a " + p.EnvFile + " that names it too"}
		}
	}
	return nil
}

// worktreePaths returns the folders `git worktree list --porcelain` lists.
func worktreePaths(porcelain string) []string {
	var paths []string
	for _, line := range strings.Split(porcelain, "\n") {
		if wt, ok := strings.CutPrefix(line, "worktree "); ok {
			paths = append(paths, wt)
		}
	}
	return paths
}

// reusableMeta returns the meta kept for id when it is this checkout's (the
// kept env copy is byte-identical to the file, the branch is the same), so
// that destroy still knows whether the sandbox created its branch; else a
// fresh meta that claims no branch.
func (m *Manager) reusableMeta(id, root, envPath string) meta {
	fresh := meta{Branch: readBranch(root)}
	mt := m.readMeta(id)
	dir, ok := m.keptDir(id)
	if !ok {
		return fresh
	}
	kept, err1 := readOwnFile(filepath.Join(dir, m.Profile.EnvFile), MaxCheckoutFile)
	cur, err2 := readOwnFile(envPath, MaxCheckoutFile)
	if err1 != nil || err2 != nil || !bytes.Equal(kept, cur) || mt.Branch == "" || mt.Branch != fresh.Branch {
		return fresh
	}
	return mt
}
