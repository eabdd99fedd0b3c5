package shared

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// sharedTx records what one InitShared run changes, so that a run that
// fails or is cancelled can undo itself: it removes the folders, files and
// symlinks it created and puts back the files it replaced. Nothing it did
// not make is removed.
type sharedTx struct {
	dirs    []sharedDir // folders this run created, in order
	files   []string    // files and symlinks this run created
	backups []sharedBackup
}

type sharedDir struct {
	path   string
	filled bool        // filled from a backup: 0700 until execute sets mode at the end
	mode   fs.FileMode // its final mode, when filled
}

// sharedBackup is a file or symlink that this run replaced, moved aside.
type sharedBackup struct{ dst, backup string }

// mkdirAll creates dir and its missing parents (mode 0755, less the umask),
// recording each. An existing folder, or symlink to one, is used as it is.
func (tx *sharedTx) mkdirAll(dir string) (created bool, err error) {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return false, nil
	case err == nil:
		return false, fmt.Errorf("%s is not a folder", dir)
	case !errors.Is(err, fs.ErrNotExist):
		return false, err
	}
	if parent := filepath.Dir(dir); parent != dir {
		if _, err := tx.mkdirAll(parent); err != nil {
			return false, err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if fi, serr := os.Stat(dir); errors.Is(err, fs.ErrExist) && serr == nil && fi.IsDir() {
			return false, nil // another command made it meanwhile: not ours
		}
		return false, err
	}
	tx.dirs = append(tx.dirs, sharedDir{path: dir})
	return true, nil
}

// mkdir creates dir with mode 0700, to be filled; execute sets mode at the end.
func (tx *sharedTx) mkdir(dir string, mode fs.FileMode) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	tx.dirs = append(tx.dirs, sharedDir{path: dir, filled: true, mode: mode})
	return nil
}

// place renames the temporary file tmp to dst. With replace, the file at dst
// is first moved aside beside it, to be put back by rollback or removed by
// commit.
func (tx *sharedTx) place(tmp, dst string, replace bool) error {
	if replace {
		backup, err := freeName(dst, ".initshared-old")
		if err != nil {
			return err
		}
		if err := os.Rename(dst, backup); err != nil {
			return err
		}
		tx.backups = append(tx.backups, sharedBackup{dst: dst, backup: backup})
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	if !replace {
		tx.files = append(tx.files, dst)
	}
	return nil
}

// symlink creates a symlink to target at dst (see place for replace).
func (tx *sharedTx) symlink(target, dst string, replace bool) error {
	tmp, err := freeName(dst, ".tmp")
	if err == nil {
		err = os.Symlink(target, tmp)
	}
	if err != nil {
		return fmt.Errorf("create symlink %s -> %s: %w", dst, target, err)
	}
	if err := tx.place(tmp, dst, replace); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create symlink %s -> %s: %w", dst, target, err)
	}
	return nil
}

// freeName returns an unused hidden name beside path: .<base><tag><random>.
func freeName(path, tag string) (string, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	for range 100 {
		name := filepath.Join(dir, "."+base+tag+strconv.FormatUint(rand.Uint64(), 36))
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return name, nil
		}
	}
	return "", fmt.Errorf("no free temporary name beside %s", path)
}

// rollback undoes the run, newest change first. A folder that someone else
// put something into meanwhile stays, with its final mode.
func (tx *sharedTx) rollback() {
	for i := len(tx.files) - 1; i >= 0; i-- {
		os.Remove(tx.files[i])
	}
	for i := len(tx.backups) - 1; i >= 0; i-- {
		os.Rename(tx.backups[i].backup, tx.backups[i].dst)
	}
	for i := len(tx.dirs) - 1; i >= 0; i-- {
		if err := os.Remove(tx.dirs[i].path); err != nil && tx.dirs[i].filled {
			os.Chmod(tx.dirs[i].path, tx.dirs[i].mode)
		}
	}
	*tx = sharedTx{}
}

// commit ends a successful run: the replaced files are removed.
func (tx *sharedTx) commit() {
	for _, b := range tx.backups {
		os.Remove(b.backup)
	}
	*tx = sharedTx{}
}

// probeUmask returns the process's umask, read from a folder created in dir
// (asking the kernel directly would change it for every thread meanwhile).
func probeUmask(dir string) (fs.FileMode, error) {
	probe, err := freeName(filepath.Join(dir, "umask"), ".probe")
	if err != nil {
		return 0, err
	}
	if err := os.Mkdir(probe, 0o777); err != nil {
		return 0, fmt.Errorf("find the umask: %w", err)
	}
	defer os.Remove(probe)
	fi, err := os.Lstat(probe)
	if err != nil {
		return 0, fmt.Errorf("find the umask: %w", err)
	}
	return 0o777 &^ fi.Mode().Perm(), nil
}
