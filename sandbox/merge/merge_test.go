package merge

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const testTag = TagPrefix + "20260102T030405Z"

// gitT runs git in dir and fails the test on error.
func gitT(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
	return string(out)
}

func readT(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// newRepo returns a temporary git repository whose one commit holds the
// legacy (pre-sandbox) docker-compose.yml and the repo's real
// docker-compose.sandbox.yml, and the legacy file's bytes.
func newRepo(t testing.TB) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	legacy := readT(t, "testdata/docker-compose.legacy.yml")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker-compose.yml"), legacy, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker-compose.sandbox.yml"), readT(t, "../../docker-compose.sandbox.yml"), 0o644))
	gitT(t, dir, "init", "-q", "-b", "main")
	gitT(t, dir, "config", "user.name", "Merge Test")
	gitT(t, dir, "config", "user.email", "merge-test@example.com")
	gitT(t, dir, "config", "commit.gpgsign", "false")
	gitT(t, dir, "config", "tag.gpgsign", "false")
	gitT(t, dir, "add", ".")
	gitT(t, dir, "commit", "-q", "-m", "legacy stack")
	return dir, legacy
}

func opts(dir string) Options {
	return Options{Dir: dir, Now: func() time.Time { return testNow }}
}

func itemNamed(r Report, prefix string) (Item, bool) {
	for _, it := range r.Items {
		if strings.HasPrefix(it.Name, prefix) {
			return it, true
		}
	}
	return Item{}, false
}

func TestApplyThenVerifyPasses(t *testing.T) {
	t.Parallel()
	dir, legacy := newRepo(t)
	res, err := Apply(t.Context(), opts(dir))
	require.NoError(t, err, "report: %v", res.Report.Items)

	assert.Equal(t, testTag, res.Tag)
	assert.True(t, res.Report.OK(), "%v", res.Report.Items)
	compat, ok := itemNamed(res.Report, ItemCompatible)
	require.True(t, ok)
	assert.False(t, compat.Skipped, "item 3 compares with the backup")
	assert.Contains(t, compat.Name, BackupName)

	// the backup, its state and the tag
	assert.Equal(t, legacy, readT(t, filepath.Join(dir, StateDir, BackupName)))
	var st State
	require.NoError(t, json.Unmarshal(readT(t, filepath.Join(dir, StateDir, StateName)), &st))
	assert.Equal(t, testTag, st.Tag)
	assert.Equal(t, sum(legacy), st.SHA256)
	assert.Equal(t, "2026-01-02T03:04:05Z", st.CreatedAt)
	assert.Empty(t, st.RolledBackAt)
	assert.Equal(t, string(legacy), gitT(t, dir, "show", testTag+":docker-compose.yml"))

	// the merged file: header, then the sandbox file
	merged := string(readT(t, filepath.Join(dir, "docker-compose.yml")))
	assert.True(t, strings.HasPrefix(merged, "# docker-compose.yml: the main ktrdr stack, merged"), merged[:120])
	assert.Contains(t, merged, testTag)
	assert.True(t, strings.HasSuffix(merged, string(readT(t, "../../docker-compose.sandbox.yml"))))
	assert.Equal(t, sum([]byte(merged)), st.MergedSHA256)

	// .ktrdr-merge is invisible to git
	assert.NotContains(t, gitT(t, dir, "status", "--porcelain", "--untracked-files=all"), StateDir)

	// a fresh Verify agrees
	rep, err := Verify(t.Context(), opts(dir))
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%v", rep.Items)
	assert.Len(t, rep.Items, 6)
}

func TestApplyRefusesWhileMerged(t *testing.T) {
	t.Parallel()
	dir, legacy := newRepo(t)
	_, err := Apply(t.Context(), opts(dir))
	require.NoError(t, err)
	gitT(t, dir, "commit", "-q", "-am", "merged")

	_, err = Apply(t.Context(), opts(dir))
	require.ErrorIs(t, err, ErrMergeApplied)
	assert.Contains(t, err.Error(), "merge:rollback")
	assert.Contains(t, err.Error(), testTag)

	// roll back, commit the old file again: a second merge gets its own tag
	_, err = Rollback(t.Context(), opts(dir))
	require.NoError(t, err)
	assert.Equal(t, legacy, readT(t, filepath.Join(dir, "docker-compose.yml")))
	gitT(t, dir, "commit", "-q", "-am", "rolled back")
	res, err := Apply(t.Context(), opts(dir))
	require.NoError(t, err)
	assert.Equal(t, testTag+"-2", res.Tag)
	assert.Contains(t, gitT(t, dir, "tag", "--list"), testTag+"\n", "the first tag is kept")
}

func TestApplyRefusesWithoutATaggableRollbackPoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		want   string
	}{
		{"uncommitted change", func(t *testing.T, dir string) {
			f := filepath.Join(dir, "docker-compose.yml")
			require.NoError(t, os.WriteFile(f, append(readT(t, f), "# local edit\n"...), 0o644))
		}, "uncommitted changes"},
		{"missing source", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "docker-compose.sandbox.yml")))
		}, "read the merge source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, _ := newRepo(t)
			tt.change(t, dir)
			before := readT(t, filepath.Join(dir, "docker-compose.yml"))
			_, err := Apply(t.Context(), opts(dir))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NoDirExists(t, filepath.Join(dir, StateDir), "nothing created")
			assert.Empty(t, gitT(t, dir, "tag", "--list"), "no tag created")
			assert.Equal(t, before, readT(t, filepath.Join(dir, "docker-compose.yml")))
		})
	}
}

// TestBrokenMergedFilesFailAndRollBack applies deliberately broken merged
// files: each fails the checklist naming the item and the culprit, and Apply
// leaves the pre-merge file in place, byte for byte.
func TestBrokenMergedFilesFailAndRollBack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		old, new  string
		wantItems map[string][]string // item name prefix → reason substrings
	}{
		{
			name: "default port changed",
			old:  `"${KTRDR_API_PORT:-8000}:8000"`, new: `"${KTRDR_API_PORT:-8080}:8000"`,
			wantItems: map[string][]string{
				ItemSlot0:      {"backend does not publish 8000 (KTRDR_API_PORT)", "8080→8000"},
				ItemCompatible: {"backend →8000: default host port changed: was 8000, now 8080"},
			},
		},
		{
			name: "container_name added",
			old:  "  backend:\n", new: "  backend:\n    container_name: ktrdr-backend\n",
			wantItems: map[string][]string{
				ItemNoName: {"backend sets container_name: ktrdr-backend"},
			},
		},
		{
			name: "service dropped",
			old:  "  grafana:\n", new: "  grafana-gone:\n    profiles: [never]\n",
			wantItems: map[string][]string{
				ItemServices:   {"grafana is in docker-compose.sandbox.yml but not in docker-compose.yml", "grafana-gone is in docker-compose.yml"},
				ItemCompatible: {"service grafana disappeared"},
				ItemSlot0:      {"grafana does not publish 3000"},
			},
		},
		{
			name: "unparameterised port",
			old:  `"${KTRDR_WORKER_PORT_3:-5005}:5005"`, new: `"5005:5005"`,
			wantItems: map[string][]string{
				ItemSlotN: {"slot 1: training-worker-1 →5005 publishes 5005, want 5012 (KTRDR_WORKER_PORT_3): not parameterised", "slot 10"},
			},
		},
		{
			name: "shared mount not parameterised",
			old:  "${KTRDR_DATA_DIR:-./data}:/app/data", new: "./data:/app/data",
			wantItems: map[string][]string{
				ItemSlotN: {"backend:/app/data does not mount $KTRDR_DATA_DIR"},
			},
		},
		{
			name: "wrong mount fallback",
			old:  "${KTRDR_MODELS_DIR:-./models}", new: "${KTRDR_MODELS_DIR:-./model}",
			wantItems: map[string][]string{
				ItemSlot0:      {"no service mounts ./models (the KTRDR_MODELS_DIR fallback)"},
				ItemCompatible: {"backend: mount ./models:/app/models is gone (now: ./model:/app/models)"},
			},
		},
		{
			name: "does not parse",
			old:  "services:\n", new: "services:\n  - oops\n",
			wantItems: map[string][]string{
				ItemParses: {"load ./docker-compose.yml"},
				ItemSlot0:  {"not checked"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, legacy := newRepo(t)
			src := string(readT(t, "../../docker-compose.sandbox.yml"))
			require.Contains(t, src, tt.old, "the sandbox file changed: update this test")
			from := filepath.Join(t.TempDir(), "broken.yml")
			require.NoError(t, os.WriteFile(from, []byte(strings.Replace(src, tt.old, tt.new, 1)), 0o644))

			o := opts(dir)
			o.From = from
			res, err := Apply(t.Context(), o)

			var ve *VerifyError
			require.ErrorAs(t, err, &ve)
			assert.Contains(t, ve.RolledBack, "rolled back: restored docker-compose.yml from the backup")
			for prefix, reasons := range tt.wantItems {
				it, ok := itemNamed(res.Report, prefix)
				if !assert.True(t, ok, "no item %q", prefix) {
					continue
				}
				assert.False(t, it.OK, "item %q should fail", prefix)
				for _, r := range reasons {
					assert.Contains(t, it.Reason, r, "item %q", prefix)
				}
				assert.Contains(t, err.Error(), it.Name)
			}
			assert.Equal(t, legacy, readT(t, filepath.Join(dir, "docker-compose.yml")), "rolled back byte for byte")

			var st State
			require.NoError(t, json.Unmarshal(readT(t, filepath.Join(dir, StateDir, StateName)), &st))
			assert.NotEmpty(t, st.RolledBackAt, "the state records the rollback, so Apply may run again")
		})
	}
}

func TestRollback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		damage     func(t *testing.T, dir string)
		wantAction Action
		wantMsg    string
	}{
		{"from the backup", func(*testing.T, string) {}, RestoredFromBackup, "from the backup ./.ktrdr-merge/docker-compose.yml.pre-merge"},
		{"backup deleted: from the tag", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, StateDir, BackupName)))
		}, RestoredFromTag, "from tag " + testTag},
		{"backup damaged: from the tag", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, StateDir, BackupName), []byte("services: {}\n"), 0o644))
		}, RestoredFromTag, "from tag " + testTag},
		{"merged file deleted", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "docker-compose.yml")))
		}, RestoredFromBackup, "byte-identical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, legacy := newRepo(t)
			_, err := Apply(t.Context(), opts(dir))
			require.NoError(t, err)
			require.NotEqual(t, legacy, readT(t, filepath.Join(dir, "docker-compose.yml")))
			tt.damage(t, dir)

			res, err := Rollback(t.Context(), opts(dir))
			require.NoError(t, err)
			assert.Equal(t, tt.wantAction, res.Action)
			assert.Contains(t, res.Message, tt.wantMsg)
			assert.Contains(t, res.Message, "tag "+testTag+" kept")
			assert.Equal(t, legacy, readT(t, filepath.Join(dir, "docker-compose.yml")), "byte for byte")

			// twice is harmless
			again, err := Rollback(t.Context(), opts(dir))
			require.NoError(t, err)
			assert.Equal(t, NothingToDo, again.Action)
			assert.Contains(t, again.Message, "already the pre-merge file")
			assert.Equal(t, legacy, readT(t, filepath.Join(dir, "docker-compose.yml")))

			// nothing deleted, the tag kept
			assert.FileExists(t, filepath.Join(dir, StateDir, StateName))
			assert.Contains(t, gitT(t, dir, "tag", "--list"), testTag)
		})
	}
}

func TestRollbackWithoutMergeStateDoesNothing(t *testing.T) {
	t.Parallel()
	dir, legacy := newRepo(t)
	res, err := Rollback(t.Context(), opts(dir))
	require.NoError(t, err)
	assert.Equal(t, NothingToDo, res.Action)
	assert.Contains(t, res.Message, "merge:apply never ran")
	assert.NoDirExists(t, filepath.Join(dir, StateDir))
	assert.Equal(t, legacy, readT(t, filepath.Join(dir, "docker-compose.yml")))
}

func TestVerifyComparesWithTheTagWhenTheBackupIsGone(t *testing.T) {
	t.Parallel()
	dir, _ := newRepo(t)
	_, err := Apply(t.Context(), opts(dir))
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(dir, StateDir, BackupName)))

	rep, err := Verify(t.Context(), opts(dir))
	require.NoError(t, err)
	it, ok := itemNamed(rep, ItemCompatible)
	require.True(t, ok)
	assert.True(t, it.OK, it.Reason)
	assert.Contains(t, it.Name, "tag "+testTag)
}

func TestVerifyLiveItem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		live   func(context.Context) error
		want   bool // item present
		ok     bool
		reason string
	}{
		{"not asked", nil, false, false, ""},
		{"passes", func(context.Context) error { return nil }, true, true, ""},
		{"fails", func(context.Context) error { return errors.New("GET :8000/api/v1/health: connection refused") }, true, false, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := opts("../..")
			o.Live = tt.live
			rep, err := Verify(t.Context(), o)
			require.NoError(t, err)
			it, ok := itemNamed(rep, ItemLive)
			require.Equal(t, tt.want, ok)
			if ok {
				assert.Equal(t, tt.ok, it.OK)
				assert.Contains(t, it.Reason, tt.reason)
			}
		})
	}
}

// TestRealComposeFile: the repository's own docker-compose.yml passes every
// item that does not need a pre-merge file.
func TestRealComposeFile(t *testing.T) {
	t.Parallel()
	rep, err := Verify(t.Context(), opts("../.."))
	require.NoError(t, err)
	for _, name := range []string{ItemParses, ItemSlot0, ItemSlotN, ItemNoName, ItemServices} {
		it, ok := itemNamed(rep, name)
		if assert.True(t, ok, name) {
			assert.True(t, it.OK, it.String())
		}
	}
}

func TestVerifyIgnoresTheProcessEnvironment(t *testing.T) {
	t.Setenv("KTRDR_API_PORT", "8123")
	t.Setenv("KTRDR_DATA_DIR", "/elsewhere")
	rep, err := Verify(t.Context(), opts("../.."))
	require.NoError(t, err)
	it, _ := itemNamed(rep, ItemSlot0)
	assert.True(t, it.OK, it.String())
}

func TestItemString(t *testing.T) {
	assert.Equal(t, "✓ a", Item{Name: "a", OK: true}.String())
	assert.Equal(t, "✗ a: b", Item{Name: "a", Reason: "b"}.String())
	assert.Equal(t, "✓ a — skipped: c", Item{Name: "a", OK: true, Skipped: true, Reason: "skipped: c"}.String())
}

// BenchmarkRollback times Rollback from the backup with the merged file in
// place; resetting the merged file and the state is outside the timer.
func BenchmarkRollback(b *testing.B) {
	dir, legacy := newRepo(b)
	_, err := Apply(b.Context(), opts(dir))
	require.NoError(b, err)
	main := filepath.Join(dir, "docker-compose.yml")
	merged := readT(b, main)
	state := readT(b, filepath.Join(dir, StateDir, StateName))
	o := opts(dir)
	for b.Loop() {
		b.StopTimer()
		require.NoError(b, os.WriteFile(main, merged, 0o644))
		require.NoError(b, os.WriteFile(filepath.Join(dir, StateDir, StateName), state, 0o644))
		b.StartTimer()
		res, err := Rollback(b.Context(), o)
		if err != nil || res.Action != RestoredFromBackup {
			b.Fatalf("rollback: %v %v", res.Action, err)
		}
	}
	b.StopTimer()
	require.Equal(b, legacy, readT(b, main))
}

// Edits made to the merged file after Apply are saved, not thrown away.
func TestRollbackKeepsEditsMadeAfterTheMerge(t *testing.T) {
	t.Parallel()
	dir, legacy := newRepo(t)
	_, err := Apply(t.Context(), opts(dir))
	require.NoError(t, err)
	path := filepath.Join(dir, "docker-compose.yml")
	edited := append(readT(t, path), []byte("# a later local tweak\n")...)
	require.NoError(t, os.WriteFile(path, edited, 0o644))

	res, err := Rollback(t.Context(), opts(dir))
	require.NoError(t, err)
	assert.Equal(t, legacy, readT(t, path))
	require.NotEmpty(t, res.Kept)
	assert.Equal(t, edited, readT(t, res.Kept))
	assert.Contains(t, res.Message, "your edits since the merge are saved in")
}
