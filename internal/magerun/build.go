package magerun

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
	"github.com/magefile/mage/mage"
)

// Cache ages: a program unused this long is removed after the next build; a
// staging folder this old was left by a killed build.
const (
	unusedProgramAge = 14 * 24 * time.Hour
	leftStageAge     = 24 * time.Hour
	touchAfter       = 24 * time.Hour
)

// stagedModule is the last element of the staged magefiles' module path
// (<module path>/magerun_staged_magefiles): a folder no module has.
const stagedModule = "magerun_staged_magefiles"

// builder compiles one set of magefiles.
type builder struct {
	CacheDir  string   // the programs, their locks and staging folders
	Mod       module   // the module that holds the magefiles
	Files     []string // the magefiles, absolute
	GoCmd     string
	Multiline bool
	Debug     bool
	Log       io.Writer // go's output when a build fails, and debug lines
}

func exeName(key string) string {
	if runtime.GOOS == "windows" {
		return key + ".exe"
	}
	return key
}

// program returns the cached program of key, building it first when it is
// missing (or when force is set), and its targets' signatures (nil when
// they could not be read: the command line is then left to mage). Builders
// of one key take turns under a file lock; readers of a finished program
// take no lock. The signatures are put in place before the program, so a
// program that is there has its signatures beside it.
func (b builder) program(key string, force bool, rekey func() (string, error)) (string, *signatures, error) {
	exe := filepath.Join(b.CacheDir, exeName(key))
	sigPath := filepath.Join(b.CacheDir, key+signaturesSuffix)
	if !force {
		if ok := usable(exe); ok {
			return exe, readSignatures(sigPath), nil
		}
	}
	if err := os.MkdirAll(b.CacheDir, 0o700); err != nil {
		return "", nil, fmt.Errorf("create the mage cache folder %s: %w", b.CacheDir, err)
	}
	lock := flock.New(filepath.Join(b.CacheDir, key+".lock"))
	if err := lock.Lock(); err != nil {
		return "", nil, fmt.Errorf("lock %s: %w", lock.Path(), err)
	}
	defer lock.Unlock()
	if !force && usable(exe) {
		return exe, readSignatures(sigPath), nil // another process built it while this one waited
	}
	// Mage names the program in its help after the output file: "mage".
	tmpDir, err := os.MkdirTemp(b.CacheDir, "tmp-"+key[:16]+"-")
	if err != nil {
		return "", nil, fmt.Errorf("create a build folder in %s: %w", b.CacheDir, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, exeName("mage"))
	sigs, err := b.compile(tmp, "", "", "")
	if err != nil {
		return "", nil, err
	}
	// A file saved while go built may be in the program: cache it only if
	// the sources still have the key it was built for; else run it once.
	if rekey != nil {
		if now, err := rekey(); err != nil || now != key {
			once := filepath.Join(b.CacheDir, "tmp-run-"+strconv.Itoa(os.Getpid()))
			if err := os.Rename(tmp, once); err != nil {
				return "", nil, fmt.Errorf("keep the compiled magefiles at %s: %w", once, err)
			}
			return once, sigs, nil
		}
	}
	if sigs != nil {
		if err := writeSignatures(sigPath, sigs); err != nil {
			return "", nil, err
		}
	} else {
		os.Remove(sigPath) // none of an earlier build of this key may speak for this one
	}
	if err := os.Rename(tmp, exe); err != nil {
		return "", nil, fmt.Errorf("put the compiled magefiles in place at %s: %w", exe, err)
	}
	b.prune(key)
	return exe, sigs, nil
}

// usable reports whether exe is a finished program, and marks it used.
func usable(exe string) bool {
	fi, err := os.Stat(exe)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if time.Since(fi.ModTime()) > touchAfter {
		now := time.Now()
		_ = os.Chtimes(exe, now, now)
	}
	return true
}

// gowork is process-wide (mage runs go with this process's environment), so
// builds in one process take turns.
var compileMu sync.Mutex

// compile builds the magefiles into out and returns their targets'
// signatures (nil when they could not be read). Mage generates its main
// file in a private staging copy of the magefiles; a go.work joins that
// copy to the module, so the build sees the module's packages and
// requirements, and nothing is written into the work tree.
func (b builder) compile(out, goos, goarch, ldflags string) (*signatures, error) {
	compileMu.Lock()
	defer compileMu.Unlock()
	if err := os.MkdirAll(b.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("create the mage cache folder %s: %w", b.CacheDir, err)
	}
	stage, err := os.MkdirTemp(b.CacheDir, "stage-")
	if err != nil {
		return nil, fmt.Errorf("create a staging folder in %s: %w", b.CacheDir, err)
	}
	defer os.RemoveAll(stage)
	// Named magefiles: mage then takes every Go file of the folder, which
	// are exactly the magefiles chosen from the source folder.
	dir := filepath.Join(stage, mage.MagefilesDirName)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	for _, f := range b.Files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read magefile %s: %w", f, err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o600); err != nil {
			return nil, fmt.Errorf("stage magefile %s: %w", f, err)
		}
	}
	goVersion := b.Mod.GoVersion
	if goVersion == "" {
		goVersion = "1.21"
	}
	// The staged module's path lies under the module's own, so that the
	// magefiles may import its internal packages.
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+b.Mod.Path+"/"+stagedModule+"\n\ngo "+goVersion+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("stage go.mod: %w", err)
	}
	work := fmt.Sprintf("go %s\n\nuse (\n\t./%s\n\t%s\n)\n", goVersion, mage.MagefilesDirName, strconv.Quote(b.Mod.Root))
	workFile := filepath.Join(stage, "go.work")
	if err := os.WriteFile(workFile, []byte(work), 0o600); err != nil {
		return nil, fmt.Errorf("stage go.work: %w", err)
	}
	restoreWork := setenv("GOWORK", workFile)
	restoreFlags := func() {}
	// The staging go.work puts the build in workspace mode, where -mod=mod
	// and -mod=vendor are refused: leave them out of GOFLAGS for it.
	if flags := os.Getenv("GOFLAGS"); strings.Contains(flags, "-mod=") {
		var keep []string
		for _, f := range strings.Fields(flags) {
			if !strings.HasPrefix(f, "-mod=") && !strings.HasPrefix(f, "--mod=") {
				keep = append(keep, f)
			}
		}
		restoreFlags = setenv("GOFLAGS", strings.Join(keep, " "))
	}

	var output bytes.Buffer
	w := io.Writer(&output)
	if b.Debug {
		w = io.MultiWriter(&output, b.Log)
	}
	rc := mage.Invoke(mage.Invocation{
		Dir: dir, CompileOut: out, Force: true, GoCmd: b.GoCmd, Multiline: b.Multiline, Debug: b.Debug,
		GOOS: goos, GOARCH: goarch, Ldflags: ldflags, Keep: true,
		Stdout: w, Stderr: w, Stdin: strings.NewReader(""),
	})
	var sigs *signatures
	if rc == 0 {
		// Parsed as mage parsed them for the build, in the same workspace.
		var err error
		if sigs, err = parseSignatures(b.GoCmd, dir, b.Files, b.Multiline); err != nil && b.Debug {
			fmt.Fprintln(b.Log, "magerun:", err)
		}
	}
	restoreFlags()
	restoreWork()
	if rc == 0 {
		return sigs, nil
	}
	// Workspace mode ignores a vendor folder and the user's own go.work: if
	// mage generated its main file, build it in the module itself, the file
	// given to go through -overlay (still nothing written into the tree).
	generated := filepath.Join(dir, "mage_output_file.go")
	if _, err := os.Stat(generated); err == nil {
		var second bytes.Buffer
		if err := b.overlayBuild(stage, generated, out, goos, goarch, ldflags, &second); err == nil {
			return nil, nil // the command line is left to mage
		}
		output.WriteString("\n(then, built in the module with -overlay)\n")
		output.Write(second.Bytes())
	}
	if !b.Debug {
		b.Log.Write(output.Bytes())
	}
	return nil, fmt.Errorf("compile the magefiles of %s: mage exited %d (its output is above)", b.Mod.Root, rc)
}

// overlayBuild compiles the magefiles in their own folder with mage's
// generated main file given to go through an overlay.
func (b builder) overlayBuild(stage, generated, out, goos, goarch, ldflags string, log io.Writer) error {
	src := filepath.Dir(b.Files[0])
	virtual := filepath.Join(src, "mage_output_file.go")
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {virtual: generated}})
	if err != nil {
		return err
	}
	overlayFile := filepath.Join(stage, "overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o600); err != nil {
		return err
	}
	args := []string{"build", "-overlay", overlayFile, "-o", out}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	for _, f := range b.Files {
		args = append(args, filepath.Base(f))
	}
	args = append(args, filepath.Base(virtual))
	cmd := exec.Command(b.GoCmd, args...)
	cmd.Dir = src
	cmd.Env = os.Environ()
	if goos != "" {
		cmd.Env = append(cmd.Env, "GOOS="+goos)
	}
	if goarch != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+goarch)
	}
	cmd.Stdout, cmd.Stderr = log, log
	return cmd.Run()
}

// setenv sets a variable for this process and returns its undo.
func setenv(key, value string) func() {
	old, had := os.LookupEnv(key)
	os.Setenv(key, value)
	return func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	}
}

// prune removes programs unused for two weeks (with their locks) and
// staging folders and temporary programs that killed builds left behind.
func (b builder) prune(keep string) {
	entries, err := os.ReadDir(b.CacheDir)
	if err != nil {
		return
	}
	now := time.Now()
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, keep) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		age := now.Sub(fi.ModTime())
		path := filepath.Join(b.CacheDir, name)
		switch {
		case strings.HasSuffix(name, signaturesSuffix):
			removeOrphanSignatures(b.CacheDir, name)
		case strings.HasPrefix(name, "stage-") || strings.HasPrefix(name, "tmp-"):
			if age > leftStageAge {
				os.RemoveAll(path)
			}
		case isKey(strings.TrimSuffix(name, ".exe")) && fi.Mode().IsRegular():
			if age > unusedProgramAge {
				// Its lock file stays: a builder may be waiting on it.
				os.Remove(path)
			}
		}
	}
}

func isKey(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
