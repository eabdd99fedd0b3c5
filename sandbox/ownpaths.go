package sandbox

import (
	"errors"
	"fmt"
	"github.com/ktrdr/sandboxkit/sandbox/composefile"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// What the suite may touch. It writes and deletes only inside its own state
// folder ($HOME/.<app>/sandbox, and the shared root that InitShared fills)
// and in the sandbox folders it created; every path it derives from data
// (ids, names, registry paths) is validated before use; below its state
// folder it follows no symlink when it writes or deletes; and it reads a
// checkout's files only when they are inside that checkout. The helpers in
// this file are the only way the manager reaches those places. In a
// repository's .git it changes only what git commands change, except for
// what a git it ran for the sandbox left when it was killed: the lock file
// of the sandbox's own branch (clearRefLock), packed-refs.lock and
// packed-refs.new made during that run and unchanged while watched
// (clearPackedRefsLock), and git's
// half-written record of the sandbox's worktree, which git can no longer
// read to remove (dropHalfAddedRecord).

// MaxCheckoutFile is the largest checkout file (env file, compose file) the
// suite reads or keeps a copy of.
const MaxCheckoutFile = composefile.MaxFile

// UnsafePathError refuses to write to, delete or lock a path of the suite's
// own state that it did not make the way it makes it: a symlink, or a file
// where a folder belongs. Nothing was written or deleted through it.
type UnsafePathError struct {
	Op     string // "write", "delete", "lock", "read"
	Path   string
	Reason string // e.g. "it is a symlink to /elsewhere"
}

func (e *UnsafePathError) Error() string {
	return fmt.Sprintf("refused to %s %s: %s; the sandbox tool never writes or deletes through a path it did not make", e.Op, e.Path, e.Reason)
}

// CheckoutFileError refuses a file of a checkout that the suite would read
// or let compose read: outside the checkout (directly, through a symlink,
// or named by an include, extends, env_file or label_file), not a regular
// file, or larger than MaxCheckoutFile. Nothing was read.
type CheckoutFileError = composefile.FileError

// validStateName reports whether name can be one folder below the state
// folder: one path element, not "." or "..".
func validStateName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, `/\`) &&
		filepath.Base(name) == name && !filepath.IsAbs(name) && filepath.VolumeName(name) == ""
}

// describe says what an unexpected entry at path is, for an UnsafePathError.
func describe(path string, fi fs.FileInfo) string {
	if fi.Mode().Type() == fs.ModeSymlink {
		if target, err := os.Readlink(path); err == nil {
			return "it is a symlink to " + target
		}
		return "it is a symlink"
	}
	return fmt.Sprintf("it is not a folder (%v)", fi.Mode().Type())
}

// ownDir returns base/elems…, creating each missing folder below base with
// mode 0755, and refusing any that is a symlink or not a folder. base (the
// state folder) is the user's: it may itself be a symlink they made.
func ownDir(base string, elems ...string) (string, error) {
	dir := base
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", base, err)
	}
	for _, e := range elems {
		if !validStateName(e) {
			return "", &UnsafePathError{Op: "write", Path: filepath.Join(dir, e), Reason: fmt.Sprintf("%q is not one folder name", e)}
		}
		dir = filepath.Join(dir, e)
		fi, err := os.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return "", fmt.Errorf("create %s: %w", dir, err)
			}
			if fi, err = os.Lstat(dir); err != nil { // another command may have made it meanwhile: check what is there
				return "", fmt.Errorf("create %s: %w", dir, err)
			}
			if !fi.IsDir() {
				return "", &UnsafePathError{Op: "write", Path: dir, Reason: describe(dir, fi)}
			}
		case err != nil:
			return "", fmt.Errorf("inspect %s: %w", dir, err)
		case !fi.IsDir(): // a symlink's Lstat is never a folder
			return "", &UnsafePathError{Op: "write", Path: dir, Reason: describe(dir, fi)}
		}
	}
	return dir, nil
}

// removeOwnDir removes base/elems… and everything in it. A last element
// that is a symlink is removed itself (its target is left alone); a folder
// on the way that is a symlink or not a folder is refused. A path that does
// not exist is not an error.
func removeOwnDir(base string, elems ...string) error {
	dir := base
	for i, e := range elems {
		if !validStateName(e) {
			return &UnsafePathError{Op: "delete", Path: filepath.Join(dir, e), Reason: fmt.Sprintf("%q is not one folder name", e)}
		}
		dir = filepath.Join(dir, e)
		fi, err := os.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return fmt.Errorf("inspect %s: %w", dir, err)
		case i == len(elems)-1 && fi.Mode().Type() == fs.ModeSymlink:
			if err := os.Remove(dir); err != nil {
				return fmt.Errorf("remove %s: %w", dir, err)
			}
			return nil
		case !fi.IsDir():
			return &UnsafePathError{Op: "delete", Path: dir, Reason: describe(dir, fi)}
		}
	}
	// os.RemoveAll never follows a symlink below dir: it removes the link.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// ownDirExists is like ownDir without creating: it returns the folder when
// it exists and no element below base is a symlink or a file.
func ownDirExists(base string, elems ...string) (string, bool) {
	dir := base
	for _, e := range elems {
		if !validStateName(e) {
			return "", false
		}
		dir = filepath.Join(dir, e)
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			return "", false
		}
	}
	return dir, true
}

// regularFile reports whether path is a regular file, not a symlink.
func regularFile(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular()
}

// readOwnFile reads a regular file of the suite's own state, of at most
// limit bytes; a symlink or anything else is not read.
func readOwnFile(path string, limit int64) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, &UnsafePathError{Op: "read", Path: path, Reason: describe(path, fi)}
	}
	return readRegular(path, fi, limit, func(reason string) error { return &UnsafePathError{Op: "read", Path: path, Reason: reason} })
}

// readCheckoutFile reads the file name of the checkout at root: a regular
// file of at most limit bytes. A symlink is followed only when its target is
// inside the checkout. It returns the content and the file's permission bits.
func readCheckoutFile(root, name string, limit int64) ([]byte, fs.FileMode, error) {
	return composefile.ReadFile(root, name, limit)
}

// readRegular reads the regular file at path, checked as fi, refusing it
// with bad when it was replaced meanwhile or has grown beyond limit.
func readRegular(path string, fi fs.FileInfo, limit int64, bad func(reason string) error) ([]byte, error) {
	return composefile.ReadRegular(path, fi, limit, bad)
}

// within reports whether path is below dir (both clean and absolute).
func within(dir, path string) bool { return composefile.Within(dir, path) }
