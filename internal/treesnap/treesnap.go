// Package treesnap is a test helper: it records every path below a folder
// with its kind, mode and content (or link target), so that a test can
// prove that nothing changed there.
package treesnap

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Take maps every path below dir (relative to it) to its kind, mode and
// content or link target.
func Take(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		require.NoError(t, err)
		switch {
		case fi.Mode().Type() == fs.ModeSymlink:
			target, err := os.Readlink(p)
			require.NoError(t, err)
			out[rel] = "-> " + target
		case fi.IsDir():
			out[rel] = fmt.Sprintf("dir %v", fi.Mode())
		default:
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			out[rel] = fmt.Sprintf("%v %q", fi.Mode(), data)
		}
		return nil
	}))
	return out
}
