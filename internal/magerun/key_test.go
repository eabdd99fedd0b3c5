package magerun

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeModule lays out a module with a magefiles folder that imports lib,
// which imports lib/inner; other is a package nobody imports.
func writeModule(t *testing.T) (root string, files []string) {
	t.Helper()
	root = t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("go.mod", "module example.test/proj\n\ngo 1.22\n")
	write("go.sum", "")
	write("magefiles/targets.go", "//go:build mage\n\npackage main\n\nimport _ \"example.test/proj/lib\"\n\nfunc Hello() {}\n")
	write("lib/lib.go", "package lib\n\nimport _ \"example.test/proj/lib/inner\"\n")
	write("lib/lib_test.go", "package lib\n")
	write("lib/data.txt", "embedded\n")
	write("lib/inner/inner.go", "package inner\n")
	write("other/other.go", "package other\n")
	write("magefile.go", "//go:build ignore\n\npackage main\n")
	return root, []string{filepath.Join(root, "magefiles", "targets.go")}
}

func TestComputeKey(t *testing.T) {
	env := func(string) string { return "" }
	in := keyInputs{GoCmd: "go", Env: env}
	tests := []struct {
		name    string
		change  func(t *testing.T, root string)
		in      keyInputs
		changes bool
	}{
		{"nothing", func(*testing.T, string) {}, in, false},
		{"a magefile", func(t *testing.T, root string) { appendTo(t, root, "magefiles/targets.go", "// more\n") }, in, true},
		{"an imported library file", func(t *testing.T, root string) { appendTo(t, root, "lib/lib.go", "// more\n") }, in, true},
		{"a transitively imported file", func(t *testing.T, root string) { appendTo(t, root, "lib/inner/inner.go", "// more\n") }, in, true},
		{"a new file in an imported package", func(t *testing.T, root string) { appendTo(t, root, "lib/extra.go", "package lib\n") }, in, true},
		{"a non-Go file of an imported package (embed)", func(t *testing.T, root string) { appendTo(t, root, "lib/data.txt", "more\n") }, in, true},
		{"go.mod", func(t *testing.T, root string) { appendTo(t, root, "go.mod", "\n") }, in, true},
		{"go.sum", func(t *testing.T, root string) { appendTo(t, root, "go.sum", "x\n") }, in, true},
		{"a test file", func(t *testing.T, root string) { appendTo(t, root, "lib/lib_test.go", "// more\n") }, in, false},
		{"a package nobody imports", func(t *testing.T, root string) { appendTo(t, root, "other/other.go", "// more\n") }, in, false},
		{"magefile.go (not a magefile)", func(t *testing.T, root string) { appendTo(t, root, "magefile.go", "// more\n") }, in, false},
		{"the go command", func(*testing.T, string) {}, keyInputs{GoCmd: "go1.99", Env: env}, true},
		{"-multiline", func(*testing.T, string) {}, keyInputs{GoCmd: "go", Multiline: true, Env: env}, true},
		{"GOFLAGS", func(*testing.T, string) {}, keyInputs{GoCmd: "go", Env: func(k string) string {
			if k == "GOFLAGS" {
				return "-tags=x"
			}
			return ""
		}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, files := writeModule(t)
			mod, err := findModule(filepath.Join(root, "magefiles"))
			require.NoError(t, err)
			assert.Equal(t, module{Root: root, Path: "example.test/proj", GoVersion: "1.22"}, mod)
			before, dirs, err := computeKey(mod, files, in)
			require.NoError(t, err)
			assert.Equal(t, []string{filepath.Join(root, "lib"), filepath.Join(root, "lib", "inner")}, dirs)
			tt.change(t, root)
			after, _, err := computeKey(mod, files, tt.in)
			require.NoError(t, err)
			if tt.changes {
				assert.NotEqual(t, before, after)
			} else {
				assert.Equal(t, before, after)
			}
		})
	}
}

func appendTo(t *testing.T, root, rel, s string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(root, rel), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(s)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func TestFindModuleErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := findModule(dir)
	// /tmp may sit below a go.mod on some machines; only a missing one is checked.
	if err != nil {
		assert.Contains(t, err.Error(), "no go.mod")
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("go 1.22\n"), 0o644))
	_, err = findModule(dir)
	assert.ErrorContains(t, err, "no module line")
}

// Old programs go with their signatures; lock files stay (a builder may wait on one).
func TestPruneKeepsRecentAndCurrent(t *testing.T) {
	dir := t.TempDir()
	old := "0000000000000000000000000000000000000000000000000000000000000001"
	recent := "0000000000000000000000000000000000000000000000000000000000000002"
	current := "0000000000000000000000000000000000000000000000000000000000000003"
	for _, k := range []string{old, recent, current} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, k), nil, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, k+".lock"), nil, 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, k+signaturesSuffix), nil, 0o600))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "stage-left"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "unrelated"), nil, 0o600))
	long := mustTime(t, "2020-01-01T00:00:00Z")
	for _, n := range []string{old, current, "stage-left", "unrelated"} {
		require.NoError(t, os.Chtimes(filepath.Join(dir, n), long, long))
	}
	builder{CacheDir: dir}.prune(current)
	for name, want := range map[string]bool{
		old: false, old + ".lock": true, recent: true, recent + ".lock": true,
		current: true, current + ".lock": true, "stage-left": false, "unrelated": true,
		old + signaturesSuffix: false, recent + signaturesSuffix: true, current + signaturesSuffix: true,
	} {
		_, err := os.Stat(filepath.Join(dir, name))
		assert.Equal(t, want, err == nil, name)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return v
}
