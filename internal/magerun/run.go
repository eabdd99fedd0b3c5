package magerun

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/magefile/mage/mage"
)

// Main runs mage with the process's arguments and streams; it returns the
// exit code. On Unix a target runs in place of this process and Main does
// not return then.
func Main() int { return Run(os.Stdout, os.Stderr, os.Stdin, os.Args[1:]) }

// Run is Main with explicit streams and arguments (without the program
// name). Mage's flags keep their meaning.
func Run(stdout, stderr io.Writer, stdin io.Reader, args []string) int {
	inv, cmd, err := mage.Parse(stderr, stdout, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return ExitUsage
	}
	if cmd == mage.Version {
		fmt.Fprintf(stdout, "Mage Build Tool %s (run by magerun: compiled once per change into %s)\n", mageVersion(), cacheDirOrEmpty())
		return 0
	}
	if cmd == mage.Init || cmd == mage.Clean || cmd == mage.Install || inv.Autocomplete {
		// Mage's own commands compile nothing: they are mage's to run.
		return mage.ParseAndRun(stdout, stderr, stdin, args)
	}
	code, err := run(inv, stdout, stderr, stdin)
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
	}
	return code
}

func run(inv mage.Invocation, stdout, stderr io.Writer, stdin io.Reader) (int, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return 1, fmt.Errorf("find the current folder: %w", err)
	}
	dir := cwd
	if inv.Dir != "" {
		dir = absIn(cwd, inv.Dir)
	}
	workDir := dir
	if inv.WorkDir != "" {
		workDir = absIn(cwd, inv.WorkDir)
	}
	files, err := findMagefiles(dir, inv.GOOS, inv.GOARCH, stderr)
	if err != nil {
		return 1, err
	}
	mod, err := findModule(filepath.Dir(files[0]))
	if err != nil {
		return 1, err
	}
	goCmd := inv.GoCmd
	if goCmd == "" {
		goCmd = "go"
	}
	cacheDir, err := CacheDir()
	if err != nil {
		return 1, err
	}
	b := builder{CacheDir: cacheDir, Mod: mod, Files: files, GoCmd: goCmd, Multiline: inv.Multiline, Debug: inv.Debug, Log: stderr}
	if inv.CompileOut != "" {
		if _, err := b.compile(absIn(cwd, inv.CompileOut), inv.GOOS, inv.GOARCH, inv.Ldflags); err != nil {
			return 1, err
		}
		return 0, nil
	}
	key, _, err := computeKey(mod, files, keyInputs{GoCmd: goCmd, Multiline: inv.Multiline, Env: os.Getenv})
	if err != nil {
		return 1, err
	}
	exe, sigs, err := b.program(key, inv.Force, func() (string, error) {
		k, _, err := computeKey(mod, files, keyInputs{GoCmd: goCmd, Multiline: inv.Multiline, Env: os.Getenv})
		return k, err
	})
	if err != nil {
		return 1, err
	}
	// A command line the program would refuse exits 64 here, so that the
	// targets' own codes (2 and up) never mean "bad flag".
	if sigs != nil && !inv.List && !inv.Help {
		if err := sigs.check(inv.Args); err != nil {
			return ExitUsage, err
		}
	}
	return execProgram(exe, inv, workDir, targetEnv(inv), stdout, stderr, stdin)
}

// CacheDir is where compiled magefiles are kept: ktrdr-sandbox/mage in the
// user's cache folder.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the user's cache folder for compiled magefiles: %w", err)
	}
	return filepath.Join(base, "ktrdr-sandbox", "mage"), nil
}

func cacheDirOrEmpty() string {
	d, _ := CacheDir()
	return d
}

func absIn(cwd, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(cwd, p)
}

// findMagefiles chooses the magefiles as mage does: the magefiles folder
// when there is one (unless dir itself has files with the mage build tag),
// else the files of dir with the mage build tag.
func findMagefiles(dir, goos, goarch string, stderr io.Writer) ([]string, error) {
	sub := filepath.Join(dir, mage.MagefilesDirName)
	if fi, err := os.Stat(sub); err == nil && fi.IsDir() {
		here, err := mage.Magefiles(dir, goos, goarch, false)
		if err == nil && len(here) > 0 {
			fmt.Fprintln(stderr, "[WARNING] You have both a magefiles directory and mage files in the "+
				"current directory, in future versions the files will be ignored in favor of the directory")
		} else {
			files, err := mage.Magefiles(sub, goos, goarch, true)
			if err != nil {
				return nil, fmt.Errorf("determine the magefiles in %s: %w", sub, err)
			}
			if len(files) == 0 {
				return nil, fmt.Errorf("no Go files in %s", sub)
			}
			return files, nil
		}
	}
	files, err := mage.Magefiles(dir, goos, goarch, false)
	if err != nil {
		return nil, fmt.Errorf("determine the magefiles in %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, errors.New("no .go files marked with the mage build tag in this directory (" + dir + ")")
	}
	return files, nil
}

// targetEnv is the environment of the compiled program: this process's,
// plus mage's variables for the flags given (as mage passes them).
func targetEnv(inv mage.Invocation) []string {
	env := os.Environ()
	if inv.Verbose {
		env = append(env, "MAGEFILE_VERBOSE=1")
	}
	if inv.List {
		env = append(env, "MAGEFILE_LIST=1")
	}
	if inv.Help {
		env = append(env, "MAGEFILE_HELP=1")
	}
	if inv.Debug {
		env = append(env, "MAGEFILE_DEBUG=1")
	}
	if inv.GoCmd != "" {
		env = append(env, "MAGEFILE_GOCMD="+inv.GoCmd)
	}
	if inv.Timeout > 0 {
		env = append(env, "MAGEFILE_TIMEOUT="+inv.Timeout.String())
	}
	return env
}
