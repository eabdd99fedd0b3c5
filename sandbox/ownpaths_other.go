//go:build !unix

package sandbox

// oNoFollow is not available here; the lock file is checked with Lstat first.
const oNoFollow = 0
