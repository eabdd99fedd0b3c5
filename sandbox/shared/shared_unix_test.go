//go:build unix

package shared

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// init-shared copies content, never privilege: setuid, setgid and sticky
// bits stay behind, and modes are masked by the user's umask (a 4755 file
// in a backup became a root-owned 4755 file when run as root).
func TestInitSharedCopiesContentNotPrivilege(t *testing.T) {
	for _, tt := range []struct {
		umask int
		want  map[string]fs.FileMode
	}{
		{0o022, map[string]fs.FileMode{
			"data/setuid": 0o755, "data/setgid": 0o755, "data/sticky": 0o644, "data/plain": 0o664 &^ 0o022,
			"models/shared-dir": fs.ModeDir | 0o775&^0o022, "strategies/open": 0o777 &^ 0o022,
		}},
		{0o077, map[string]fs.FileMode{
			"data/setuid": 0o700, "data/setgid": 0o700, "data/sticky": 0o600, "data/plain": 0o600,
			"models/shared-dir": fs.ModeDir | 0o700, "strategies/open": 0o700,
		}},
	} {
		t.Run(fmt.Sprintf("umask %03o", tt.umask), func(t *testing.T) {
			old := syscall.Umask(tt.umask)
			defer syscall.Umask(old)
			from := filepath.Join(t.TempDir(), "backup")
			root := filepath.Join(t.TempDir(), "shared")
			for rel, mode := range map[string]fs.FileMode{
				"data/setuid": 0o755 | fs.ModeSetuid, "data/setgid": 0o755 | fs.ModeSetgid,
				"data/sticky": 0o644 | fs.ModeSticky, "data/plain": 0o664, "strategies/open": 0o777,
			} {
				path := filepath.Join(from, rel)
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, []byte(rel), 0o600))
				require.NoError(t, os.Chmod(path, mode))
				fi, err := os.Stat(path)
				require.NoError(t, err)
				require.Equal(t, mode, fi.Mode(), "precondition: the backup has %s", rel)
			}
			dir := filepath.Join(from, "models", "shared-dir")
			require.NoError(t, os.MkdirAll(dir, 0o755))
			require.NoError(t, os.Chmod(dir, 0o775|fs.ModeSetgid|fs.ModeSticky))

			_, err := initK(t.Context(), Options{Root: root, From: from})
			require.NoError(t, err)
			for rel, want := range tt.want {
				fi, err := os.Lstat(filepath.Join(root, rel))
				require.NoError(t, err)
				assert.Equal(t, want, fi.Mode(), rel)
				if !fi.IsDir() {
					assert.Equal(t, rel, shRead(t, filepath.Join(root, rel)), "the content comes along")
				}
			}
		})
	}
}

func fmt_mode(umask int) string {
	return "umask " + string(rune('0'+umask>>6&7)) + string(rune('0'+umask>>3&7)) + string(rune('0'+umask&7))
}
