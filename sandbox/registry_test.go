package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTestRegistry(t *testing.T) (*Registry, string) {
	home := t.TempDir()
	return KTRDR().OpenRegistry(home), home
}

func TestRegistryAllocatesLowestFreeSlot(t *testing.T) {
	reg, home := newTestRegistry(t)
	ctx := t.Context()
	for i, want := range []int{1, 2, 3} {
		slot, err := reg.Register(ctx, fmt.Sprintf("ktrdr--s%d", i), Instance{Path: filepath.Join(home, strconv.Itoa(i))}, 0, nil)
		require.NoError(t, err)
		assert.Equal(t, want, slot)
	}
	_, err := reg.Unregister(ctx, "ktrdr--s1")
	require.NoError(t, err)
	slot, err := reg.Register(ctx, "ktrdr--new", Instance{Path: filepath.Join(home, "new")}, 0, nil)
	require.NoError(t, err)
	assert.Equal(t, 2, slot, "the freed slot is reused")

	// A slot whose ports strangers hold is skipped.
	slot, err = reg.Register(ctx, "ktrdr--skip", Instance{Path: filepath.Join(home, "skip")}, 0, func(s int) error {
		if s == 4 {
			return fmt.Errorf("port 8004 held by a stranger")
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 5, slot)

	data, err := os.ReadFile(reg.Path)
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(data, &raw))
	assert.EqualValues(t, 1, raw["version"])
	inst := raw["instances"].(map[string]any)["ktrdr--new"].(map[string]any)
	for _, k := range []string{"slot", "path", "created_at", "is_worktree", "parent_repo"} {
		assert.Contains(t, inst, k)
	}
}

func TestRegistryRefusals(t *testing.T) {
	reg, home := newTestRegistry(t)
	ctx := t.Context()
	_, err := reg.Register(ctx, "ktrdr--a", Instance{Path: filepath.Join(home, "a")}, 3, nil)
	require.NoError(t, err)

	_, err = reg.Register(ctx, "ktrdr--b", Instance{Path: filepath.Join(home, "b")}, 3, nil)
	var se *SlotError
	require.ErrorAs(t, err, &se)
	assert.Contains(t, err.Error(), "ktrdr--a")

	_, err = reg.Register(ctx, "ktrdr--b", Instance{Path: filepath.Join(home, "b")}, 11, nil)
	require.ErrorAs(t, err, &se)
	assert.Contains(t, err.Error(), "out of range")

	_, err = reg.Register(ctx, "ktrdr--a", Instance{Path: filepath.Join(home, "other")}, 0, nil)
	var ae *AlreadyRegisteredError
	assert.ErrorAs(t, err, &ae)
	_, err = reg.Register(ctx, "ktrdr--c", Instance{Path: filepath.Join(home, "a")}, 0, nil)
	assert.ErrorAs(t, err, &ae, "one instance per checkout")
}

func TestRegistryExhaustionListsHolders(t *testing.T) {
	reg, home := newTestRegistry(t)
	ctx := t.Context()
	for i := 1; i <= 10; i++ {
		_, err := reg.Register(ctx, fmt.Sprintf("ktrdr--s%02d", i), Instance{Path: filepath.Join(home, strconv.Itoa(i))}, 0, nil)
		require.NoError(t, err)
	}
	_, err := reg.Register(ctx, "ktrdr--eleven", Instance{Path: filepath.Join(home, "11")}, 0, nil)
	var nf *NoFreeSlotError
	require.ErrorAs(t, err, &nf)
	assert.ErrorIs(t, err, ErrNoFreeSlot)
	assert.Len(t, nf.Holders, 10)
	for i := 1; i <= 10; i++ {
		assert.Contains(t, err.Error(), fmt.Sprintf("slot %d  ktrdr--s%02d", i, i))
	}
}

func TestRegistryConcurrentGoroutines(t *testing.T) {
	reg, home := newTestRegistry(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	slots := make([]int, 20)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots[i], errs[i] = reg.Register(ctx, fmt.Sprintf("ktrdr--g%d", i), Instance{Path: filepath.Join(home, strconv.Itoa(i))}, 0, nil)
		}()
	}
	wg.Wait()
	got := map[int]bool{}
	failed := 0
	for i := range 20 {
		if errs[i] != nil {
			assert.ErrorIs(t, errs[i], ErrNoFreeSlot)
			failed++
			continue
		}
		assert.False(t, got[slots[i]], "slot %d handed out twice", slots[i])
		got[slots[i]] = true
	}
	assert.Len(t, got, 10, "exactly as many as there are free slots")
	assert.Equal(t, 10, failed)
	m, err := reg.Instances()
	require.NoError(t, err, "the file stays valid JSON")
	assert.Len(t, m, 10)
}

// TestRegistryHelperProcess is run as a child process by TestRegistryConcurrentProcesses.
func TestRegistryHelperProcess(t *testing.T) {
	home := os.Getenv("SANDBOX_TEST_REGISTRY_HOME")
	if home == "" {
		return
	}
	id := os.Getenv("SANDBOX_TEST_REGISTRY_ID")
	slot, err := KTRDR().OpenRegistry(home).Register(context.Background(), id, Instance{Path: filepath.Join(home, id)}, 0, nil)
	if err != nil {
		fmt.Println("ERR", err)
		return
	}
	fmt.Println("SLOT", slot)
}

func TestRegistryConcurrentProcesses(t *testing.T) {
	reg, home := newTestRegistry(t)
	ctx := t.Context()
	// Leave exactly 5 free slots for 8 processes.
	for i := 1; i <= 5; i++ {
		_, err := reg.Register(ctx, fmt.Sprintf("ktrdr--pre%d", i), Instance{Path: filepath.Join(home, "pre", strconv.Itoa(i))}, 0, nil)
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	outs := make([]string, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestRegistryHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SANDBOX_TEST_REGISTRY_HOME="+home, fmt.Sprintf("SANDBOX_TEST_REGISTRY_ID=ktrdr--p%d", i))
			out, err := cmd.CombinedOutput()
			if err != nil {
				outs[i] = "RUNERR " + err.Error() + string(out)
				return
			}
			outs[i] = string(out)
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	won, lost := 0, 0
	for _, out := range outs {
		switch {
		case strings.Contains(out, "SLOT "):
			line := out[strings.Index(out, "SLOT "):]
			line = strings.Fields(line)[1]
			assert.False(t, seen[line], "slot %s handed out twice", line)
			seen[line] = true
			won++
		case strings.Contains(out, "no free sandbox slot"):
			lost++
		default:
			t.Errorf("unexpected child output: %s", out)
		}
	}
	assert.Equal(t, 5, won)
	assert.Equal(t, 3, lost)
	m, err := reg.Instances()
	require.NoError(t, err)
	assert.Len(t, m, 10)
}

func TestRegistryCorruptFileIsNeverOverwritten(t *testing.T) {
	for name, content := range map[string]string{
		"not json":        "{\"version\": 1, \"instances\": {",
		"unknown version": `{"version": 2, "instances": {}}`,
		"trailing data":   `{"version": 1, "instances": {}} {}`,
		"entry sans path": `{"version": 1, "instances": {"ktrdr--a": {"slot": 1}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			reg, home := newTestRegistry(t)
			require.NoError(t, os.MkdirAll(filepath.Dir(reg.Path), 0o755))
			require.NoError(t, os.WriteFile(reg.Path, []byte(content), 0o600))
			_, err := reg.Register(t.Context(), "ktrdr--x", Instance{Path: filepath.Join(home, "x")}, 0, nil)
			var ce *RegistryCorruptError
			require.ErrorAs(t, err, &ce)
			assert.Contains(t, err.Error(), reg.Path)
			assert.Contains(t, err.Error(), "left untouched")
			assert.NotContains(t, err.Error(), "mv ", "the remedy is the edge's (internal/targets)")
			_, err = reg.CleanStale(t.Context(), nil)
			assert.ErrorAs(t, err, &ce)
			after, err := os.ReadFile(reg.Path)
			require.NoError(t, err)
			assert.Equal(t, content, string(after), "byte-identical")
		})
	}
}

func TestRegistryCleanStale(t *testing.T) {
	reg, home := newTestRegistry(t)
	ctx := t.Context()
	p := KTRDR()
	alive := filepath.Join(home, "alive")
	bare := filepath.Join(home, "bare")
	require.NoError(t, os.MkdirAll(alive, 0o755))
	require.NoError(t, os.MkdirAll(bare, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(alive, p.EnvFile), []byte("x=1\n"), 0o644))
	for id, path := range map[string]string{"ktrdr--alive": alive, "ktrdr--bare": bare, "ktrdr--gone": filepath.Join(home, "gone")} {
		_, err := reg.Register(ctx, id, Instance{Path: path, CreatedAt: time.Now().UTC().Format(time.RFC3339)}, 0, nil)
		require.NoError(t, err)
	}
	// Entries are registered before their files exist: a young entry is never stale.
	young, err := reg.CleanStale(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, young)
	reg.Now = func() time.Time { return time.Now().Add(StaleGrace + time.Second) } // the registry's clock ages them
	stale, err := reg.CleanStale(ctx, func(id string, _ Instance) bool { return id == "ktrdr--gone" })
	require.NoError(t, err)
	require.Len(t, stale, 2)
	assert.Equal(t, "ktrdr--bare", stale[0].ID)
	assert.Contains(t, stale[0].Reason, "no .env.sandbox")
	assert.Equal(t, "ktrdr--gone", stale[1].ID)
	assert.Contains(t, stale[1].Reason, "gone")
	assert.False(t, stale[0].Kept)
	assert.True(t, stale[1].Kept, "keep asked for it (its stack still runs)")
	m, err := reg.Instances()
	require.NoError(t, err)
	assert.Equal(t, []string{"ktrdr--alive", "ktrdr--gone"}, slices.Sorted(maps.Keys(m)))
}

func FuzzParseRegistry(f *testing.F) {
	f.Add([]byte(`{"version":1,"instances":{"ktrdr--a":{"slot":1,"path":"/a","created_at":"","is_worktree":true,"parent_repo":"/m"}}}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"version":1,"instances":{"":{"slot":-1}}}`))
	f.Add([]byte(`{"version":1,"instances":{"../../../../important":{"slot":1,"path":"/gone","created_at":"2020-01-01T00:00:00Z"}}}`))
	f.Add([]byte(`{"version":1,"instances":{"..":{"slot":1,"path":"/a"},"../..":{"slot":2,"path":"/b"}}}`))
	f.Add([]byte(`{"version":1,"instances":{"ktrdr--a":{"slot":3,"path":"/a"},"ktrdr--b":{"slot":3,"path":"/b"}}}`))
	f.Add([]byte(`{"version":1,"instances":{"ktrdr--a":{"slot":11,"path":"/a"}}}`))
	f.Add([]byte(`{"version":1,"instances":{"ktrdr--a":{"slot":1,"path":"a/../../b"}}}`))
	f.Add([]byte(`{"version":1,"instances":{"ktrdr--a":{"slot":1,"path":"/a","created_at":"2999-01-01T00:00:00Z"}}}`))
	p := KTRDR()
	f.Fuzz(func(t *testing.T, data []byte) {
		rf, err := p.parseRegistry("instances.json", data)
		if err != nil {
			return
		}
		// What parses must round-trip and re-parse to the same thing.
		out, err := json.Marshal(rf)
		require.NoError(t, err)
		again, err := p.parseRegistry("instances.json", out)
		require.NoError(t, err)
		require.Equal(t, rf, again)
		slots := map[int]bool{}
		for id, in := range rf.Instances {
			_, ok := p.NameOf(id)
			require.True(t, ok, "id %q", id)
			require.True(t, validStateName(id), "id %q is one folder name", id)
			require.True(t, filepath.IsAbs(in.Path) && filepath.Clean(in.Path) == in.Path, in.Path)
			require.True(t, in.Slot >= p.MinSlot && in.Slot <= p.MaxSlot, "slot %d", in.Slot)
			require.False(t, slots[in.Slot], "slot %d twice", in.Slot)
			slots[in.Slot] = true
		}
	})
}

func BenchmarkRegisterWith100Instances(b *testing.B) {
	p, err := wideProfile(101)
	require.NoError(b, err)
	home := b.TempDir()
	reg := p.OpenRegistry(home)
	ctx := context.Background()
	for i := 1; i <= 100; i++ {
		_, err := reg.Register(ctx, fmt.Sprintf("ktrdr--i%03d", i), Instance{Path: filepath.Join(home, strconv.Itoa(i))}, 0, nil)
		require.NoError(b, err)
	}
	b.ResetTimer()
	for b.Loop() {
		slot, err := reg.Register(ctx, "ktrdr--bench", Instance{Path: filepath.Join(home, "bench")}, 0, nil)
		if err != nil || slot != 101 {
			b.Fatal(slot, err)
		}
		if _, err := reg.Unregister(ctx, "ktrdr--bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRegistryLockWaitIsBounded(t *testing.T) {
	reg, home := newTestRegistry(t)
	require.NoError(t, os.MkdirAll(filepath.Dir(reg.Path), 0o755))
	holder := flock.New(reg.Path + ".lock")
	require.NoError(t, holder.Lock())
	defer holder.Unlock()
	old := LockWait
	LockWait = 50 * time.Millisecond
	defer func() { LockWait = old }()
	_, err := reg.Register(t.Context(), "ktrdr--x", Instance{Path: filepath.Join(home, "x")}, 0, nil)
	assert.ErrorContains(t, err, "another sandbox command has held")
	assert.NoFileExists(t, reg.Path, "nothing was written")
}

// Every field of a registry entry is validated when the file is read: an
// invalid entry makes the file unusable (it is never rewritten) and names
// the entry and the field.
func TestRegistryRefusesInvalidEntries(t *testing.T) {
	entry := func(id, fields string) string {
		return fmt.Sprintf(`{"version": 1, "instances": {%q: {%s}}}`, id, fields)
	}
	ok := `"slot": 1, "path": "/src/ktrdr--a", "created_at": "2026-03-01T12:00:00Z"`
	tests := []struct {
		name, content, id, field string
	}{
		{"id climbing out of the state folder", entry("../../../../important", ok), "../../../../important", "id"},
		{"id naming the state folder", entry("..", ok), "..", "id"},
		{"id naming the app folder", entry("../..", ok), "../..", "id"},
		{"id with a slash", entry("ktrdr--a/../../x", ok), "ktrdr--a/../../x", "id"},
		{"id of another app", entry("other--a", ok), "other--a", "id"},
		{"id with upper case", entry("ktrdr--A", ok), "ktrdr--A", "id"},
		{"slot 0 is the main checkout's", entry("ktrdr--a", `"slot": 0, "path": "/src/a"`), "ktrdr--a", "slot"},
		{"slot above the range", entry("ktrdr--a", `"slot": 11, "path": "/src/a"`), "ktrdr--a", "slot"},
		{"negative slot", entry("ktrdr--a", `"slot": -1, "path": "/src/a"`), "ktrdr--a", "slot"},
		{"relative path", entry("ktrdr--a", `"slot": 1, "path": "src/a"`), "ktrdr--a", "path"},
		{"path that climbs", entry("ktrdr--a", `"slot": 1, "path": "/src/../../etc"`), "ktrdr--a", "path"},
		{"no path", entry("ktrdr--a", `"slot": 1`), "ktrdr--a", "path"},
		{"relative parent repository", entry("ktrdr--a", `"slot": 1, "path": "/src/a", "is_worktree": true, "parent_repo": "main"`), "ktrdr--a", "parent_repo"},
		{"worktree without parent repository", entry("ktrdr--a", `"slot": 1, "path": "/src/a", "is_worktree": true`), "ktrdr--a", "parent_repo"},
		{"created_at that is no time", entry("ktrdr--a", `"slot": 1, "path": "/src/a", "created_at": "yesterday"`), "ktrdr--a", "created_at"},
		{"duplicate slot", `{"version": 1, "instances": {"ktrdr--a": {"slot": 2, "path": "/src/a"}, "ktrdr--b": {"slot": 2, "path": "/src/b"}}}`, "ktrdr--b", "slot"},
		{"duplicate path", `{"version": 1, "instances": {"ktrdr--a": {"slot": 1, "path": "/src/a"}, "ktrdr--b": {"slot": 2, "path": "/src/a"}}}`, "ktrdr--b", "path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, home := newTestRegistry(t)
			require.NoError(t, os.MkdirAll(filepath.Dir(reg.Path), 0o755))
			require.NoError(t, os.WriteFile(reg.Path, []byte(tt.content), 0o644))

			_, err := reg.Instances()
			var ce *RegistryCorruptError
			require.ErrorAs(t, err, &ce)
			assert.ErrorIs(t, err, ErrRegistryCorrupt)
			assert.Equal(t, tt.id, ce.ID)
			assert.Equal(t, tt.field, ce.Field)
			assert.Contains(t, err.Error(), reg.Path)
			assert.Contains(t, err.Error(), fmt.Sprintf("%q", tt.id))

			_, err = reg.CleanStale(t.Context(), nil)
			assert.ErrorAs(t, err, &ce)
			_, err = reg.Register(t.Context(), "ktrdr--x", Instance{Path: filepath.Join(home, "x")}, 0, nil)
			assert.ErrorAs(t, err, &ce)
			after, err := os.ReadFile(reg.Path)
			require.NoError(t, err)
			assert.Equal(t, tt.content, string(after), "a damaged registry is never rewritten")
		})
	}
}

// The slot range is the configured one: a wider profile reads slots that
// the default one refuses.
func TestRegistrySlotRangeFollowsTheProfile(t *testing.T) {
	content := []byte(`{"version": 1, "instances": {"ktrdr--a": {"slot": 20, "path": "/src/a"}}}`)
	_, err := KTRDR().parseRegistry("instances.json", content)
	var ce *RegistryCorruptError
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, err.Error(), "slot 20 is outside the sandbox slots 1–10")
	wide, err := KTRDR().WithSlots(1, 20)
	require.NoError(t, err)
	rf, err := wide.parseRegistry("instances.json", content)
	require.NoError(t, err)
	assert.Equal(t, 20, rf.Instances["ktrdr--a"].Slot)
}

// Register writes nothing that reading would refuse.
func TestRegistryRegisterRefusesInvalidInput(t *testing.T) {
	reg, home := newTestRegistry(t)
	for _, c := range []struct {
		id string
		in Instance
	}{
		{"../../x", Instance{Path: filepath.Join(home, "x")}},
		{"ktrdr--a", Instance{Path: "relative"}},
		{"ktrdr--a", Instance{Path: filepath.Join(home, "a"), IsWorktree: true}},
	} {
		_, err := reg.Register(t.Context(), c.id, c.in, 0, nil)
		assert.Error(t, err, c.id)
	}
	assert.NoFileExists(t, reg.Path, "nothing was written")
}

// A created_at far in the future is no age at all: a stale entry with one is
// cleaned instead of being kept for ever as "young"; a little ahead is clock
// skew, and young.
func TestRegistryFutureCreatedAtDoesNotKeepAStaleEntry(t *testing.T) {
	reg, home := newTestRegistry(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	reg.Now = func() time.Time { return now }
	for id, at := range map[string]time.Time{
		"ktrdr--future": now.Add(100 * 365 * 24 * time.Hour),
		"ktrdr--hour":   now.Add(time.Hour),
		"ktrdr--skew":   now.Add(30 * time.Second),
		"ktrdr--young":  now.Add(-30 * time.Second),
		"ktrdr--old":    now.Add(-time.Hour),
	} {
		_, err := reg.Register(t.Context(), id, Instance{Path: filepath.Join(home, "gone", id), CreatedAt: at.Format(time.RFC3339)}, 0, nil)
		require.NoError(t, err)
	}
	stale, err := reg.CleanStale(t.Context(), nil)
	require.NoError(t, err)
	var cleaned []string
	for _, s := range stale {
		cleaned = append(cleaned, s.ID)
	}
	assert.Equal(t, []string{"ktrdr--future", "ktrdr--hour", "ktrdr--old"}, cleaned)
	m, err := reg.Instances()
	require.NoError(t, err)
	assert.Equal(t, []string{"ktrdr--skew", "ktrdr--young"}, slices.Sorted(maps.Keys(m)))
}

// A lock file that is a symlink is refused: opening it would create (or
// touch) whatever it points at.
func TestRegistryRefusesASymlinkedLockFile(t *testing.T) {
	for _, dangling := range []bool{true, false} {
		t.Run(fmt.Sprintf("dangling=%v", dangling), func(t *testing.T) {
			reg, home := newTestRegistry(t)
			require.NoError(t, os.MkdirAll(filepath.Dir(reg.Path), 0o755))
			victim := filepath.Join(t.TempDir(), "victim")
			if !dangling {
				require.NoError(t, os.WriteFile(victim, []byte("precious"), 0o600))
			}
			require.NoError(t, os.Symlink(victim, reg.Path+".lock"))

			_, err := reg.Register(t.Context(), "ktrdr--a", Instance{Path: filepath.Join(home, "a")}, 0, nil)
			var ue *UnsafePathError
			require.ErrorAs(t, err, &ue)
			assert.Equal(t, reg.Path+".lock", ue.Path)
			assert.Equal(t, "lock", ue.Op)
			assert.Contains(t, err.Error(), "symlink to "+victim)
			if dangling {
				assert.NoFileExists(t, victim, "the link's target was not created")
			} else {
				assert.Equal(t, "precious", fileText(t, victim))
				fi, err := os.Stat(victim)
				require.NoError(t, err)
				assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())
			}
			assert.NoFileExists(t, reg.Path, "nothing was registered")
		})
	}
}
