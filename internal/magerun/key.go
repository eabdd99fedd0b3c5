package magerun

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// module is the Go module that holds the magefiles.
type module struct {
	Root      string // folder of go.mod
	Path      string // module path
	GoVersion string // the go directive ("" when absent)
}

// findModule finds the go.mod at or above dir and reads its module path and
// go directive.
func findModule(dir string) (module, error) {
	for d := dir; ; {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			m := module{Root: d}
			sc := bufio.NewScanner(strings.NewReader(string(data)))
			for sc.Scan() {
				fields := strings.Fields(sc.Text())
				if len(fields) < 2 {
					continue
				}
				switch fields[0] {
				case "module":
					m.Path = unquote(fields[1])
				case "go":
					m.GoVersion = fields[1]
				}
			}
			if m.Path == "" {
				return module{}, fmt.Errorf("read %s: no module line", filepath.Join(d, "go.mod"))
			}
			return m, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return module{}, fmt.Errorf("read %s: %w", filepath.Join(d, "go.mod"), err)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return module{}, fmt.Errorf("no go.mod at or above %s: the magefiles must belong to a Go module", dir)
		}
		d = parent
	}
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

// keyInputs is everything a build depends on besides the files.
type keyInputs struct {
	GoCmd     string
	Multiline bool
	Env       func(string) string // os.Getenv in production
}

// recipe changes when magerun builds programs differently, so that
// programs built the old way are not reused.
const recipe = 4

// buildEnvKeys are the variables that change what `go build` produces.
var buildEnvKeys = []string{"GOOS", "GOARCH", "GOFLAGS", "CGO_ENABLED", "GOEXPERIMENT", "GOAMD64", "GOARM", "GOARM64", "GO386", "GOTOOLCHAIN",
	"CC", "CXX", "CGO_CFLAGS", "CGO_CPPFLAGS", "CGO_CXXFLAGS", "CGO_LDFLAGS", "GOPRIVATE", "GONOSUMDB"}

// computeKey returns the hex key of the program built from files (the
// magefiles, absolute paths) of module mod, and the folders it hashed.
func computeKey(mod module, files []string, in keyInputs) (string, []string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "magerun %d\x00go %s %s/%s\x00mage %s\x00gocmd %s\x00multiline %t\x00",
		recipe, runtime.Version(), runtime.GOOS, runtime.GOARCH, mageVersion(), in.GoCmd, in.Multiline)
	for _, k := range buildEnvKeys {
		fmt.Fprintf(h, "%s=%s\x00", k, in.Env(k))
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		if err := hashFile(h, filepath.Join(mod.Root, name), name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", nil, err
		}
	}
	sorted := slices.Clone(files)
	slices.Sort(sorted)
	var imports []string
	for _, f := range sorted {
		if err := hashFile(h, f, "magefile "+filepath.Base(f)); err != nil {
			return "", nil, err
		}
		imps, err := importsOf(f)
		if err != nil {
			return "", nil, err
		}
		imports = append(imports, imps...)
	}
	dirs, err := localPackages(mod, imports)
	if err != nil {
		return "", nil, err
	}
	for _, d := range dirs {
		if err := hashPackageDir(h, mod.Root, d); err != nil {
			return "", nil, err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), dirs, nil
}

// mageVersion is the version of mage linked into this program: its
// generated main file is part of every build.
func mageVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/magefile/mage" {
				if d.Replace != nil {
					return d.Version + "=>" + d.Replace.Path + "@" + d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "unknown"
}

func hashFile(h hash.Hash, path, label string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(h, "file %s\x00", label)
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	fmt.Fprintf(h, "\x00%d\x00", n)
	return nil
}

// importsOf parses the import paths of one Go file.
func importsOf(path string) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
	if err != nil {
		return nil, fmt.Errorf("read the imports of %s: %w", path, err)
	}
	var out []string
	for _, imp := range f.Imports {
		if p, err := strconv.Unquote(imp.Path.Value); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// localPackages follows imports within mod and returns the folders of every
// package of mod reached, sorted.
func localPackages(mod module, imports []string) ([]string, error) {
	seen := map[string]bool{}
	queue := slices.Clone(imports)
	for len(queue) > 0 {
		imp := queue[0]
		queue = queue[1:]
		rel, ok := strings.CutPrefix(imp, mod.Path)
		if !ok || (rel != "" && rel[0] != '/') {
			continue
		}
		dir := filepath.Join(mod.Root, filepath.FromSlash(strings.TrimPrefix(rel, "/")))
		if seen[dir] {
			continue
		}
		seen[dir] = true
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("read package %s: %w", imp, err)
		}
		for _, e := range entries {
			if regular(dir, e) && isSourceFile(e.Name()) && strings.HasSuffix(e.Name(), ".go") {
				imps, err := importsOf(filepath.Join(dir, e.Name()))
				if err != nil {
					return nil, err
				}
				queue = append(queue, imps...)
			}
		}
	}
	dirs := make([]string, 0, len(seen))
	for d := range seen {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	return dirs, nil
}

// regular reports whether a folder entry is a regular file, following a
// symbolic link as go build does.
func regular(dir string, e os.DirEntry) bool {
	if e.Type().IsRegular() {
		return true
	}
	if e.Type()&os.ModeSymlink == 0 {
		return false
	}
	fi, err := os.Stat(filepath.Join(dir, e.Name()))
	return err == nil && fi.Mode().IsRegular()
}

// isSourceFile reports whether a file of a package folder can change the
// package's build: every file but tests (non-Go files may be embedded).
func isSourceFile(name string) bool {
	return !strings.HasSuffix(name, "_test.go") && !strings.HasPrefix(name, ".")
}

// hashPackageDir hashes the names and contents of a package folder's files.
func hashPackageDir(h hash.Hash, root, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	rel, _ := filepath.Rel(root, dir)
	for _, e := range entries {
		if !regular(dir, e) || !isSourceFile(e.Name()) {
			continue
		}
		if err := hashFile(h, filepath.Join(dir, e.Name()), filepath.ToSlash(filepath.Join(rel, e.Name()))); err != nil {
			return err
		}
	}
	return nil
}
