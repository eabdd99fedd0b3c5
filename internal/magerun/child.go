package magerun

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"

	"github.com/magefile/mage/mage"
)

// runChild runs the compiled magefiles as a child process and returns its
// exit code. Interrupts reach the child through the terminal's process
// group; this process only waits for it.
func runChild(exe string, inv mage.Invocation, workDir string, env []string, stdout, stderr io.Writer, stdin io.Reader) (int, error) {
	c := exec.Command(exe, inv.Args...)
	c.Dir, c.Env = workDir, env
	c.Stdout, c.Stderr, c.Stdin = stdout, stderr, stdin
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		return ee.ExitCode(), nil
	default:
		return 1, fmt.Errorf("run the compiled magefiles %s: %w", exe, err)
	}
}
