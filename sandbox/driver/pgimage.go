package driver

import (
	"archive/tar"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The PostgreSQL image of stand-in mode is made, with no registry and no
// Dockerfile, from the PostgreSQL server Debian's packages installed on this
// machine (postgresql-NN): its programs and modules under
// /usr/lib/postgresql/NN, its data under /usr/share/postgresql/NN, the
// time zone files, the shared libraries all of them need (read from their
// ELF headers, the way the dynamic loader would find them), a passwd and
// group file with the postgres user (uid and gid 999), and the stand-in
// binary as the entrypoint (`standin pg-entrypoint`, cmd/standin/postgres.go).
// /bin/sh is Debian's dash (initdb needs a real shell; ["CMD-SHELL", …]
// healthchecks run in it), and pg_isready and psql are the real ones.

// pgImageUID is the postgres user's uid and gid in the image (the usual images' too).
const pgImageUID = 999

// pgPrograms are the PostgreSQL programs the image carries: the server,
// what the entrypoint runs, and the client tools a healthcheck or a person
// uses with docker exec.
var pgPrograms = []string{"postgres", "initdb", "pg_ctl", "pg_isready", "psql", "pg_dump", "pg_dumpall", "pg_restore"}

// pgBinLinks are the programs also reachable under /usr/bin.
var pgBinLinks = []string{"pg_isready", "psql", "pg_dump", "pg_restore"}

// HostPostgres is a PostgreSQL server installed from Debian's packages.
type HostPostgres struct {
	Version int    // the major version, e.g. 15
	Lib     string // /usr/lib/postgresql/NN (bin/ and lib/)
	Share   string // /usr/share/postgresql/NN
}

// ErrNoHostPostgres says that no PostgreSQL server is installed here.
var ErrNoHostPostgres = errors.New("no PostgreSQL server installed from Debian's packages (/usr/lib/postgresql/NN/bin/postgres)")

// FindHostPostgres returns the newest PostgreSQL server under root (""
// is /): the highest NN with /usr/lib/postgresql/NN/bin/postgres, initdb
// and pg_isready and /usr/share/postgresql/NN.
func FindHostPostgres(root string) (HostPostgres, error) {
	root = orString(root, "/")
	found, _ := filepath.Glob(filepath.Join(root, "usr/lib/postgresql/*/bin/postgres"))
	best := HostPostgres{Version: -1}
	for _, p := range found {
		lib := filepath.Dir(filepath.Dir(p))
		v, err := strconv.Atoi(filepath.Base(lib))
		if err != nil || v <= best.Version {
			continue
		}
		share := filepath.Join(root, "usr/share/postgresql", filepath.Base(lib))
		complete := true
		for _, need := range []string{filepath.Join(lib, "bin/initdb"), filepath.Join(lib, "bin/pg_isready"), filepath.Join(share, "postgres.bki")} {
			if _, err := os.Stat(need); err != nil {
				complete = false
			}
		}
		if complete {
			best = HostPostgres{Version: v, Lib: lib, Share: share}
		}
	}
	if best.Version < 0 {
		return best, fmt.Errorf("find PostgreSQL under %s: %w", root, ErrNoHostPostgres)
	}
	return best, nil
}

// BuildPostgresImage builds image (e.g. "ktrdr-postgres:dev") from the
// host's PostgreSQL (FindHostPostgres) and the stand-in binary compiled
// from pkg in repoRoot, piped as one tar to `docker import` with the
// entrypoint, PATH, PGDATA and LABEL sandbox.standin=1 (the entrypoint
// passes docker stop's SIGTERM on as SIGINT, the fast shut-down the usual
// images ask for with STOPSIGNAL, which docker import does not take). The build the tag named
// before goes when nothing uses it (RemoveReplacedStandin).
func BuildPostgresImage(ctx context.Context, r Runner, repoRoot, pkg, image string, progress io.Writer) error {
	return BuildPostgresImageFrom(ctx, r, "", repoRoot, pkg, image, progress)
}

// errImportEnded stops the writing of the tar once docker import returned.
var errImportEnded = errors.New("docker import ended")

// BuildPostgresImageFrom is BuildPostgresImage with the host's files read
// under root ("" is /).
func BuildPostgresImageFrom(ctx context.Context, r Runner, root, repoRoot, pkg, image string, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	pg, err := FindHostPostgres(root)
	if err != nil {
		return fmt.Errorf("build PostgreSQL image %s: %w", image, err)
	}
	tmp, err := os.MkdirTemp("", "pgimage-build-")
	if err != nil {
		return fmt.Errorf("build PostgreSQL image %s: create temp folder: %w", image, err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "standin")
	if err := compileStandin(ctx, r, repoRoot, pkg, bin, "", progress); err != nil {
		return fmt.Errorf("build PostgreSQL image %s: %w", image, err)
	}
	fmt.Fprintf(progress, "collecting PostgreSQL %d from %s and %s with the libraries it needs\n", pg.Version, pg.Lib, pg.Share)
	entries, err := pgImageEntries(pg, bin, root)
	if err != nil {
		return fmt.Errorf("build PostgreSQL image %s: %w", image, err)
	}
	before, err := ImageID(ctx, r, image)
	if err != nil {
		return fmt.Errorf("build PostgreSQL image %s: %w", image, err)
	}
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	var size int64
	go func() {
		n, err := writeImageTar(pw, entries)
		size = n
		pw.CloseWithError(err)
		written <- err
	}()
	binDir := "/usr/lib/postgresql/" + strconv.Itoa(pg.Version) + "/bin"
	imp := Cmd{
		Name: "docker",
		Args: []string{"import",
			"--change", `ENTRYPOINT ["/standin", "pg-entrypoint"]`,
			"--change", "ENV PATH=" + binDir + ":/usr/local/bin:/usr/bin:/bin",
			"--change", "ENV PGDATA=/var/lib/postgresql/data",
			"--change", "ENV TZ=Etc/UTC",
			"--change", "EXPOSE 5432",
			"--change", "LABEL " + StandinLabel + "=1",
			"-", image},
		Stdin:  pr,
		Stdout: progress,
		Stderr: progress,
	}
	fmt.Fprintf(progress, "importing %s (%d files)\n", image, len(entries))
	_, err = r.Run(ctx, imp)
	pr.CloseWithError(errImportEnded)
	// An import that succeeded took the whole image (it may leave the
	// tar's trailing padding unread); one that failed may have failed
	// because the tar could not be written.
	if werr := <-written; err != nil {
		if werr != nil && !errors.Is(werr, errImportEnded) {
			return fmt.Errorf("build PostgreSQL image %s: write its files: %w", image, werr)
		}
		return fmt.Errorf("build PostgreSQL image %s: docker import of PostgreSQL %d: %w", image, pg.Version, err)
	}
	fmt.Fprintf(progress, "built %s (%d MB of files)\n", image, size>>20)
	if err := RemoveReplacedStandin(ctx, r, image, before, progress); err != nil {
		fmt.Fprintf(progress, "note: %v\n", err)
	}
	return nil
}

// imageEntry is one file of an image: a tar header and, for a regular
// file, the host file whose bytes it holds (Src) or the bytes (Data).
type imageEntry struct {
	Hdr  tar.Header
	Src  string
	Data []byte
}

// pgImageEntries lists the image's files, parents before children, sorted
// (hard links last).
// root ("" is /) is where the host's files are read (tests use a fake tree).
func pgImageEntries(pg HostPostgres, standin, root string) ([]imageEntry, error) {
	root = orString(root, "/")
	ver := strconv.Itoa(pg.Version)
	out := map[string]imageEntry{}
	dir := func(name string, mode int64, uid int) {
		out[name] = imageEntry{Hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid}}
	}
	file := func(name, src string, mode int64) {
		out[name] = imageEntry{Hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, Src: src}
	}
	data := func(name, content string) {
		out[name] = imageEntry{Hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content))}, Data: []byte(content)}
	}
	link := func(name, target string) {
		out[name] = imageEntry{Hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
	}

	// The stand-in, the entrypoint; Debian's dash as /bin/sh, which initdb
	// runs the server through (with redirections) and ["CMD-SHELL", …]
	// healthchecks run in.
	file("standin", standin, 0o755)
	dash, err := filepath.EvalSymlinks(filepath.Join(root, "bin/dash"))
	if err != nil {
		return nil, fmt.Errorf("find Debian's /bin/dash for the image's /bin/sh: %w", err)
	}
	file("bin/dash", dash, 0o755)
	link("bin/sh", "dash")
	link("usr/bin/sh", "../../bin/dash")
	elfs := []string{dash}
	// Users, and the folders the server writes.
	data("etc/passwd", "root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL administrator:/var/lib/postgresql:/bin/sh\n")
	data("etc/group", "root:x:0:\npostgres:x:999:\n")
	data("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
	dir("tmp", 0o1777, 0)
	dir("root", 0o700, 0)
	dir("var/run/postgresql", 0o2775, pgImageUID)
	dir("var/lib/postgresql", 0o755, pgImageUID)
	dir("var/lib/postgresql/data", 0o700, pgImageUID)

	// PostgreSQL: the programs, every module but the JIT (which needs LLVM), its data.
	libDir := "usr/lib/postgresql/" + ver
	for _, p := range pgPrograms {
		src := filepath.Join(pg.Lib, "bin", p)
		if _, err := os.Stat(src); err != nil {
			if p == "postgres" || p == "initdb" || p == "pg_isready" {
				return nil, fmt.Errorf("PostgreSQL %d lacks %s: %w", pg.Version, src, err)
			}
			continue
		}
		file(libDir+"/bin/"+p, src, 0o755)
		elfs = append(elfs, src)
	}
	for _, p := range pgBinLinks {
		if _, ok := out[libDir+"/bin/"+p]; ok {
			link("usr/bin/"+p, "../lib/postgresql/"+ver+"/bin/"+p)
		}
	}
	mods, _ := filepath.Glob(filepath.Join(pg.Lib, "lib", "*.so"))
	for _, m := range mods {
		if strings.HasPrefix(filepath.Base(m), "llvmjit") {
			continue
		}
		file(libDir+"/lib/"+filepath.Base(m), m, 0o644)
		elfs = append(elfs, m)
	}
	if err := addTree(out, pg.Share, "usr/share/postgresql/"+ver, func(rel string) bool { return rel == "man" }); err != nil {
		return nil, err
	}
	if err := addTree(out, filepath.Join(root, "usr/share/zoneinfo"), "usr/share/zoneinfo", nil); err != nil {
		return nil, err
	}

	// The shared libraries, where the loader looks for them.
	libs, err := elfClosure(elfs, root)
	if err != nil {
		return nil, err
	}
	for name, src := range libs {
		file(name, src, 0o755)
	}

	// Every parent folder, then everything in name order.
	for name := range out {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if _, ok := out[d]; !ok {
				dir(d, 0o755, 0)
			}
		}
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	// Hard links after what they name.
	sort.Slice(names, func(i, j int) bool {
		li, lj := out[names[i]].Hdr.Typeflag == tar.TypeLink, out[names[j]].Hdr.Typeflag == tar.TypeLink
		if li != lj {
			return lj
		}
		return names[i] < names[j]
	})
	entries := make([]imageEntry, 0, len(names))
	for _, n := range names {
		entries = append(entries, out[n])
	}
	return entries, nil
}

// addTree adds the files under src as dst, keeping relative symbolic
// links and reading through absolute ones; skip (relative to src) leaves
// out a top-level name.
func addTree(out map[string]imageEntry, src, dst string, skip func(rel string) bool) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read %s: %w", src, err)
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		if skip != nil && skip(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		name := dst + "/" + filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			out[name] = imageEntry{Hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755}}
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if !filepath.IsAbs(target) {
				out[name] = imageEntry{Hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
				return nil
			}
			out[name] = imageEntry{Hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, Src: p}
		case d.Type().IsRegular():
			out[name] = imageEntry{Hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, Src: p}
		}
		return nil
	})
}

// libDirs are where the dynamic loader looks for a library no run path names.
func libDirs(root string) []string {
	triplet := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "arm": "arm-linux-gnueabihf",
		"386": "i386-linux-gnu", "ppc64le": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu", "riscv64": "riscv64-linux-gnu"}[runtime.GOARCH]
	var dirs []string
	if triplet != "" {
		dirs = append(dirs, "/lib/"+triplet, "/usr/lib/"+triplet)
	}
	dirs = append(dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
	for i, d := range dirs {
		dirs[i] = filepath.Join(root, d)
	}
	return dirs
}

// elfClosure returns the shared libraries (and the program interpreter)
// that the ELF files need, directly or through each other: image path
// (no leading /) → the host file, read through links.
func elfClosure(files []string, root string) (map[string]string, error) {
	root = orString(root, "/")
	dirs := libDirs(root)
	libs := map[string]string{}
	seen := map[string]bool{}
	queue := append([]string(nil), files...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		f, err := elf.Open(p)
		if err != nil {
			return nil, fmt.Errorf("read the ELF headers of %s: %w", p, err)
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("read the libraries %s needs: %w", p, err)
		}
		var search []string
		for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
			vals, _ := f.DynString(tag)
			for _, v := range vals {
				for _, d := range strings.Split(v, ":") {
					d = strings.ReplaceAll(d, "$ORIGIN", filepath.Dir(p))
					if d != "" {
						search = append(search, d)
					}
				}
			}
		}
		for _, prog := range f.Progs {
			if prog.Type != elf.PT_INTERP {
				continue
			}
			b, err := io.ReadAll(prog.Open())
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("read the interpreter of %s: %w", p, err)
			}
			interp := strings.TrimRight(string(b), "\x00")
			host := filepath.Join(root, interp)
			real, err := filepath.EvalSymlinks(host)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("find %s, the interpreter of %s: %w", interp, p, err)
			}
			libs[strings.TrimPrefix(interp, "/")] = real
		}
		f.Close()
		for _, lib := range needed {
			found := ""
			for _, d := range append(search, dirs...) {
				c := filepath.Join(d, lib)
				if _, err := os.Stat(c); err == nil {
					found = c
					break
				}
			}
			if found == "" {
				return nil, fmt.Errorf("find %s, which %s needs, in %s", lib, p, strings.Join(append(search, dirs...), ", "))
			}
			real, err := filepath.EvalSymlinks(found)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", found, err)
			}
			rel, _ := filepath.Rel(root, found)
			libs[filepath.ToSlash(rel)] = real
			queue = append(queue, real)
		}
	}
	return libs, nil
}

// writeImageTar writes entries as a tar to w and returns the bytes of
// file content written.
func writeImageTar(w io.Writer, entries []imageEntry) (int64, error) {
	tw := tar.NewWriter(w)
	mtime := time.Unix(0, 0).UTC()
	var total int64
	for _, e := range entries {
		h := e.Hdr
		h.ModTime, h.Format = mtime, tar.FormatPAX
		var src *os.File
		if h.Typeflag == tar.TypeReg && e.Data == nil {
			f, err := os.Open(e.Src)
			if err != nil {
				return total, fmt.Errorf("read %s for %s: %w", e.Src, h.Name, err)
			}
			fi, err := f.Stat()
			if err != nil {
				f.Close()
				return total, fmt.Errorf("read %s for %s: %w", e.Src, h.Name, err)
			}
			h.Size, src = fi.Size(), f
		}
		if err := tw.WriteHeader(&h); err != nil {
			if src != nil {
				src.Close()
			}
			return total, fmt.Errorf("write tar entry %s: %w", h.Name, err)
		}
		switch {
		case src != nil:
			n, err := io.CopyN(tw, src, h.Size)
			src.Close()
			total += n
			if err != nil {
				return total, fmt.Errorf("write tar entry %s from %s: %w", h.Name, e.Src, err)
			}
		case e.Data != nil:
			n, err := tw.Write(e.Data)
			total += int64(n)
			if err != nil {
				return total, fmt.Errorf("write tar entry %s: %w", h.Name, err)
			}
		}
	}
	return total, tw.Close()
}
