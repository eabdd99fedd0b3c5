//go:build unix

package magerun

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/magefile/mage/mage"
)

// execProgram runs the compiled magefiles in place of this process, so the
// target receives signals directly and its exit code is the process's.
// Streams other than the process's own need a child process.
func execProgram(exe string, inv mage.Invocation, workDir string, env []string, stdout, stderr io.Writer, stdin io.Reader) (int, error) {
	if stdout != os.Stdout || stderr != os.Stderr || stdin != os.Stdin {
		return runChild(exe, inv, workDir, env, stdout, stderr, stdin)
	}
	if err := os.Chdir(workDir); err != nil {
		return 1, fmt.Errorf("change to the working folder %s: %w", workDir, err)
	}
	err := syscall.Exec(exe, append([]string{exe}, inv.Args...), env)
	return 1, fmt.Errorf("run the compiled magefiles %s: %w", exe, err)
}
