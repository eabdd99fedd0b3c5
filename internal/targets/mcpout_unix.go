//go:build unix

package targets

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// protocolOut takes standard output for the protocol alone: it returns a
// new descriptor of it, and points descriptor 1 at standard error, so that
// whatever else writes to standard output (this process, or a program it
// runs) reaches standard error instead of corrupting the protocol.
func protocolOut() (*os.File, error) {
	fd, err := unix.Dup(1)
	if err != nil {
		return nil, fmt.Errorf("sandbox:mcp: keep standard output for the protocol: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.Dup2(2, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sandbox:mcp: point standard output at standard error: %w", err)
	}
	return os.NewFile(uintptr(fd), "mcp protocol"), nil
}
