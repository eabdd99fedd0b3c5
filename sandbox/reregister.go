package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	case o.Standin && !env.Standin:
		return nil, fmt.Errorf("%s does not run the stand-in images: omit -standin to register it again, or %s", envPath, afresh)
	}
	if env.Slot < p.MinSlot || env.Slot > p.MaxSlot {
		return nil, &ReregisterError{ID: id, EnvPath: envPath, Standin: env.Standin,
			Err: &SlotError{Slot: env.Slot, Reason: fmt.Sprintf("out of range: sandbox slots are %d–%d", p.MinSlot, p.MaxSlot)}}
	}
	want := p.PortsFor(env.Slot)
	for _, k := range sortedKeys(want) {
		if env.Ports[k] != want[k] {
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
		if dirExists(in.Path) {
			return nil, &ElsewhereError{ID: id, Here: co.Root, Registered: in.Path}
		}
		if in.Slot != env.Slot {
			return nil, fmt.Errorf("%s names instance %s in slot %d, but the registry has it in slot %d for %s, a folder that is gone: %s",
				envPath, id, env.Slot, in.Slot, in.Path, afresh)
		}
		movedFrom = in.Path // the sandbox was moved (or its folder deleted): this checkout takes its place
	}
	if err := m.checkClaims(ctx, co, id, movedFrom); err != nil {
		return nil, err
	}

	parent := ""
	if co.IsWorktree {
		parent = co.MainRoot
	}
	entry := Instance{Path: co.Root, CreatedAt: m.Now().UTC().Format("2006-01-02T15:04:05Z"), IsWorktree: co.IsWorktree, ParentRepo: parent}
	if !env.CreatedAt.IsZero() {
		entry.CreatedAt = env.CreatedAt.UTC().Format("2006-01-02T15:04:05Z")
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

// checkClaims refuses id for co when another checkout claims it: a worktree
// of the same repository whose env file names it, or the folder its
// containers were started from, if that folder still exists (movedFrom, the
// registered folder that is gone, does not count).
func (m *Manager) checkClaims(ctx context.Context, co Checkout, id, movedFrom string) error {
	p := m.Profile
	out, err := m.git(ctx, co.Root, "worktree", "list", "--porcelain")
	if err != nil {
		return fmt.Errorf("list the worktrees of %s: %w", co.Root, err)
	}
	for _, line := range strings.Split(out, "\n") {
		wt, ok := strings.CutPrefix(line, "worktree ")
		if !ok || samePath(wt, co.Root) {
			continue
		}
		if e, err := p.ReadEnv(filepath.Join(wt, p.EnvFile)); err == nil && e.InstanceID == id {
			return &ClaimedError{ID: id, Here: co.Root, Other: wt, How: "(a worktree of the same repository) has a " + p.EnvFile + " that names it too"}
		}
	}
	states, err := StackStates(ctx, m.Runner, p.InstanceLabel)
	if err != nil {
		return fmt.Errorf("check which checkout started the stack of %s: %w", id, err)
	}
	if st := states[id]; st != nil && st.WorkingDir != "" && !samePath(st.WorkingDir, co.Root) &&
		!samePath(st.WorkingDir, movedFrom) && dirExists(st.WorkingDir) {
		return &ClaimedError{ID: id, Here: co.Root, Other: st.WorkingDir, How: "is where its stack was started (its containers are there)"}
	}
	return nil
}

// reusableMeta returns the meta kept for id when it is this checkout's (the
// kept env copy is byte-identical to the file, the branch is the same), so
// that destroy still knows whether the sandbox created its branch; else a
// fresh meta that claims no branch.
func (m *Manager) reusableMeta(id, root, envPath string) meta {
	fresh := meta{Branch: readBranch(root)}
	mt := m.readMeta(id)
	kept, err1 := os.ReadFile(filepath.Join(m.instanceDir(id), m.Profile.EnvFile))
	cur, err2 := os.ReadFile(envPath)
	if err1 != nil || err2 != nil || !bytes.Equal(kept, cur) || mt.Branch == "" || mt.Branch != fresh.Branch {
		return fresh
	}
	return mt
}
