//go:build !unix

package magerun

import (
	"io"

	"github.com/magefile/mage/mage"
)

// execProgram runs the compiled magefiles as a child process.
func execProgram(exe string, inv mage.Invocation, workDir string, env []string, stdout, stderr io.Writer, stdin io.Reader) (int, error) {
	return runChild(exe, inv, workDir, env, stdout, stderr, stdin)
}
