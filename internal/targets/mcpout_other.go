//go:build !unix

package targets

import (
	"io"
	"os"
)

// protocolOut is standard output: on this system nothing guards it from
// other writers.
func protocolOut() (io.WriteCloser, error) { return nopWriteCloser{os.Stdout}, nil }
