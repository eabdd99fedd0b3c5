package sandbox

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pfFakeProc builds a proc file system: files maps paths to contents,
// links maps fd paths to their targets.
func pfFakeProc(t *testing.T, files, links map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, name), []byte(content), 0o644))
	}
	for name, target := range links {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755))
		require.NoError(t, os.Symlink(target, filepath.Join(root, name)))
	}
	return root
}

func TestProcessHoldersFromFakeProc(t *testing.T) {
	root := pfFakeProc(t, map[string]string{
		"net/tcp":      pfProcNetTCP,  // 8001 → inode 4242, 5432 → 777
		"net/tcp6":     pfProcNetTCP6, // 8001 → inode 5151
		"12/cmdline":   "python3\x00-m\x00http.server\x008001\x00",
		"34/cmdline":   "",
		"34/comm":      "kworker\n",
		"self/cmdline": "ignored",
	}, map[string]string{
		"12/fd/0": "/dev/null",
		"12/fd/3": "socket:[4242]",
		"34/fd/7": "socket:[777]",
		"56/fd/1": "pipe:[4242]",
	})
	got := processHoldersIn(root, []int{8001, 5432, 9090})
	assert.Equal(t, map[int]PortHolder{
		8001: {PID: 12, Command: "python3 -m http.server 8001"},
		5432: {PID: 34, Command: "kworker"},
		9090: {},
	}, got)
	assert.Equal(t, "process 12 (python3 -m http.server 8001)", got[8001].String())
}

func TestProcessHoldersWithoutProc(t *testing.T) {
	got := processHoldersIn(filepath.Join(t.TempDir(), "nope"), []int{8001})
	assert.Equal(t, map[int]PortHolder{8001: {}}, got)
}
