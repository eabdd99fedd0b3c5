package main

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// `standin fs untar [--clean] DIR` fills a folder, typically a named volume
// on a remote engine, from a tar stream on stdin:
//
//	tar of a local folder | docker --context X run --rm -i -v VOL:/dst ktrdr-standin:dev fs untar --clean /dst
//
// Only regular files, directories and symbolic links are extracted; character
// and block devices, fifos and other entry types are skipped with a warning.
// An entry is refused, and extraction stops with what was extracted so far
// left in place, when it is a hard link or a sparse file, when its cleaned
// name is absolute or leaves DIR (`..`), or when a folder on its path is a
// symbolic link (links are never followed when writing) or not a folder. Symbolic link targets are
// kept as given. Files keep their permission bits (0o777 only: no setuid,
// setgid or sticky bit) and modification times, as do folders (applied once
// the stream ends); owners are not kept. An existing entry is replaced:
// files and links are written under a temporary name and renamed over it.
// All file system access goes through an os.Root on DIR, so nothing outside
// DIR is touched even if the checks above had a gap.
//
// It prints one line to stderr, also on failure, counting what was written:
// "untar: N files, M dirs, B bytes into DIR" (links count as files), with
// ", R removed" appended under --clean. The exit status is 0, or 1 at the
// first refused entry or error.
//
// The stream must end with tar's end-of-archive marker: a stream cut short
// (an empty stdin, or one cut between two entries) is an error, so --clean,
// which runs only after a complete stream, never mirrors half a tree.

// untarStats counts what an extraction wrote.
type untarStats struct {
	files, dirs, links, removed int
	bytes                       int64
}

// untarError is an entry that was refused, as opposed to an I/O failure.
type untarError struct {
	name, reason string
}

func (e *untarError) Error() string { return fmt.Sprintf("refused %q: %s", e.name, e.reason) }

// untar extracts the tar stream r under dir; with clean, it then removes
// everything under dir that the stream did not contain (never dir itself).
// Warnings (skipped entries) go to warn.
func untar(dir string, r io.Reader, clean bool, warn io.Writer) (untarStats, error) {
	var st untarStats
	root, err := os.OpenRoot(dir)
	if err != nil {
		return st, err
	}
	defer root.Close()
	x := &extractor{root: root, keep: map[string]bool{".": true}, warn: warn}
	cr := &tailReader{r: r}
	tr := tar.NewReader(cr)
	for {
		before := cr.n
		hdr, err := tr.Next()
		if err == io.EOF {
			// Next read the padding of the last entry (< 512 bytes, as
			// entries are read to their end) and then the marker: one or
			// two zero blocks. Anything less is a stream cut short.
			if cr.n-before < 512 || !cr.tailZero() {
				err = errors.New("the stream ended without tar's end-of-archive marker (empty or cut short)")
				return st, errors.Join(err, x.finishDirs())
			}
			break
		}
		if err != nil {
			return st, errors.Join(fmt.Errorf("reading the stream: %w", err), x.finishDirs())
		}
		err = x.entry(hdr, tr, &st)
		if err == nil {
			// The rest of a body tar does not extract (a folder's or a
			// link's), so that Next reads only padding and a header.
			_, err = io.Copy(io.Discard, tr)
		}
		if err != nil {
			// What was extracted stays, with its folders' modes and times.
			return st, errors.Join(err, x.finishDirs())
		}
	}
	if err := x.finishDirs(); err != nil {
		return st, err
	}
	if clean {
		n, err := x.clean(".")
		st.removed = n
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

type dirMeta struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

type extractor struct {
	root *os.Root
	keep map[string]bool // cleaned slash names the stream holds, with their parents
	dirs []dirMeta       // folder modes and times, applied at the end
	warn io.Writer
}

// entryName cleans a tar entry name into a slash path relative to the root,
// or refuses it.
func entryName(raw string) (string, error) {
	if raw == "" {
		return "", &untarError{raw, "empty name"}
	}
	if strings.ContainsRune(raw, 0) {
		return "", &untarError{raw, "NUL in the name"}
	}
	if strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, `\`) || filepath.IsAbs(raw) {
		return "", &untarError{raw, "absolute path"}
	}
	name := path.Clean(raw)
	if name == ".." || strings.HasPrefix(name, "../") {
		return "", &untarError{raw, "path leaves the folder"}
	}
	return name, nil
}

func (x *extractor) entry(hdr *tar.Header, body io.Reader, st *untarStats) error {
	if isSparse(hdr) {
		// archive/tar expands holes into zeros, and a few bytes of stream can
		// declare exabytes of holes: refused before any body is read.
		return &untarError{hdr.Name, "sparse files are not extracted"}
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
		// Files (sparse ones are refused below), folders, links.
	default:
		fmt.Fprintf(x.warn, "untar: skipping %q: entry type %q is not extracted\n", hdr.Name, hdr.Typeflag)
		_, err := io.Copy(io.Discard, body)
		return err
	}
	name, err := entryName(hdr.Name)
	if err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeLink {
		return &untarError{hdr.Name, "hard links are not extracted"}
	}
	if name == "." && hdr.Typeflag != tar.TypeDir {
		return &untarError{hdr.Name, "only a folder can name the target folder itself"}
	}
	if err := x.parents(name, hdr.Name); err != nil {
		return err
	}
	x.keep[name] = true
	native := filepath.FromSlash(name)
	mode := fs.FileMode(hdr.Mode) & fs.ModePerm
	switch hdr.Typeflag {
	case tar.TypeDir:
		st.dirs++
		fi, err := x.root.Lstat(native)
		if err == nil && !fi.IsDir() {
			// A file or link where the stream has a folder: the link itself
			// goes, never what it points to.
			if err := x.root.Remove(native); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			err = fs.ErrNotExist
		}
		if errors.Is(err, fs.ErrNotExist) {
			err = x.root.Mkdir(native, 0o700)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		x.dirs = append(x.dirs, dirMeta{native, mode, hdr.ModTime})
		return nil
	case tar.TypeSymlink:
		st.links++
		return x.replace(native, func(tmp string) error { return x.root.Symlink(hdr.Linkname, tmp) })
	default:
		st.files++
		return x.replace(native, func(tmp string) error {
			f, err := x.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			n, err := io.Copy(f, body)
			st.bytes += n
			if err == nil {
				err = f.Chmod(mode)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil && !hdr.ModTime.IsZero() {
				err = x.root.Chtimes(tmp, hdr.ModTime, hdr.ModTime)
			}
			return err
		})
	}
}

// isSparse reports a GNU sparse file, old style or in PAX records.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// parents makes sure every folder above name is a real folder, creating the
// missing ones, and refuses a link or a file on the way.
func (x *extractor) parents(name, raw string) error {
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		x.keep[p] = true
		fi, err := x.root.Lstat(filepath.FromSlash(p))
		switch {
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			return &untarError{raw, p + " is a symbolic link"}
		case err == nil && !fi.IsDir():
			return &untarError{raw, p + " is not a folder"}
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			if err := x.root.Mkdir(filepath.FromSlash(p), 0o755); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		default:
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

// replace creates name's new content under a temporary name beside it with
// create, then renames it over name (a folder in the way is removed first).
func (x *extractor) replace(name string, create func(tmp string) error) error {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(name), ".untar-"+hex.EncodeToString(rnd[:])+".tmp")
	if err := create(tmp); err != nil {
		_ = x.root.Remove(tmp)
		return fmt.Errorf("%s: %w", name, err)
	}
	if fi, err := x.root.Lstat(name); err == nil && fi.IsDir() {
		if err := x.root.RemoveAll(name); err != nil {
			_ = x.root.Remove(tmp)
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := x.root.Rename(tmp, name); err != nil {
		_ = x.root.Remove(tmp)
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// finishDirs sets the folders' modes and times, deepest first, so writing
// into a folder does not change its time and a read-only folder is filled
// before it becomes read-only.
func (x *extractor) finishDirs() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if fi, err := x.root.Lstat(d.name); err != nil || !fi.IsDir() {
			continue // replaced by a later entry
		}
		if err := x.root.Chmod(d.name, d.mode); err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		if !d.mtime.IsZero() {
			if err := x.root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
				return fmt.Errorf("%s: %w", d.name, err)
			}
		}
	}
	return nil
}

// clean removes what is under the folder dir (a slash name) and not in the
// stream, descending only into real folders the stream holds.
func (x *extractor) clean(dir string) (int, error) {
	f, err := x.root.Open(filepath.FromSlash(dir))
	if err != nil {
		return 0, err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", dir, err)
	}
	removed := 0
	for _, e := range entries {
		name := path.Join(dir, e.Name())
		if !x.keep[name] {
			if err := x.root.RemoveAll(filepath.FromSlash(name)); err != nil {
				return removed, fmt.Errorf("%s: %w", name, err)
			}
			removed++
			continue
		}
		if e.Type()&fs.ModeSymlink == 0 && e.IsDir() {
			n, err := x.clean(name)
			removed += n
			if err != nil {
				return removed, err
			}
		}
	}
	return removed, nil
}

// tailReader counts the bytes read and keeps the last 512 of them.
type tailReader struct {
	r    io.Reader
	n    int64
	tail [512]byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n >= len(t.tail) {
		copy(t.tail[:], p[n-len(t.tail):n])
	} else if n > 0 {
		copy(t.tail[:], t.tail[n:])
		copy(t.tail[len(t.tail)-n:], p[:n])
	}
	t.n += int64(n)
	return n, err
}

func (t *tailReader) tailZero() bool {
	return t.n >= int64(len(t.tail)) && bytes.Count(t.tail[:], []byte{0}) == len(t.tail)
}

// tarDir writes a tar stream of dir to w: regular files, folders and
// symbolic links (as links), with names relative to dir; other entries are
// skipped with a warning.
func tarDir(dir string, w io.Writer, warn io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.IsDir(), fi.Mode().IsRegular():
		default:
			fmt.Fprintf(warn, "tar: skipping %s: not a file, folder or link\n", p)
			return nil
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, hdr.Size)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
