package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Milestones 4 and 5: the ktrdr client finds its sandbox's API from any
// folder below it, flags override, exported variables change nothing, and
// sandboxes share ~/.ktrdr/shared.
func TestTargetingAndSharedData(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	// A sandbox made before the shared folders exist keeps its own ./data; init-shared says so.
	early := namePrefix + "early"
	e.must(e.Main, "sandbox:create", early)
	shared := e.must(e.Main, "sandbox:initShared", "-minimal")
	assert.Contains(t, shared.Stdout, "still mount their own ./data")
	assert.Contains(t, shared.Stdout, "ktrdr--"+early)
	e.must(e.sandboxDir(early), "sandbox:destroy")
	assert.Contains(t, shared.Stdout, filepath.Join(e.Home, ".ktrdr", "shared"))
	for _, d := range []string{"data", "models", "strategies"} {
		assert.DirExists(t, filepath.Join(e.Home, ".ktrdr", "shared", d))
	}
	again := e.sbx(e.Main, "sandbox:initShared", "-minimal")
	assert.Equal(t, 0, again.Code, "re-running is harmless: %s", again)

	a, b := namePrefix+"tgt-a", namePrefix+"tgt-b"
	e.must(e.Main, "sandbox:create", a, "-standin")
	e.must(e.Main, "sandbox:create", b, "-standin")
	dirA, dirB := e.sandboxDir(a), e.sandboxDir(b)
	e.must(dirA, "sandbox:up")
	e.must(dirB, "sandbox:up")
	deep := filepath.Join(dirA, "one", "two", "three")
	require.NoError(t, os.MkdirAll(deep, 0o755))

	ktrdr := filepath.Join(binDir, "ktrdr")
	// e.Env exports KTRDR_API_PORT=9999 and COMPOSE_PROJECT_NAME: neither may matter.
	cases := []struct {
		name, dir string
		args      []string
		want      string
	}{
		{"sandbox a", dirA, []string{"operations", "list"}, "http://localhost:8001"},
		{"sandbox b", dirB, []string{"operations", "list"}, "http://localhost:8002"},
		{"-p overrides the file", dirA, []string{"-p", "8002", "operations", "list"}, "http://localhost:8002"},
		{"--port= form", dirA, []string{"--port=8002", "operations", "list"}, "http://localhost:8002"},
		{"-u overrides -p", dirA, []string{"-u", "http://localhost:8002", "-p", "8001", "operations", "list"}, "http://localhost:8002"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.run(c.dir, ktrdr, c.args...)
			require.Equal(t, 0, r.Code, r.String())
			assert.Contains(t, r.Stdout, c.want)
		})
	}
	// The way the issue puts it: go run, three folders below the sandbox root.
	r := e.run(deep, "go", "run", "../../../cmd/ktrdr", "operations", "list")
	require.Equal(t, 0, r.Code, r.String())
	assert.Contains(t, r.Stdout, "http://localhost:8001")
	w := e.run(deep, ktrdr, "workers", "list")
	assert.Equal(t, 4, strings.Count(w.Stdout, "available"), w.String())

	// From the main checkout: the main stack's 8000 (not running here, so it says which URL it tried).
	m := e.run(e.Main, ktrdr, "operations", "list")
	assert.Equal(t, 1, m.Code, m.String())
	assert.Contains(t, m.Stderr, "http://localhost:8000")
	assert.Contains(t, m.Stderr, "sandbox:up")

	// sandbox:url prints the same resolution for scripts in other languages.
	assert.Equal(t, "http://localhost:8001\n", e.must(deep, "sandbox:url").Stdout)
	assert.Equal(t, "http://localhost:8005\n", e.must(deep, "sandbox:url", "-port=8005").Stdout)
	assert.Equal(t, "http://localhost:8000\n", e.must(e.Main, "sandbox:url").Stdout)

	// A file written from a's backend is visible in b's, and on the host.
	_, err := standinFS(containerOf(t, "ktrdr--"+a, "backend"), "write", "/app/data/from-a.csv", "t,price\n1,100\n")
	require.NoError(t, err)
	got, err := standinFS(containerOf(t, "ktrdr--"+b, "backend"), "read", "/app/data/from-a.csv")
	require.NoError(t, err)
	assert.Equal(t, "t,price\n1,100", got)
	assert.FileExists(t, filepath.Join(e.Home, ".ktrdr", "shared", "data", "from-a.csv"))
	_, err = standinFS(containerOf(t, "ktrdr--"+b, "training-worker-1"), "write", "/app/models/m1.bin", "weights")
	require.NoError(t, err)
	assert.FileExists(t, filepath.Join(e.Home, ".ktrdr", "shared", "models", "m1.bin"))
}

// init-shared copies a backup without ever deleting, and refuses to overwrite.
func TestInitSharedFromBackup(t *testing.T) {
	e := newEnv(t)
	backup := t.TempDir()
	for rel, content := range map[string]string{"data/AAPL_1d.csv": "a", "data/sub/MSFT_1h.csv": "bb", "models/m.pt": "ccc", "strategies/s.yaml": "d"} {
		require.NoError(t, os.MkdirAll(filepath.Join(backup, filepath.Dir(rel)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(backup, rel), []byte(content), 0o640))
	}
	require.NoError(t, os.Symlink("AAPL_1d.csv", filepath.Join(backup, "data", "latest.csv")))

	r := e.must(e.Main, "sandbox:initShared", "-from="+backup)
	assert.Contains(t, r.Stdout, "data")
	root := filepath.Join(e.Home, ".ktrdr", "shared")
	link, err := os.Readlink(filepath.Join(root, "data", "latest.csv"))
	require.NoError(t, err, "symlinks stay symlinks")
	assert.Equal(t, "AAPL_1d.csv", link)
	fi, err := os.Stat(filepath.Join(root, "models", "m.pt"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm())

	e.must(e.Main, "sandbox:initShared", "-from="+backup) // identical: harmless
	require.NoError(t, os.WriteFile(filepath.Join(backup, "models", "m.pt"), []byte("newer"), 0o640))
	require.NoError(t, os.WriteFile(filepath.Join(root, "data", "mine.csv"), []byte("keep"), 0o644))
	refused := e.sbx(e.Main, "sandbox:initShared", "-from="+backup)
	assert.Equal(t, 1, refused.Code, refused.String())
	assert.Contains(t, refused.Stderr, "m.pt")
	data, _ := os.ReadFile(filepath.Join(root, "models", "m.pt"))
	assert.Equal(t, "ccc", string(data), "nothing overwritten without -merge")
	e.must(e.Main, "sandbox:initShared", "-from="+backup, "-merge")
	data, _ = os.ReadFile(filepath.Join(root, "models", "m.pt"))
	assert.Equal(t, "newer", string(data))
	assert.FileExists(t, filepath.Join(root, "data", "mine.csv"), "existing content is never deleted")
}
