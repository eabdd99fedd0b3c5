//go:build !unix

package sandbox

import "io/fs"

// fileOwner is not known here: the file's mode is checked only.
func fileOwner(fs.FileInfo) (owner, me int, ok bool) { return 0, 0, false }
