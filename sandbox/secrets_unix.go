//go:build unix

package sandbox

import (
	"io/fs"
	"os"
	"syscall"
)

// fileOwner returns the user owning fi and the current user.
func fileOwner(fi fs.FileInfo) (owner, me int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), os.Getuid(), true
}
