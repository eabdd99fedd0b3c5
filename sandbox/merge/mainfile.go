package merge

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// mainFile is where the main compose file's bytes live. Usually that is
// <Dir>/docker-compose.yml itself; if that is a symbolic link (the ktrdr
// repository links it to deploy/environments/local/docker-compose.yml), it
// is the file the link points to, which must be a regular file inside the
// checkout. Merge and rollback write that file, so the link stays a link.
type mainFile struct {
	Path string // absolute: the file read and written
	Rel  string // Path relative to the checkout root, slash-separated, for git
	Link string // the link's target as written, if the main file is a link
}

// locateMain resolves the main compose file of o. A file that does not
// exist yet is its own path.
func locateMain(o Options) (mainFile, error) {
	p := o.mainPath()
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return mainFile{Path: p, Rel: filepath.ToSlash(o.Profile.MainCompose)}, nil
	}
	if err != nil {
		return mainFile{}, fmt.Errorf("inspect %s: %w", p, err)
	}
	switch {
	case fi.Mode().IsRegular():
		return mainFile{Path: p, Rel: filepath.ToSlash(o.Profile.MainCompose)}, nil
	case fi.Mode()&fs.ModeSymlink == 0:
		return mainFile{}, fmt.Errorf("%s is not a regular file (mode %s)", p, fi.Mode())
	}
	link, err := os.Readlink(p)
	if err != nil {
		return mainFile{}, fmt.Errorf("read the link %s: %w", p, err)
	}
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		return mainFile{}, fmt.Errorf("%s is a link to %s, which does not resolve: %w", p, link, err)
	}
	root, err := filepath.EvalSymlinks(o.Dir)
	if err != nil {
		return mainFile{}, fmt.Errorf("resolve %s: %w", o.Dir, err)
	}
	rel, err := filepath.Rel(root, target)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return mainFile{}, fmt.Errorf("%s is a link to %s, outside the checkout %s: refusing to read or write through it", p, link, o.Dir)
	}
	if tfi, err := os.Stat(target); err != nil || !tfi.Mode().IsRegular() {
		return mainFile{}, fmt.Errorf("%s is a link to %s, which is not a regular file", p, link)
	}
	return mainFile{Path: target, Rel: filepath.ToSlash(rel), Link: link}, nil
}
