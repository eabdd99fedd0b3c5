package merge

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// snapshot returns every file under dir (not following links) with its
// content, or its link target.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			out[rel] = "-> " + l
			return err
		case d.IsDir():
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			out[rel+"/"] = ""
		default:
			b, err := os.ReadFile(p)
			out[rel] = string(b)
			return err
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

// A branch can commit a .ktrdr-merge link (.gitignore ignores only the
// folder form). Merge, verify and rollback must not write through it: not
// into a folder outside the checkout, not over the checkout's own files.
func TestCommittedStateLinkCannotRedirectMergeWrites(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		target string // the link's target, relative to the checkout
		victim func(dir string) string
	}{
		{"link to a folder outside", "../victim", func(dir string) string { return filepath.Join(filepath.Dir(dir), "victim") }},
		{"link to the checkout itself", ".", func(dir string) string { return dir }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, legacy := newRepo(t)
			victim := tt.victim(dir)
			require.NoError(t, os.MkdirAll(victim, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(victim, ".gitignore"), []byte("/data/\n"), 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(victim, "notes.txt"), []byte("mine\n"), 0o644))
			// A state that claims a merge is in place: it must not be believed.
			require.NoError(t, os.WriteFile(filepath.Join(victim, StateName), []byte(`{"version":1,"tag":"evil","sha256":"00"}`), 0o644))
			require.NoError(t, os.Symlink(tt.target, filepath.Join(dir, StateDir)))
			gitT(t, dir, "add", "-A")
			gitT(t, dir, "commit", "-q", "-m", "a branch ships a .ktrdr-merge link")
			before := snapshot(t, victim)

			res, err := Apply(t.Context(), legacyOpts(dir))
			require.NoError(t, err, "%v", res.Report.Items)
			rep, err := Verify(t.Context(), opts(dir))
			require.NoError(t, err)
			assert.True(t, rep.OK(), "%v", rep.Items)
			_, err = Rollback(t.Context(), opts(dir))
			require.NoError(t, err)
			_, err = Rollback(t.Context(), opts(dir))
			require.NoError(t, err)

			after := snapshot(t, victim)
			if victim == dir { // the main file was merged and restored
				assert.Equal(t, string(legacy), after["docker-compose.yml"])
			}
			assert.Equal(t, before, after, "nothing written through the link")
			assert.Equal(t, "-> "+tt.target, snapshot(t, dir)[StateDir], "the link is left alone")
			assert.Equal(t, storeOf(t, dir).Dir, filepath.Dir(res.State), "the state is under HOME")
		})
	}
}

// The state folder under HOME is written only if it is a real folder of
// this user that others cannot write.
func TestStateFolderMustBeARealOwnedFolder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, s store)
		want  string
	}{
		{"a link", func(t *testing.T, s store) {
			elsewhere := t.TempDir()
			require.NoError(t, os.MkdirAll(filepath.Dir(s.Dir), 0o700))
			require.NoError(t, os.Symlink(elsewhere, s.Dir))
		}, "is not a folder"},
		{"writable by others", func(t *testing.T, s store) {
			require.NoError(t, os.MkdirAll(s.Dir, 0o700))
			require.NoError(t, os.Chmod(s.Dir, 0o777))
		}, "can be written by others"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, legacy := newRepo(t)
			s := storeOf(t, dir)
			tt.setup(t, s)
			_, err := Apply(t.Context(), legacyOpts(dir))
			require.ErrorContains(t, err, tt.want)
			assert.Contains(t, err.Error(), s.Dir)
			assert.Equal(t, legacy, readT(t, filepath.Join(dir, "docker-compose.yml")))
			assert.Empty(t, gitT(t, dir, "tag", "--list"), "the tag was undone")
		})
	}
}

// writeLegacyMerge leaves the checkout as an older version's merge:apply
// did: the tag, <checkout>/.ktrdr-merge/{.gitignore,state.json,backup}, and
// the merged file.
func writeLegacyMerge(t *testing.T, dir string, legacy []byte) (merged []byte) {
	t.Helper()
	merged = readT(t, "../../docker-compose.yml")
	gitT(t, dir, "tag", testTag, "HEAD")
	sd := filepath.Join(dir, StateDir)
	require.NoError(t, os.Mkdir(sd, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(sd, ".gitignore"), []byte("*\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(sd, BackupName), legacy, 0o644))
	st, err := json.MarshalIndent(State{Version: 1, Tag: testTag, SHA256: sum(legacy), CreatedAt: "2025-12-01T00:00:00Z",
		Source: "./docker-compose.sandbox.yml", MergedSHA256: sum(merged)}, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(sd, StateName), st, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker-compose.yml"), merged, 0o644))
	return merged
}

// A merge made by an older version (state in the checkout) is still found:
// apply refuses while it is in place, verify compares with its backup, and
// rollback restores from it. Nothing is written into the old folder; the
// rollback is recorded under HOME.
func TestOlderStateInTheCheckoutIsStillRolledBack(t *testing.T) {
	t.Parallel()
	dir, legacy := newRepo(t)
	writeLegacyMerge(t, dir, legacy)
	old := snapshot(t, filepath.Join(dir, StateDir))

	_, err := Apply(t.Context(), legacyOpts(dir))
	require.ErrorIs(t, err, ErrMergeApplied)
	assert.Contains(t, err.Error(), "./.ktrdr-merge/state.json")

	rep, err := Verify(t.Context(), legacyOpts(dir))
	require.NoError(t, err)
	compat, _ := itemNamed(rep, ItemCompatible)
	assert.Contains(t, compat.Name, "./.ktrdr-merge/"+BackupName)
	assert.True(t, compat.OK, compat.String())

	res, err := Rollback(t.Context(), opts(dir))
	require.NoError(t, err)
	assert.Equal(t, RestoredFromBackup, res.Action)
	assert.Equal(t, legacy, readT(t, filepath.Join(dir, "docker-compose.yml")))
	assert.Equal(t, old, snapshot(t, filepath.Join(dir, StateDir)), "the old folder is only read")

	again, err := Rollback(t.Context(), opts(dir))
	require.NoError(t, err)
	assert.Equal(t, NothingToDo, again.Action)
	assert.Contains(t, again.Message, "was rolled back")
	var st State
	require.NoError(t, json.Unmarshal(readT(t, storeOf(t, dir).statePath()), &st))
	assert.Equal(t, testTag, st.Tag)
	assert.NotEmpty(t, st.RolledBackAt)
}

// In the ktrdr repository docker-compose.yml is a link to
// deploy/environments/local/docker-compose.yml: the merged content goes to
// that file, the link stays a link, and rollback restores that file.
func TestMainFileLinkInsideTheCheckoutIsFollowed(t *testing.T) {
	t.Parallel()
	for _, fromTag := range []bool{false, true} {
		name := "from the backup"
		if fromTag {
			name = "from the tag"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir, legacy := newRepo(t)
			real := filepath.Join(dir, "deploy", "environments", "local", "docker-compose.yml")
			link := filepath.Join(dir, "docker-compose.yml")
			require.NoError(t, os.MkdirAll(filepath.Dir(real), 0o755))
			require.NoError(t, os.Rename(link, real))
			require.NoError(t, os.Symlink("deploy/environments/local/docker-compose.yml", link))
			gitT(t, dir, "add", "-A")
			gitT(t, dir, "commit", "-q", "-m", "compose file under deploy/")

			res, err := Apply(t.Context(), legacyOpts(dir))
			require.NoError(t, err, "%v", res.Report.Items)
			assert.Equal(t, real, res.File)
			l, err := os.Readlink(link)
			require.NoError(t, err, "still a link")
			assert.Equal(t, "deploy/environments/local/docker-compose.yml", l)
			assert.Contains(t, string(readT(t, real)), "merged with the sandbox parameters")
			rep, err := Verify(t.Context(), opts(dir))
			require.NoError(t, err)
			assert.True(t, rep.OK(), "%v", rep.Items)

			if fromTag {
				require.NoError(t, os.Remove(storeOf(t, dir).backupPath()))
			}
			rb, err := Rollback(t.Context(), opts(dir))
			require.NoError(t, err)
			assert.Equal(t, map[bool]Action{false: RestoredFromBackup, true: RestoredFromTag}[fromTag], rb.Action)
			assert.Equal(t, legacy, readT(t, real), "byte for byte")
			l, err = os.Readlink(link)
			require.NoError(t, err, "still a link")
			assert.Equal(t, "deploy/environments/local/docker-compose.yml", l)
		})
	}
}

// A docker-compose.yml link that leaves the checkout is never written
// through.
func TestMainFileLinkOutsideTheCheckoutIsRefused(t *testing.T) {
	t.Parallel()
	dir, legacy := newRepo(t)
	outside := filepath.Join(filepath.Dir(dir), "outside.yml")
	require.NoError(t, os.WriteFile(outside, legacy, 0o644))
	require.NoError(t, os.Remove(filepath.Join(dir, "docker-compose.yml")))
	require.NoError(t, os.Symlink("../outside.yml", filepath.Join(dir, "docker-compose.yml")))
	gitT(t, dir, "add", "-A")
	gitT(t, dir, "commit", "-q", "-m", "a link out")

	_, err := Apply(t.Context(), legacyOpts(dir))
	require.ErrorContains(t, err, "outside the checkout")
	assert.Equal(t, legacy, readT(t, outside))
	assert.Empty(t, gitT(t, dir, "tag", "--list"))
	assert.NoDirExists(t, filepath.Join(homeOf(dir), ".ktrdr"))
}
