package shared

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktrdr/sandboxkit/internal/treesnap"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shWrite creates a file (and its folders) with content and mode.
func shWrite(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), mode))
	require.NoError(t, os.Chmod(path, mode))
}

// shRead returns a file's content.
func shRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// shTree lists every path below dir ("data/a.csv", "data/link -> a.csv"),
// so a test can assert exactly what exists.
func shTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.Type() == fs.ModeSymlink:
			target, err := os.Readlink(p)
			require.NoError(t, err)
			rel += " -> " + target
		case d.IsDir():
			rel += "/"
		}
		out = append(out, rel)
		return nil
	}))
	return out
}

// shBackup builds a typical backup: three folders, a nested file, a
// restrictive mode, a symlink to a file and a symlink to a folder.
func shBackup(t *testing.T, from string) {
	t.Helper()
	shWrite(t, filepath.Join(from, "data", "eurusd", "1h.csv"), "t,o,h,l,c\n", 0o640)
	shWrite(t, filepath.Join(from, "data", "readme.txt"), "hello", 0o644)
	shWrite(t, filepath.Join(from, "models", "m1", "model.pt"), "weights", 0o600)
	shWrite(t, filepath.Join(from, "strategies", "rsi.yaml"), "name: rsi\n", 0o755)
	require.NoError(t, os.Chmod(filepath.Join(from, "models", "m1"), 0o750))
	require.NoError(t, os.Symlink("eurusd/1h.csv", filepath.Join(from, "data", "latest.csv")))
	require.NoError(t, os.Symlink("../data/eurusd", filepath.Join(from, "strategies", "linked-dir")))
}

// ktrdrFolders are the folders of the ktrdr profile.
var ktrdrFolders = []string{"data", "models", "strategies"}

// initK is Init with the ktrdr folders unless o names others.
func initK(ctx context.Context, o Options) (Report, error) {
	if o.Folders == nil {
		o.Folders = ktrdrFolders
	}
	return Init(ctx, o)
}

func TestInit(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, from, root string) // may be nil
		opts  func(from, root string) Options
		check func(t *testing.T, from, root string, rep Report, err error)
	}{
		{
			name: "minimal creates the empty tree",
			opts: func(from, root string) Options { return Options{Root: root, Minimal: true} },
			check: func(t *testing.T, from, root string, rep Report, err error) {
				require.NoError(t, err)
				assert.Equal(t, []string{"data/", "models/", "strategies/"}, shTree(t, root))
				assert.Equal(t, []string{"data", "models", "strategies"}, rep.Created)
				require.Len(t, rep.Folders, 3)
				assert.Equal(t, Folder{Name: "data", Path: filepath.Join(root, "data")}, rep.Folders[0])
			},
		},
		{
			name:  "copies files, folders, modes and symlinks",
			setup: func(t *testing.T, from, root string) { shBackup(t, from) },
			opts:  func(from, root string) Options { return Options{Root: root, From: from} },
			check: func(t *testing.T, from, root string, rep Report, err error) {
				require.NoError(t, err)
				assert.Equal(t, shTree(t, from), shTree(t, root))
				assert.Equal(t, "t,o,h,l,c\n", shRead(t, filepath.Join(root, "data", "eurusd", "1h.csv")))
				for path, want := range map[string]fs.FileMode{
					"data/eurusd/1h.csv":  0o640,
					"models/m1/model.pt":  0o600,
					"models/m1":           0o750 | fs.ModeDir,
					"strategies/rsi.yaml": 0o755,
				} {
					fi, err := os.Lstat(filepath.Join(root, path))
					require.NoError(t, err)
					assert.Equal(t, want, fi.Mode(), path)
				}
				fi, err := os.Lstat(filepath.Join(root, "strategies", "linked-dir"))
				require.NoError(t, err)
				assert.Equal(t, fs.ModeSymlink, fi.Mode().Type(), "a symlink to a folder stays a symlink")
				assert.Equal(t, []string{"data/eurusd/1h.csv", "data/latest.csv", "data/readme.txt",
					"models/m1/model.pt", "strategies/linked-dir", "strategies/rsi.yaml"}, rep.Copied)
				assert.Equal(t, int64(len("t,o,h,l,c\n")+len("hello")+len("weights")+len("name: rsi\n")), rep.CopiedBytes)
				assert.Equal(t, Folder{Name: "data", Path: filepath.Join(root, "data"), Files: 3, Bytes: 15}, rep.Folders[0])
				assert.Empty(t, rep.Overwritten)
				assert.Empty(t, rep.Skipped)
			},
		},
		{
			name: "a backup named like a shared folder is copied into it",
			setup: func(t *testing.T, from, root string) {
				shWrite(t, filepath.Join(from, "data", "x.csv"), "x", 0o644)
			},
			opts: func(from, root string) Options {
				return Options{Root: root, From: filepath.Join(from, "data")}
			},
			check: func(t *testing.T, from, root string, rep Report, err error) {
				require.NoError(t, err)
				assert.Equal(t, []string{"data/", "data/x.csv", "models/", "strategies/"}, shTree(t, root))
			},
		},
		{
			name: "conflict is refused and nothing is copied",
			setup: func(t *testing.T, from, root string) {
				shBackup(t, from)
				shWrite(t, filepath.Join(root, "data", "readme.txt"), "mine", 0o644)
				shWrite(t, filepath.Join(root, "data", "eurusd", "1h.csv"), "t,o,h,l,c\n", 0o640) // identical
			},
			opts: func(from, root string) Options { return Options{Root: root, From: from} },
			check: func(t *testing.T, from, root string, rep Report, err error) {
				var ce *ConflictError
				require.ErrorAs(t, err, &ce)
				assert.Equal(t, []string{"data/readme.txt"}, ce.Paths)
				assert.Contains(t, err.Error(), "data/readme.txt")
				assert.Contains(t, err.Error(), "nothing copied")
				assert.Equal(t, []string{"data/", "data/eurusd/", "data/eurusd/1h.csv", "data/readme.txt"}, shTree(t, root),
					"no file copied, no folder created")
				assert.Equal(t, "mine", shRead(t, filepath.Join(root, "data", "readme.txt")))
			},
		},
		{
			name: "merge overwrites files that differ and reports them",
			setup: func(t *testing.T, from, root string) {
				shBackup(t, from)
				shWrite(t, filepath.Join(root, "data", "readme.txt"), "mine", 0o600)
				shWrite(t, filepath.Join(root, "data", "eurusd", "1h.csv"), "t,o,h,l,c\n", 0o640)
				require.NoError(t, os.Symlink("elsewhere.csv", filepath.Join(root, "data", "latest.csv")))
				shWrite(t, filepath.Join(root, "data", "only-mine.txt"), "keep", 0o644)
			},
			opts: func(from, root string) Options { return Options{Root: root, From: from, Merge: true} },
			check: func(t *testing.T, from, root string, rep Report, err error) {
				require.NoError(t, err)
				assert.Equal(t, []string{"data/latest.csv", "data/readme.txt"}, rep.Overwritten)
				assert.Equal(t, []string{"data/eurusd/1h.csv"}, rep.Skipped)
				assert.Equal(t, "hello", shRead(t, filepath.Join(root, "data", "readme.txt")))
				fi, err := os.Stat(filepath.Join(root, "data", "readme.txt"))
				require.NoError(t, err)
				assert.Equal(t, fs.FileMode(0o644), fi.Mode(), "the backup's mode comes with it")
				target, err := os.Readlink(filepath.Join(root, "data", "latest.csv"))
				require.NoError(t, err)
				assert.Equal(t, "eurusd/1h.csv", target)
				assert.Equal(t, "keep", shRead(t, filepath.Join(root, "data", "only-mine.txt")), "existing content is never deleted")
			},
		},
		{
			name: "file where the backup has a folder is refused even with merge",
			setup: func(t *testing.T, from, root string) {
				shBackup(t, from)
				shWrite(t, filepath.Join(root, "data", "eurusd"), "a file", 0o644)
			},
			opts: func(from, root string) Options { return Options{Root: root, From: from, Merge: true} },
			check: func(t *testing.T, from, root string, rep Report, err error) {
				var ce *ConflictError
				require.ErrorAs(t, err, &ce)
				assert.Equal(t, []string{"data/eurusd"}, ce.Clashes)
				assert.Equal(t, []string{"data/", "data/eurusd"}, shTree(t, root))
			},
		},
		{
			name: "missing backup is an error naming it",
			opts: func(from, root string) Options {
				return Options{Root: root, From: filepath.Join(from, "no-such-backup")}
			},
			check: func(t *testing.T, from, root string, rep Report, err error) {
				require.Error(t, err)
				assert.Contains(t, err.Error(), filepath.Join(from, "no-such-backup"))
				assert.ErrorIs(t, err, fs.ErrNotExist)
				assert.NoDirExists(t, root)
			},
		},
		{
			name:  "backup without shared folders is an error naming it",
			setup: func(t *testing.T, from, root string) { shWrite(t, filepath.Join(from, "x.txt"), "x", 0o644) },
			opts:  func(from, root string) Options { return Options{Root: root, From: from} },
			check: func(t *testing.T, from, root string, rep Report, err error) {
				require.Error(t, err)
				assert.Contains(t, err.Error(), from)
				assert.Contains(t, err.Error(), "data/, models/, strategies/")
			},
		},
		{
			name:  "minimal with from is refused",
			setup: func(t *testing.T, from, root string) { shBackup(t, from) },
			opts:  func(from, root string) Options { return Options{Root: root, From: from, Minimal: true} },
			check: func(t *testing.T, from, root string, rep Report, err error) {
				require.Error(t, err)
				assert.NoDirExists(t, root)
			},
		},
		{
			name: "no root and no home is an error",
			opts: func(from, root string) Options { return Options{} },
			check: func(t *testing.T, from, root string, rep Report, err error) {
				require.Error(t, err)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := filepath.Join(t.TempDir(), "backup")
			root := filepath.Join(t.TempDir(), "shared")
			if tt.setup != nil {
				tt.setup(t, from, root)
			}
			rep, err := initK(t.Context(), tt.opts(from, root))
			tt.check(t, from, root, rep, err)
			for _, p := range shTree(t, root) {
				assert.NotContains(t, p, ".tmp", "no temporary file is left behind")
			}
		})
	}
}

func TestInitSharedRerunIsNoOp(t *testing.T) {
	from := filepath.Join(t.TempDir(), "backup")
	root := filepath.Join(t.TempDir(), "shared")
	shBackup(t, from)
	_, err := initK(t.Context(), Options{Root: root, From: from})
	require.NoError(t, err)
	before := shTree(t, root)
	fi1, err := os.Stat(filepath.Join(root, "data", "readme.txt"))
	require.NoError(t, err)

	rep, err := initK(t.Context(), Options{Root: root, From: from})
	require.NoError(t, err)
	assert.Empty(t, rep.Copied)
	assert.Empty(t, rep.Created)
	assert.Empty(t, rep.Overwritten)
	assert.Len(t, rep.Skipped, 6)
	assert.Zero(t, rep.CopiedBytes)
	assert.Equal(t, before, shTree(t, root))
	fi2, err := os.Stat(filepath.Join(root, "data", "readme.txt"))
	require.NoError(t, err)
	assert.Equal(t, fi1.ModTime(), fi2.ModTime(), "an identical file is not rewritten")
	assert.True(t, os.SameFile(fi1, fi2), "an identical file is not replaced")
}

func TestInitSharedProgress(t *testing.T) {
	from := filepath.Join(t.TempDir(), "backup")
	root := filepath.Join(t.TempDir(), "shared")
	shWrite(t, filepath.Join(from, "data", "big.bin"), strings.Repeat("x", 1<<20), 0o644)
	shWrite(t, filepath.Join(from, "models", "small"), "s", 0o644)
	type call struct {
		copied, total int64
		files         int
	}
	var calls []call
	_, err := initK(t.Context(), Options{Root: root, From: from, Progress: func(c, tot int64, f int) {
		calls = append(calls, call{c, tot, f})
	}})
	require.NoError(t, err)
	require.NotEmpty(t, calls)
	assert.Equal(t, call{1<<20 + 1, 1<<20 + 1, 2}, calls[len(calls)-1], "the last call says everything was copied")
	for i := 1; i < len(calls); i++ {
		assert.GreaterOrEqual(t, calls[i].copied, calls[i-1].copied)
	}
}

// stepCtx runs fn when its Err is called for the at-th time: InitShared
// asks before each step, so a test can fail or cancel a run at every step
// in turn, deterministically.
type stepCtx struct {
	context.Context
	n, at int
	fn    func()
}

func (c *stepCtx) Err() error {
	c.n++
	if c.n == c.at {
		c.fn()
	}
	return c.Context.Err()
}

// A run that fails or is cancelled at any step leaves the shared folders as
// they were, byte for byte and mode for mode: what it created is removed,
// what it replaced is put back, no temporary file and no 0700 folder stay.
func TestInitSharedUndoesAFailedOrCancelledRun(t *testing.T) {
	setups := []struct {
		name string
		root func(base string) string // the shared root, below base
		pre  func(t *testing.T, root string)
	}{
		{"into existing folders, merging", func(base string) string { return filepath.Join(base, "shared") }, func(t *testing.T, root string) {
			shWrite(t, filepath.Join(root, "data", "readme.txt"), "mine", 0o600)                       // replaced by the backup's
			shWrite(t, filepath.Join(root, "data", "only-mine.txt"), "keep", 0o644)                    // not in the backup
			shWrite(t, filepath.Join(root, "data", "eurusd", "1h.csv"), "old", 0o640)                  // replaced
			require.NoError(t, os.Symlink("elsewhere.csv", filepath.Join(root, "data", "latest.csv"))) // replaced
		}},
		{"nothing there yet", func(base string) string { return filepath.Join(base, "a", "b", "shared") }, nil},
	}
	for _, st := range setups {
		for _, inject := range []string{"cancel", "source vanishes"} {
			t.Run(st.name+"/"+inject, func(t *testing.T) {
				// A full run first, to count its steps.
				probe := &stepCtx{Context: t.Context(), at: -1}
				base := t.TempDir()
				from := filepath.Join(base, "backup")
				shBackup(t, from)
				root := st.root(base)
				if st.pre != nil {
					st.pre(t, root)
				}
				_, err := initK(probe, Options{Root: root, From: from, Merge: true})
				require.NoError(t, err)
				require.Greater(t, probe.n, 10)

				failed := 0
				for at := 1; at <= probe.n; at++ {
					base := t.TempDir()
					from := filepath.Join(base, "backup")
					shBackup(t, from)
					root := st.root(base)
					if st.pre != nil {
						st.pre(t, root)
					}
					before := treesnap.Take(t, base)
					ctx, cancel := context.WithCancel(t.Context())
					sc := &stepCtx{Context: ctx, at: at, fn: cancel}
					if inject == "source vanishes" {
						sc.fn = func() { require.NoError(t, os.Remove(filepath.Join(from, "models", "m1", "model.pt"))) }
					}
					rep, err := initK(sc, Options{Root: root, From: from, Merge: true})
					cancel()
					if err == nil {
						continue // the injection came after the file was copied
					}
					failed++
					if inject == "cancel" {
						assert.ErrorIs(t, err, context.Canceled, "step %d", at)
					}
					after := treesnap.Take(t, base)
					if inject == "source vanishes" {
						delete(before, filepath.Join("backup", "models", "m1", "model.pt"))
					}
					assert.Equal(t, before, after, "step %d: %v", at, err)
					assert.Empty(t, rep.Copied, "step %d: the report claims nothing", at)
					assert.Empty(t, rep.Created)
				}
				if inject == "cancel" {
					assert.Equal(t, probe.n, failed, "a cancel at every step fails the run")
				} else {
					assert.Positive(t, failed)
				}
			})
		}
	}
}
