package targets

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/magefile/mage/mg"
	"github.com/mattn/go-isatty"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// The seams of the edge. Tests replace them; targets use them only through
// manager, and print only to stdout and stderr.
var (
	stdin  io.Reader     = os.Stdin
	stdout io.Writer     = os.Stdout
	stderr io.Writer     = os.Stderr
	runner driver.Runner = driver.ExecRunner{} // docker, compose and git
)

// manager returns the library's manager for this user, printing steps to
// stdout, or to stderr when stdout carries JSON.
func manager(jsonOut ...*bool) (*sandbox.Manager, string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, "", &homeError{err}
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, "", fmt.Errorf("find the current folder: %w", err)
	}
	steps := stdout
	if len(jsonOut) > 0 && deref(jsonOut[0]) {
		steps = stderr
	}
	m, err := sandbox.LoadManager(home)
	if err != nil {
		return nil, "", &settingsError{err}
	}
	m.Runner = runner
	m.Events = printEvents(steps)
	m.Log = steps
	return m, cwd, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// readsTerminal reports whether r is a terminal.
func readsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

func printJSON(v any) error {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// verboseOut is where compose's own output goes: stderr with -v, else nowhere
// (it is kept for the error message). A nil interface, never a nil *os.File.
func verboseOut() io.Writer {
	if mg.Verbose() {
		return stderr
	}
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sortedSlots(m map[int]string) []int { return slices.Sorted(maps.Keys(m)) }
