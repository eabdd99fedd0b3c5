package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// RegistryVersion is the registry file format this package reads and writes.
const RegistryVersion = 1

// Instance is one registered sandbox, as stored in the registry.
type Instance struct {
	Slot       int    `json:"slot"`
	Path       string `json:"path"`
	CreatedAt  string `json:"created_at"`
	IsWorktree bool   `json:"is_worktree"`
	ParentRepo string `json:"parent_repo"`
	Engine     Engine `json:"engine,omitzero"` // the Docker engine it runs on (absent: the local one)
}

// registryFile is the on-disk registry.
type registryFile struct {
	Version   int                 `json:"version"`
	Instances map[string]Instance `json:"instances"`
}

// Registry is the machine-wide list of sandbox instances:
// $HOME/.<app>/sandbox/instances.json, guarded by instances.json.lock.
// Every read-modify-write holds the lock; every write is atomic; a file
// that does not parse is never overwritten.
type Registry struct {
	Path    string
	Now     func() time.Time // the clock that ages entries for CleanStale; nil means time.Now
	profile *Profile
}

// OpenRegistry returns the registry of profile p under home. Nothing is
// read or created until it is used.
func (p *Profile) OpenRegistry(home string) *Registry {
	return &Registry{Path: filepath.Join(p.StateDir(home), "instances.json"), profile: p}
}

// ErrRegistryCorrupt marks a registry file that cannot be used.
var ErrRegistryCorrupt = errors.New("registry file is unusable")

// RegistryCorruptError reports a registry file that does not parse, has an
// unknown version, or holds an entry that is not valid (ID and Field name
// it then). The file is left as it is, and nothing is deleted on its account.
type RegistryCorruptError struct {
	Path   string
	Reason string
	ID     string // the invalid entry, if one is at fault
	Field  string // its invalid field: "id", "path", "parent_repo", "slot", "created_at"
}

func (e *RegistryCorruptError) Error() string {
	return fmt.Sprintf("registry %s: %s; it was left untouched", e.Path, e.Reason)
}

func (e *RegistryCorruptError) Unwrap() error { return ErrRegistryCorrupt }

// parseRegistry decodes a registry file's bytes and validates every entry
// (see validateEntries). Empty input is an empty registry.
func (p *Profile) parseRegistry(path string, data []byte) (*registryFile, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return &registryFile{Version: RegistryVersion, Instances: map[string]Instance{}}, nil
	}
	var rf registryFile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&rf); err != nil {
		return nil, &RegistryCorruptError{Path: path, Reason: "it is not valid JSON (" + err.Error() + ")"}
	}
	if dec.More() {
		return nil, &RegistryCorruptError{Path: path, Reason: "it has data after the JSON document"}
	}
	if rf.Version != RegistryVersion {
		return nil, &RegistryCorruptError{Path: path, Reason: fmt.Sprintf("version %d is not supported (this tool reads version %d)", rf.Version, RegistryVersion)}
	}
	if rf.Instances == nil {
		rf.Instances = map[string]Instance{}
	}
	if err := p.validateEntries(path, rf.Instances); err != nil {
		return nil, err
	}
	return &rf, nil
}

// validateEntries checks every field of every entry, since the manager
// derives paths and commands from them: the id is an instance id of p (it
// names a folder under the state folder), path and parent_repo are absolute
// and clean (a worktree has a parent_repo), the slot is in p's range and
// held by no other entry, no two entries share a path, and created_at is
// empty or RFC 3339. The first invalid entry, in id order, is reported.
func (p *Profile) validateEntries(path string, m map[string]Instance) error {
	slots := map[int]string{}
	paths := map[string]string{}
	for _, id := range slices.Sorted(maps.Keys(m)) {
		in := m[id]
		bad := func(field, format string, args ...any) error {
			return &RegistryCorruptError{Path: path, ID: id, Field: field,
				Reason: fmt.Sprintf("entry %q: ", id) + fmt.Sprintf(format, args...)}
		}
		if _, ok := p.NameOf(id); !ok {
			return bad("id", "it is not an instance id (%s--<name>, with a valid sandbox name)", p.App)
		}
		if !cleanAbs(in.Path) {
			return bad("path", "path %q is not an absolute, clean path", in.Path)
		}
		if in.ParentRepo != "" && !cleanAbs(in.ParentRepo) {
			return bad("parent_repo", "parent_repo %q is not an absolute, clean path", in.ParentRepo)
		}
		if in.IsWorktree && in.ParentRepo == "" {
			return bad("parent_repo", "it is a worktree without a parent_repo")
		}
		if in.Slot < p.MinSlot || in.Slot > p.MaxSlot {
			return bad("slot", "slot %d is outside the sandbox slots %d–%d", in.Slot, p.MinSlot, p.MaxSlot)
		}
		if other, ok := slots[in.Slot]; ok {
			return bad("slot", "slot %d is also held by entry %q", in.Slot, other)
		}
		slots[in.Slot] = id
		if other, ok := paths[in.Path]; ok {
			return bad("path", "path %s is also registered for entry %q", in.Path, other)
		}
		paths[in.Path] = id
		if in.CreatedAt != "" {
			if _, err := ParseTime(in.CreatedAt); err != nil {
				return bad("created_at", "created_at %q is not an RFC 3339 time", in.CreatedAt)
			}
		}
	}
	return nil
}

// cleanAbs reports whether path is absolute and clean (no "..", no "//").
func cleanAbs(path string) bool {
	return path != "" && filepath.IsAbs(path) && filepath.Clean(path) == path
}

func (r *Registry) read() (*registryFile, error) {
	data, err := os.ReadFile(r.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return &registryFile{Version: RegistryVersion, Instances: map[string]Instance{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read registry %s: %w", r.Path, err)
	}
	return r.profile.parseRegistry(r.Path, data)
}

func (r *Registry) write(rf *registryFile) error {
	data, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return fmt.Errorf("encode registry %s: %w", r.Path, err)
	}
	return WriteFileAtomic(r.Path, append(data, '\n'), 0o644)
}

// lock takes the registry's exclusive lock, creating the state folder. It
// waits at most LockWait for another command to finish with it.
func (r *Registry) lock(ctx context.Context) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(r.Path), 0o755); err != nil {
		return nil, fmt.Errorf("create registry folder %s: %w", filepath.Dir(r.Path), err)
	}
	return lockFile(ctx, r.Path+".lock", "registry "+r.Path, "another sandbox command")
}

// Instances returns a snapshot of every registered instance.
func (r *Registry) Instances() (map[string]Instance, error) {
	rf, err := r.read()
	if err != nil {
		return nil, err
	}
	return rf.Instances, nil
}

// Update runs fn on the registry's instances under the lock and writes the
// result atomically if fn returns nil. fn may modify the map.
func (r *Registry) Update(ctx context.Context, fn func(instances map[string]Instance) error) error {
	unlock, err := r.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	rf, err := r.read()
	if err != nil {
		return err
	}
	if err := fn(rf.Instances); err != nil {
		return err
	}
	return r.write(rf)
}

// ErrNoFreeSlot is wrapped by *NoFreeSlotError.
var ErrNoFreeSlot = errors.New("no free sandbox slot")

// Holder is an instance that holds a slot.
type Holder struct {
	ID   string
	Slot int
	Path string
}

// NoFreeSlotError lists every instance holding a slot, and slots skipped
// because strangers hold their ports.
type NoFreeSlotError struct {
	Min, Max int
	Holders  []Holder
	Skipped  map[int]error
}

func (e *NoFreeSlotError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no free sandbox slot in %d–%d; held by:", e.Min, e.Max)
	for _, h := range e.Holders {
		fmt.Fprintf(&b, "\n  slot %d  %s  %s", h.Slot, h.ID, h.Path)
	}
	for _, s := range slices.Sorted(maps.Keys(e.Skipped)) {
		fmt.Fprintf(&b, "\n  slot %d  skipped: %v", s, e.Skipped[s])
	}
	return b.String()
}

func (e *NoFreeSlotError) Unwrap() error { return ErrNoFreeSlot }

// SlotError reports a requested slot that cannot be used.
type SlotError struct {
	Slot   int
	Reason string
	Err    error // a *PortInUseError when strangers hold its ports
}

func (e *SlotError) Error() string { return fmt.Sprintf("slot %d: %s", e.Slot, e.Reason) }
func (e *SlotError) Unwrap() error { return e.Err }

// AlreadyRegisteredError reports an instance id or path that is registered.
type AlreadyRegisteredError struct {
	ID       string
	Instance Instance
}

func (e *AlreadyRegisteredError) Error() string {
	return fmt.Sprintf("instance %s is already registered (slot %d, %s)", e.ID, e.Instance.Slot, e.Instance.Path)
}

// Register adds instance id under the lock. With slot 0 it takes the lowest
// free slot for which usable(slot) returns nil (slots it refuses are
// reported in the error if none is left); with a slot it takes exactly that
// one or fails with a *SlotError. It returns the slot taken.
func (r *Registry) Register(ctx context.Context, id string, in Instance, slot int, usable func(slot int) error) (int, error) {
	p := r.profile
	// Nothing enters the registry that reading it would refuse.
	switch _, ok := p.NameOf(id); {
	case !ok:
		return 0, fmt.Errorf("register %q: it is not an instance id (%s--<name>)", id, p.App)
	case !cleanAbs(in.Path):
		return 0, fmt.Errorf("register %s: path %q is not an absolute, clean path", id, in.Path)
	case in.ParentRepo != "" && !cleanAbs(in.ParentRepo), in.IsWorktree && in.ParentRepo == "":
		return 0, fmt.Errorf("register %s: parent repository %q is not an absolute, clean path", id, in.ParentRepo)
	}
	err := r.Update(ctx, func(m map[string]Instance) error {
		if old, ok := m[id]; ok {
			return &AlreadyRegisteredError{ID: id, Instance: old}
		}
		for oid, old := range m {
			if samePath(old.Path, in.Path) {
				return &AlreadyRegisteredError{ID: oid, Instance: old}
			}
		}
		used := map[int]string{}
		for oid, old := range m {
			used[old.Slot] = oid
		}
		if slot != 0 {
			if slot < p.MinSlot || slot > p.MaxSlot {
				return &SlotError{Slot: slot, Reason: fmt.Sprintf("out of range: sandbox slots are %d–%d", p.MinSlot, p.MaxSlot)}
			}
			if holder, ok := used[slot]; ok {
				return &SlotError{Slot: slot, Reason: fmt.Sprintf("taken by %s (%s)", holder, m[holder].Path)}
			}
			if usable != nil {
				if err := usable(slot); err != nil {
					return &SlotError{Slot: slot, Reason: err.Error(), Err: err}
				}
			}
		} else {
			skipped := map[int]error{}
			for s := p.MinSlot; s <= p.MaxSlot; s++ {
				if _, ok := used[s]; ok {
					continue
				}
				if usable != nil {
					if err := usable(s); err != nil {
						skipped[s] = err
						continue
					}
				}
				slot = s
				break
			}
			if slot == 0 {
				e := &NoFreeSlotError{Min: p.MinSlot, Max: p.MaxSlot, Skipped: skipped}
				for oid, old := range m {
					e.Holders = append(e.Holders, Holder{ID: oid, Slot: old.Slot, Path: old.Path})
				}
				sort.Slice(e.Holders, func(i, j int) bool { return e.Holders[i].Slot < e.Holders[j].Slot })
				return e
			}
		}
		in.Slot = slot
		m[id] = in
		return nil
	})
	if err != nil {
		return 0, err
	}
	return slot, nil
}

// Unregister removes id; it reports whether it was there.
func (r *Registry) Unregister(ctx context.Context, id string) (bool, error) {
	found := false
	err := r.Update(ctx, func(m map[string]Instance) error {
		_, found = m[id]
		delete(m, id)
		return nil
	})
	return found, err
}

// Stale is a registry entry whose checkout is gone.
type Stale struct {
	ID       string
	Instance Instance
	Reason   string
	Kept     bool // still registered, because keep asked for it
}

// StaleGrace is how young an entry may be and still lack its folder or env
// file: create and init register first and write the files after.
const StaleGrace = 2 * time.Minute

// CleanStale removes entries whose path is gone or holds no env file, and
// returns them. It keeps entries younger than StaleGrace (a create in
// progress) and those for which keep returns true (say, a stack that still
// runs, so that destroy can finish it); keep may be nil. Kept stale entries
// are returned too, with Kept set.
func (r *Registry) CleanStale(ctx context.Context, keep func(id string, in Instance) bool) ([]Stale, error) {
	var stale []Stale
	err := r.Update(ctx, func(m map[string]Instance) error {
		for id, in := range m {
			reason := r.profile.staleReason(in)
			if reason == "" {
				continue
			}
			if r.young(in) {
				continue
			}
			s := Stale{ID: id, Instance: in, Reason: reason}
			if keep != nil && keep(id, in) {
				s.Kept = true
			} else {
				delete(m, id)
			}
			stale = append(stale, s)
		}
		return nil
	})
	sort.Slice(stale, func(i, j int) bool { return stale[i].ID < stale[j].ID })
	return stale, err
}

// young reports whether an entry is within StaleGrace of its created_at,
// so that a create in progress is not cleaned. A created_at more than
// StaleGrace ahead of the clock (a hand edit, or a clock set far back) is
// no age at all: the entry is aged like one without created_at, so that a
// stale entry is never kept for ever. Less far ahead is taken as clock skew.
func (r *Registry) young(in Instance) bool {
	t, err := ParseTime(in.CreatedAt)
	if err != nil {
		return false
	}
	age := r.now().Sub(t)
	return age < StaleGrace && age > -StaleGrace
}

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (p *Profile) staleReason(in Instance) string {
	if _, err := os.Stat(in.Path); errors.Is(err, fs.ErrNotExist) {
		return "its folder is gone"
	}
	if _, err := os.Stat(filepath.Join(in.Path, p.EnvFile)); errors.Is(err, fs.ErrNotExist) {
		return "its folder has no " + p.EnvFile
	}
	return ""
}

// Lookup returns the instance registered for path (a checkout root).
func (r *Registry) Lookup(path string) (string, Instance, bool, error) {
	m, err := r.Instances()
	if err != nil {
		return "", Instance{}, false, err
	}
	for id, in := range m {
		if samePath(in.Path, path) {
			return id, in, true, nil
		}
	}
	return "", Instance{}, false, nil
}

func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}
