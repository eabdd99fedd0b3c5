package composefile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MaxFile is the largest checkout file (compose file, env file, label
// file) the suite reads or lets compose read.
const MaxFile = 1 << 20

// FileError refuses a file of a checkout that would be read: outside the
// checkout (directly or through a symlink), not a regular file, or larger
// than MaxFile. Nothing was read from it.
type FileError struct {
	Path   string
	Via    string // what names the file: "include of docker-compose.sandbox.yml"; "" for a file read directly
	Reason string
}

func (e *FileError) Error() string {
	if e.Via != "" {
		return fmt.Sprintf("refused to read %s (%s): %s", e.Path, e.Via, e.Reason)
	}
	return fmt.Sprintf("refused to read %s: %s", e.Path, e.Reason)
}

// CheckFile proves that path (absolute, or relative to root) may be read as
// a file of the checkout at root without reading it: it returns the real
// path and what it is, or a *FileError.
func CheckFile(root, path string, limit int64) (string, fs.FileInfo, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", path, err)
	}
	realRoot, _ = filepath.Abs(realRoot)
	// A path outside the checkout is refused without looking at it.
	if !Within(filepath.Clean(root), filepath.Clean(path)) && !Within(realRoot, filepath.Clean(path)) {
		return "", nil, &FileError{Path: path, Reason: fmt.Sprintf("it is outside the checkout %s", root)}
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", path, err)
	}
	real, _ = filepath.Abs(real)
	if !Within(realRoot, real) {
		return "", nil, &FileError{Path: path, Reason: fmt.Sprintf("it is a symlink to %s, outside the checkout %s", real, root)}
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", nil, &FileError{Path: path, Reason: fmt.Sprintf("it is not a regular file (%v)", fi.Mode().Type())}
	}
	if fi.Size() > limit {
		return "", nil, &FileError{Path: path, Reason: fmt.Sprintf("it has %d bytes, more than the %d a sandbox file may have", fi.Size(), limit)}
	}
	return real, fi, nil
}

// ReadFile reads path (absolute, or relative to root) as a file of the
// checkout at root: see CheckFile. It returns the content and the file's
// permission bits.
func ReadFile(root, path string, limit int64) ([]byte, fs.FileMode, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	real, fi, err := CheckFile(root, path, limit)
	if err != nil {
		return nil, 0, err
	}
	data, err := ReadRegular(real, fi, limit, func(reason string) error { return &FileError{Path: path, Reason: reason} })
	if err != nil {
		return nil, 0, err
	}
	return data, fi.Mode().Perm(), nil
}

// ReadRegular reads the regular file at path, checked as fi, refusing it
// with bad when it was replaced meanwhile or has grown beyond limit.
func ReadRegular(path string, fi fs.FileInfo, limit int64, bad func(reason string) error) ([]byte, error) {
	if fi.Size() > limit {
		return nil, bad(fmt.Sprintf("it has %d bytes, more than the %d a sandbox file may have", fi.Size(), limit))
	}
	// O_NONBLOCK: a FIFO swapped in after the check does not block the open.
	f, err := os.OpenFile(path, os.O_RDONLY|nonblock, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	if now, err := f.Stat(); err != nil || !os.SameFile(fi, now) || !now.Mode().IsRegular() {
		return nil, bad("it was replaced while it was read")
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, bad(fmt.Sprintf("it has more than the %d bytes a sandbox file may have", limit))
	}
	return data, nil
}

// Within reports whether path is below dir (both clean and absolute).
func Within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
