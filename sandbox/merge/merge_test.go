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
	legacy := readT(t, "testdata/docker-compose.legacy.yml")
	return newRepoWith(t, legacy), legacy
}

// newRepoWith returns a temporary git repository, <tmp>/ktrdr, whose one
// commit holds main as docker-compose.yml and the repo's real
// docker-compose.sandbox.yml. Its merge state goes to <tmp>/home (see opts).
func newRepoWith(t testing.TB, main []byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ktrdr")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker-compose.yml"), main, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker-compose.sandbox.yml"), readT(t, "../../docker-compose.sandbox.yml"), 0o644))
	gitT(t, dir, "init", "-q", "-b", "main")
	gitT(t, dir, "config", "user.name", "Merge Test")
	gitT(t, dir, "config", "user.email", "merge-test@example.com")
	gitT(t, dir, "config", "commit.gpgsign", "false")
	gitT(t, dir, "config", "tag.gpgsign", "false")
	gitT(t, dir, "add", ".")
	gitT(t, dir, "commit", "-q", "-m", "legacy stack")
	return dir
}

// opts works in dir with <dir>/../home as the home folder.
func opts(dir string) Options {
	return Options{Dir: dir, Home: homeOf(dir), Now: func() time.Time { return testNow }}
}

func homeOf(dir string) string { return filepath.Join(filepath.Dir(dir), "home") }

// legacyAccept accepts what merging the sandbox file into the legacy file
// changes on purpose.
var legacyAccept = []string{"*.environment", "*.healthcheck"}

func itemNamed(r Report, prefix string) (Item, bool) {
	for _, it := range r.Items {
		if strings.HasPrefix(it.Name, prefix) {
			return it, true
		}
	}
	return Item{}, false
}

// storeOf is where the merge state of the checkout dir lives (opts(dir)).
func storeOf(t testing.TB, dir string) store {
	t.Helper()
	o, err := opts(dir).withDefaults()
	require.NoError(t, err)
	s, err := locateStore(t.Context(), o)
	require.NoError(t, err)
	return s
}

// legacyOpts merges the sandbox file into the legacy file, accepting what
// that changes on purpose.
func legacyOpts(dir string) Options {
	o := opts(dir)
	o.Accept = legacyAccept
	return o
}

// assertNothingLeft checks what a refused Apply must leave: no tag, no merge
// state anywhere, nothing new in the checkout, and the main file as before.
func assertNothingLeft(t *testing.T, dir string, before []byte) {
	t.Helper()
	assert.Empty(t, gitT(t, dir, "tag", "--list"), "no tag created")
	assert.NoDirExists(t, filepath.Join(homeOf(dir), ".ktrdr"), "no merge state")
	assert.NoDirExists(t, filepath.Join(dir, StateDir))
	assert.NotContains(t, gitT(t, dir, "status", "--porcelain", "--untracked-files=all", "--ignored"), "??", "nothing new in the checkout")
	assert.NotContains(t, gitT(t, dir, "status", "--porcelain", "--untracked-files=all", "--ignored"), "!!", "nothing new in the checkout")
	assert.Equal(t, before, readT(t, filepath.Join(dir, "docker-compose.yml")), "main file byte-identical")
}

func TestApplyThenVerifyPasses(t *testing.T) {
	t.Parallel()
	dir, legacy := newRepo(t)
	res, err := Apply(t.Context(), legacyOpts(dir))
	require.NoError(t, err, "report: %v", res.Report.Items)

	assert.Equal(t, testTag, res.Tag)
	assert.True(t, res.Report.OK(), "%v", res.Report.Items)
	compat, ok := itemNamed(res.Report, ItemCompatible)
	require.True(t, ok)
	assert.False(t, compat.Skipped, "item 3 compares with the file it replaces")
	assert.Contains(t, compat.Reason, "accepted changes:")
	assert.Contains(t, compat.Reason, "db.healthcheck: test=")
	assert.Empty(t, res.Report.Unaccepted())

	// the backup, its state and the tag, under HOME
	s := storeOf(t, dir)
	assert.Equal(t, s.backupPath(), res.Backup)
	assert.Equal(t, legacy, readT(t, s.backupPath()))
	var st State
	require.NoError(t, json.Unmarshal(readT(t, s.statePath()), &st))
	assert.Equal(t, StateVersion, st.Version)
	assert.Equal(t, testTag, st.Tag)
	assert.Equal(t, sum(legacy), st.SHA256)
	assert.Equal(t, "2026-01-02T03:04:05Z", st.CreatedAt)
	assert.Equal(t, "docker-compose.yml", st.File)
	assert.Equal(t, dir, st.Checkout)
	assert.Equal(t, legacyAccept, st.Accept)
	assert.Contains(t, st.Accepted, "db.environment: (none) → KTRDR_STANDIN_ROLE=db")
	assert.Empty(t, st.RolledBackAt)
	assert.Equal(t, string(legacy), gitT(t, dir, "show", testTag+":docker-compose.yml"))

	// the merged file: header, then the sandbox file
	merged := string(readT(t, filepath.Join(dir, "docker-compose.yml")))
	assert.True(t, strings.HasPrefix(merged, "# docker-compose.yml: the main ktrdr stack, merged"), merged[:120])
	assert.Contains(t, merged, testTag)
	assert.True(t, strings.HasSuffix(merged, string(readT(t, "../../docker-compose.sandbox.yml"))))
	assert.Equal(t, sum([]byte(merged)), st.MergedSHA256)

	// nothing in the checkout but the merged file
	assert.NoDirExists(t, filepath.Join(dir, StateDir))
	assert.Equal(t, " M docker-compose.yml\n", gitT(t, dir, "status", "--porcelain", "--untracked-files=all"))

	// a fresh Verify agrees: it knows what Apply accepted
	rep, err := Verify(t.Context(), opts(dir))
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%v", rep.Items)
	assert.Len(t, rep.Items, 6)
	compat, _ = itemNamed(rep, ItemCompatible)
	assert.Contains(t, compat.Name, BackupName)
	svc, _ := itemNamed(rep, ItemServices)
	assert.Contains(t, svc.Name, "./docker-compose.sandbox.yml")
}

func TestApplyRefusesWhileMerged(t *testing.T) {
	t.Parallel()
	dir, legacy := newRepo(t)
	_, err := Apply(t.Context(), legacyOpts(dir))
	require.NoError(t, err)
	gitT(t, dir, "commit", "-q", "-am", "merged")

	_, err = Apply(t.Context(), legacyOpts(dir))
	require.ErrorIs(t, err, ErrMergeApplied)
	assert.NotContains(t, err.Error(), "go tool mage", "the remedy is added at the edge")
	assert.Contains(t, err.Error(), testTag)

	// roll back, commit the old file again: a second merge gets its own tag
	_, err = Rollback(t.Context(), opts(dir))
	require.NoError(t, err)
	assert.Equal(t, legacy, readT(t, filepath.Join(dir, "docker-compose.yml")))
	gitT(t, dir, "commit", "-q", "-am", "rolled back")
	res, err := Apply(t.Context(), legacyOpts(dir))
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
			_, err := Apply(t.Context(), legacyOpts(dir))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assertNothingLeft(t, dir, before)
		})
	}
}

// TestBrokenMergedFilesAreRefused applies deliberately broken merged files:
// each fails the checklist naming the item and the culprit, and Apply
// leaves nothing behind.
func TestBrokenMergedFilesAreRefused(t *testing.T) {
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
				ItemCompatible: {"backend.ports: [8000:8000/tcp] → [8080:8000/tcp]"},
			},
		},
		{
			name: "container_name added",
			old:  "  backend:\n", new: "  backend:\n    container_name: ktrdr-backend\n",
			wantItems: map[string][]string{
				ItemNoName:     {"backend sets container_name: ktrdr-backend"},
				ItemCompatible: {"backend.container_name: (none) → \"ktrdr-backend\""},
			},
		},
		{
			name: "service dropped",
			old:  "  grafana:\n", new: "  grafana-gone:\n    profiles: [never]\n",
			wantItems: map[string][]string{
				ItemCompatible: {"the merged file drops service grafana, which the main file has"},
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
				ItemCompatible: {"backend.volumes: bind ./models:/app/models → bind ./model:/app/models"},
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

			o := legacyOpts(dir)
			o.From = from
			res, err := Apply(t.Context(), o)

			var ve *VerifyError
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, NothingWritten, ve.Outcome)
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
			assertNothingLeft(t, dir, legacy)
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
		{"from the backup", func(*testing.T, string) {}, RestoredFromBackup, "from the backup "},
		{"backup deleted: from the tag", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(storeOf(t, dir).backupPath()))
		}, RestoredFromTag, "from tag " + testTag},
		{"backup damaged: from the tag", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(storeOf(t, dir).backupPath(), []byte("services: {}\n"), 0o644))
		}, RestoredFromTag, "from tag " + testTag},
		{"merged file deleted", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "docker-compose.yml")))
		}, RestoredFromBackup, "byte-identical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, legacy := newRepo(t)
			_, err := Apply(t.Context(), legacyOpts(dir))
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
			assert.Contains(t, again.Message, "was rolled back at 2026-01-02T03:04:05Z")
			assert.Equal(t, legacy, readT(t, filepath.Join(dir, "docker-compose.yml")))

			// kept: the tag and the state; gone: the backup
			s := storeOf(t, dir)
			assert.FileExists(t, s.statePath())
			assert.NoFileExists(t, s.backupPath(), "a rolled-back merge needs no backup")
			assert.Contains(t, gitT(t, dir, "tag", "--list"), testTag)
			assert.NoDirExists(t, filepath.Join(dir, StateDir))
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
	assert.NoDirExists(t, filepath.Join(homeOf(dir), ".ktrdr"), "rollback creates nothing")
	assert.Equal(t, legacy, readT(t, filepath.Join(dir, "docker-compose.yml")))
}

func TestVerifyComparesWithTheTagWhenTheBackupIsGone(t *testing.T) {
	t.Parallel()
	dir, _ := newRepo(t)
	_, err := Apply(t.Context(), legacyOpts(dir))
	require.NoError(t, err)
	require.NoError(t, os.Remove(storeOf(t, dir).backupPath()))

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
	_, err := Apply(b.Context(), legacyOpts(dir))
	require.NoError(b, err)
	main := filepath.Join(dir, "docker-compose.yml")
	merged := readT(b, main)
	s := storeOf(b, dir)
	state, backup := readT(b, s.statePath()), readT(b, s.backupPath())
	o := opts(dir)
	for b.Loop() {
		b.StopTimer()
		require.NoError(b, os.WriteFile(main, merged, 0o644))
		require.NoError(b, os.WriteFile(s.statePath(), state, 0o600))
		require.NoError(b, os.WriteFile(s.backupPath(), backup, 0o600))
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
	_, err := Apply(t.Context(), legacyOpts(dir))
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
	assert.Equal(t, storeOf(t, dir).Dir, filepath.Dir(res.Kept), "beside the state, outside the checkout")
}

// A live check that fails after the merged file was written undoes all of
// it: the file, the tag, and the state, which gets back its earlier
// (rolled-back) content.
func TestApplyUndoesEverythingWhenTheLiveCheckFails(t *testing.T) {
	t.Parallel()
	dir, legacy := newRepo(t)
	_, err := Apply(t.Context(), legacyOpts(dir))
	require.NoError(t, err)
	_, err = Rollback(t.Context(), opts(dir))
	require.NoError(t, err)
	s := storeOf(t, dir)
	earlier := readT(t, s.statePath())
	tags := gitT(t, dir, "tag", "--list")

	o := legacyOpts(dir)
	o.Now = func() time.Time { return testNow.Add(time.Hour) }
	o.Live = func(context.Context) error {
		// the merged file is in place while the live check runs
		assert.Contains(t, string(readT(t, filepath.Join(dir, "docker-compose.yml"))), "merged with the sandbox parameters")
		return errors.New("GET :8000/api/v1/health: connection refused")
	}
	res, err := Apply(t.Context(), o)
	var ve *VerifyError
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, ve.Outcome, "undone: docker-compose.yml restored byte for byte, tag "+TagPrefix+"20260102T040405Z deleted")
	assert.Contains(t, err.Error(), "connection refused")
	assert.Empty(t, res.Tag)
	assert.Equal(t, legacy, readT(t, filepath.Join(dir, "docker-compose.yml")))
	assert.Equal(t, tags, gitT(t, dir, "tag", "--list"), "only the earlier tag")
	assert.Equal(t, earlier, readT(t, s.statePath()), "the earlier state is back")
	assert.NoFileExists(t, s.backupPath())
}
