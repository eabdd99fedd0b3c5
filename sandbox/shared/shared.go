// Package shared creates the folders every sandbox of a user shares (for
// ktrdr: data, models and strategies under ~/.ktrdr/shared) and fills them
// from a backup, all or nothing: a run that fails or is cancelled removes
// what it created and puts back what it replaced. It copies content, never
// privilege (no setuid, setgid or sticky bit, modes masked by the umask),
// never follows a symlink, and never deletes what it did not create.
package shared

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ktrdr/sandboxkit/internal/text"
)

// Options says where the shared folders live and what to put in them.
type Options struct {
	Root    string   // the shared root (required)
	Folders []string // the folders under it, by name: "data", "models" … (required)

	// From is a backup to copy in. It holds data/, models/, strategies/
	// sub-folders (each is copied into its counterpart), or is itself one of
	// them by name (a folder called data is copied into <root>/data).
	From    string
	Minimal bool // create the empty tree only; excludes From
	Merge   bool // overwrite files that differ from the backup instead of refusing

	// Progress, if set, is called while files are copied: at most every
	// ~200 ms, and once at the end.
	Progress func(copiedBytes, totalBytes int64, files int)
}

// Folder is what one shared folder holds after InitShared.
type Folder struct {
	Name  string // "data"
	Path  string // absolute path
	Files int    // regular files and symlinks, recursively
	Bytes int64  // total size of the regular files
}

// Report says what InitShared did. Paths in the lists are relative to
// Root, with forward slashes ("data/eurusd/1h.csv").
type Report struct {
	Root        string
	From        string
	Folders     []Folder // in the profile's order
	Created     []string // folders that did not exist before
	Copied      []string // new files and symlinks
	Overwritten []string // files that differed and were replaced (Merge only)
	Skipped     []string // identical files, left alone
	Ignored     []string // entries of From that were not copied, with the reason
	CopiedBytes int64
}

// ConflictError refuses a copy that would overwrite existing files.
// Nothing has been copied or created when it is returned.
type ConflictError struct {
	Root  string
	From  string
	Paths []string // existing files that differ from the backup; Merge overwrites them
	// Clashes are a file where the backup has a folder, a folder where it has
	// a file, or a symlink where it has a folder. Merge does not resolve them:
	// InitShared never deletes.
	Clashes []string
}

func (e *ConflictError) Error() string {
	var parts []string
	if len(e.Paths) > 0 {
		parts = append(parts, fmt.Sprintf("%d existing %s from the backup (-merge overwrites them): %s",
			len(e.Paths), text.Plural(len(e.Paths), "file differs", "files differ"), text.ListSome(e.Paths, 10)))
	}
	if len(e.Clashes) > 0 {
		parts = append(parts, fmt.Sprintf("%d %s of a different kind than in the backup (file versus folder; move them away first): %s",
			len(e.Clashes), text.Plural(len(e.Clashes), "path is", "paths are"), text.ListSome(e.Clashes, 10)))
	}
	return fmt.Sprintf("copy %s into %s: refused, nothing copied: %s", e.From, e.Root, strings.Join(parts, "; "))
}

// Init creates <root>/<name> for every folder of opts and, with
// opts.From, copies a backup into them. Files, folders and symlinks are
// kept (a symlink is recreated, never followed); content is copied, never
// privilege: permission bits come with a file or folder, masked by the
// user's umask, and setuid, setgid and sticky bits never do. Existing
// content is never deleted: identical files are skipped, and files that
// differ are refused with a *ConflictError before anything is copied,
// unless opts.Merge is set. Each file is written to a temporary file and
// renamed into place. A run that fails or is cancelled through ctx undoes
// itself: the folders, files and symlinks it created are removed and the
// files it replaced are put back, so that nothing is left half done.
// Running it again is harmless.
func Init(ctx context.Context, opts Options) (rep Report, err error) {
	if opts.Root == "" || len(opts.Folders) == 0 {
		return Report{}, errors.New("init shared folders: a root and at least one folder name are required")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return Report{}, fmt.Errorf("init shared folders in %q: %w", opts.Root, err)
	}
	rep = Report{Root: root}
	if opts.Minimal && opts.From != "" {
		return rep, fmt.Errorf("init shared folders in %s: -minimal creates the empty tree only and cannot be combined with -from=%s", root, opts.From)
	}

	var pl *sharedPlan
	if opts.From != "" {
		from, err := filepath.Abs(opts.From)
		if err != nil {
			return rep, fmt.Errorf("init shared folders from %q: %w", opts.From, err)
		}
		rep.From = from
		pl, err = planShared(ctx, root, from, opts.Folders)
		if err != nil {
			return rep, err
		}
		rep.Ignored = pl.ignored
		if len(pl.clashes) > 0 || (len(pl.conflicts) > 0 && !opts.Merge) {
			return rep, &ConflictError{Root: root, From: from, Paths: pl.conflicts, Clashes: pl.clashes}
		}
	}

	tx := &sharedTx{}
	defer func() {
		if err != nil {
			tx.rollback()
			rep = Report{Root: rep.Root, From: rep.From, Ignored: rep.Ignored}
			return
		}
		tx.commit()
	}()
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("init shared folders in %s: %w", root, err)
	}
	for _, name := range opts.Folders {
		dir := filepath.Join(root, name)
		created, err := tx.mkdirAll(dir)
		if err != nil {
			return rep, fmt.Errorf("create shared folder %s: %w", dir, err)
		}
		if created {
			rep.Created = append(rep.Created, name)
		}
	}

	if pl != nil {
		umask, err := probeUmask(root)
		if err != nil {
			return rep, err
		}
		if err := pl.execute(ctx, tx, umask, &rep, opts.Progress); err != nil {
			return rep, err
		}
	}

	for _, name := range opts.Folders {
		f, err := countShared(name, filepath.Join(root, name))
		if err != nil {
			return rep, err
		}
		rep.Folders = append(rep.Folders, f)
	}
	return rep, nil
}

type sharedOpKind int

const (
	opMkdir     sharedOpKind = iota // create a folder (mode applied after its content)
	opCopy                          // copy a regular file
	opSymlink                       // recreate a symlink
	opSkip                          // identical: nothing to do
	opOverwrite                     // a file or symlink that differs (Merge only)
)

type sharedOp struct {
	kind     sharedOpKind
	rel      string // relative to the shared root, forward slashes
	src, dst string
	mode     fs.FileMode
	size     int64
	modTime  time.Time
	target   string      // symlink target
	srcType  fs.FileMode // fs.ModeSymlink or 0 for a regular file, for overwrites
}

type sharedPlan struct {
	ops       []sharedOp
	conflicts []string
	clashes   []string
	ignored   []string
	total     int64
}

// planShared walks the backup and decides, before anything is written, what
// each entry becomes.
func planShared(ctx context.Context, root, from string, names []string) (*sharedPlan, error) {
	fi, err := os.Stat(from)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read backup %s: %w", from, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("read backup %s: %w", from, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("read backup %s: not a folder", from)
	}
	pl := &sharedPlan{}
	type pair struct{ name, src string }
	var pairs []pair
	for _, n := range names {
		src := filepath.Join(from, n)
		sfi, err := os.Stat(src) // the backup's top-level folders may be symlinks; follow those only
		switch {
		case err == nil && sfi.IsDir():
			pairs = append(pairs, pair{n, src})
		case err == nil:
			return nil, fmt.Errorf("read backup %s: %s is not a folder", from, src)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("read backup %s: %w", from, err)
		}
	}
	if len(pairs) == 0 {
		base := filepath.Base(from)
		for _, n := range names {
			if base == n {
				pairs = append(pairs, pair{n, from})
			}
		}
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("read backup %s: it has none of the folders %s, and is not itself named like one of them",
			from, strings.Join(names, "/, ")+"/")
	}
	if len(pairs) > 0 && pairs[0].src != from {
		entries, err := os.ReadDir(from)
		if err != nil {
			return nil, fmt.Errorf("read backup %s: %w", from, err)
		}
		known := map[string]bool{}
		for _, n := range names {
			known[n] = true
		}
		for _, e := range entries {
			if !known[e.Name()] {
				pl.ignored = append(pl.ignored, e.Name()+" (not a shared folder)")
			}
		}
	}
	for _, pr := range pairs {
		// Walk the real folder when the backup's top level is a symlink;
		// below it, symlinks are copied as symlinks.
		src, err := filepath.EvalSymlinks(pr.src)
		if err != nil {
			return nil, fmt.Errorf("read backup %s: %w", pr.src, err)
		}
		if err := pl.walk(ctx, src, filepath.Join(root, pr.name), pr.name); err != nil {
			return nil, err
		}
	}
	return pl, nil
}

func (pl *sharedPlan) walk(ctx context.Context, srcRoot, dstRoot, relRoot string) error {
	// missing marks destination folders that do not exist: below them
	// everything is new and needs no comparison.
	missing := map[string]bool{}
	return filepath.WalkDir(srcRoot, func(src string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read backup %s: %w", src, err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read backup %s: %w", srcRoot, err)
		}
		relSrc, _ := filepath.Rel(srcRoot, src)
		if relSrc == "." {
			if _, err := os.Stat(dstRoot); errors.Is(err, fs.ErrNotExist) {
				missing[dstRoot] = true
			}
			return nil // the shared folder itself: created by InitShared
		}
		dst := filepath.Join(dstRoot, relSrc)
		rel := filepath.ToSlash(filepath.Join(relRoot, relSrc))
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("read backup %s: %w", src, err)
		}
		parentMissing := missing[filepath.Dir(dst)]
		var dfi fs.FileInfo
		if !parentMissing {
			dfi, err = os.Lstat(dst)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("inspect %s: %w", dst, err)
			}
		}
		// Permission bits only: setuid, setgid and sticky never come along.
		op := sharedOp{rel: rel, src: src, dst: dst, mode: info.Mode().Perm(), size: info.Size(), modTime: info.ModTime()}
		switch t := info.Mode().Type(); {
		case t == fs.ModeDir:
			switch {
			case dfi == nil:
				missing[dst] = true
				op.kind = opMkdir
				pl.ops = append(pl.ops, op)
			case !dfi.IsDir():
				pl.clashes = append(pl.clashes, rel)
				return fs.SkipDir
			}
			return nil
		case t == fs.ModeSymlink:
			target, err := os.Readlink(src)
			if err != nil {
				return fmt.Errorf("read symlink %s: %w", src, err)
			}
			op.target, op.srcType = target, fs.ModeSymlink
			op.kind = opSymlink
			if dfi != nil {
				if dfi.IsDir() {
					pl.clashes = append(pl.clashes, rel)
					return nil
				}
				if dfi.Mode().Type() == fs.ModeSymlink {
					if cur, err := os.Readlink(dst); err == nil && cur == target {
						op.kind = opSkip
					}
				}
				if op.kind != opSkip {
					op.kind = opOverwrite
					pl.conflicts = append(pl.conflicts, rel)
				}
			}
			pl.ops = append(pl.ops, op)
		case t == 0: // regular file
			op.kind = opCopy
			if dfi != nil {
				if dfi.IsDir() {
					pl.clashes = append(pl.clashes, rel)
					return nil
				}
				same := false
				if dfi.Mode().IsRegular() && dfi.Size() == info.Size() {
					same, err = sameContent(src, dst)
					if err != nil {
						return err
					}
				}
				if same {
					op.kind = opSkip
				} else {
					op.kind = opOverwrite
					pl.conflicts = append(pl.conflicts, rel)
				}
			}
			if op.kind != opSkip {
				pl.total += op.size
			}
			pl.ops = append(pl.ops, op)
		default:
			pl.ignored = append(pl.ignored, rel+" (not a file, folder or symlink)")
		}
		return nil
	})
}

func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, fmt.Errorf("compare %s with %s: %w", a, b, err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, fmt.Errorf("compare %s with %s: %w", a, b, err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		aEOF := ea == io.EOF || ea == io.ErrUnexpectedEOF
		bEOF := eb == io.EOF || eb == io.ErrUnexpectedEOF
		if ea != nil && !aEOF {
			return false, fmt.Errorf("compare %s with %s: %w", a, b, ea)
		}
		if eb != nil && !bEOF {
			return false, fmt.Errorf("compare %s with %s: %w", a, b, eb)
		}
		if aEOF || bEOF {
			return aEOF && bEOF, nil
		}
	}
}

// sharedProgress throttles the Progress callback.
type sharedProgress struct {
	fn     func(copiedBytes, totalBytes int64, files int)
	total  int64
	copied int64
	files  int
	last   time.Time
}

func (sp *sharedProgress) add(n int64) {
	sp.copied += n
	sp.report(false)
}

func (sp *sharedProgress) report(force bool) {
	if sp.fn == nil {
		return
	}
	if now := time.Now(); force || now.Sub(sp.last) >= 200*time.Millisecond {
		sp.last = now
		sp.fn(sp.copied, sp.total, sp.files)
	}
}

// execute carries out the plan, recording in tx what it creates and
// replaces. File and folder modes are masked with umask.
func (pl *sharedPlan) execute(ctx context.Context, tx *sharedTx, umask fs.FileMode, rep *Report, progress func(int64, int64, int)) error {
	sp := &sharedProgress{fn: progress, total: pl.total, last: time.Now()}
	var dirs []sharedOp
	for _, op := range pl.ops {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("copy %s: %w", op.src, err)
		}
		op.mode &^= umask
		switch op.kind {
		case opMkdir:
			// Owner-writable while it is filled; its own mode is set at the end.
			if err := tx.mkdir(op.dst, op.mode); err != nil {
				return fmt.Errorf("create folder %s: %w", op.dst, err)
			}
			dirs = append(dirs, op)
			rep.Created = append(rep.Created, op.rel)
		case opSkip:
			rep.Skipped = append(rep.Skipped, op.rel)
		case opCopy, opOverwrite, opSymlink:
			var err error
			if op.srcType == fs.ModeSymlink {
				err = tx.symlink(op.target, op.dst, op.kind == opOverwrite)
			} else {
				err = copyFileAtomic(ctx, tx, op, sp)
			}
			if err != nil {
				return err
			}
			sp.files++
			rep.CopiedBytes = sp.copied
			if op.kind == opOverwrite {
				rep.Overwritten = append(rep.Overwritten, op.rel)
			} else {
				rep.Copied = append(rep.Copied, op.rel)
			}
			sp.report(false)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i].dst, dirs[i].mode); err != nil {
			return fmt.Errorf("set mode %v on %s: %w", dirs[i].mode, dirs[i].dst, err)
		}
	}
	sp.report(true)
	return nil
}

// copyFileAtomic copies op.src to op.dst through a temporary file in the
// destination folder, with op.mode and the source's modification time.
func copyFileAtomic(ctx context.Context, tx *sharedTx, op sharedOp, sp *sharedProgress) (err error) {
	in, err := os.Open(op.src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", op.src, err)
	}
	defer in.Close()
	dir := filepath.Dir(op.dst)
	f, err := os.CreateTemp(dir, "."+filepath.Base(op.dst)+".tmp*")
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", op.src, op.dst, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	buf := make([]byte, 256<<10)
	for {
		if err = ctx.Err(); err != nil {
			return fmt.Errorf("copy %s to %s: %w", op.src, op.dst, err)
		}
		n, rerr := in.Read(buf)
		if n > 0 {
			if _, err = f.Write(buf[:n]); err != nil {
				return fmt.Errorf("copy %s to %s: %w", op.src, op.dst, err)
			}
			sp.add(int64(n))
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			return fmt.Errorf("copy %s to %s: %w", op.src, op.dst, rerr)
		}
	}
	if err = f.Chmod(op.mode); err != nil {
		return fmt.Errorf("copy %s to %s: set mode: %w", op.src, op.dst, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("copy %s to %s: fsync: %w", op.src, op.dst, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("copy %s to %s: %w", op.src, op.dst, err)
	}
	if err = os.Chtimes(f.Name(), op.modTime, op.modTime); err != nil {
		return fmt.Errorf("copy %s to %s: set times: %w", op.src, op.dst, err)
	}
	if err = tx.place(f.Name(), op.dst, op.kind == opOverwrite); err != nil {
		return fmt.Errorf("copy %s to %s: %w", op.src, op.dst, err)
	}
	return nil
}

// countShared counts the files and bytes below dir, without following symlinks.
func countShared(name, dir string) (Folder, error) {
	f := Folder{Name: name, Path: dir}
	real, err := filepath.EvalSymlinks(dir) // the shared folder itself may be a symlink
	if err != nil {
		return f, fmt.Errorf("count files in %s: %w", dir, err)
	}
	err = filepath.WalkDir(real, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("count files in %s: %w", dir, err)
		}
		switch d.Type() {
		case 0:
			info, err := d.Info()
			if err != nil {
				return fmt.Errorf("count files in %s: %w", dir, err)
			}
			f.Files++
			f.Bytes += info.Size()
		case fs.ModeSymlink:
			f.Files++
		}
		return nil
	})
	return f, err
}
