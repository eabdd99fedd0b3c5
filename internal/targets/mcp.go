package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Mcp serves the sandbox targets to coding agents: an MCP server on standard input and output
// (tools create, up, down, destroy, status, list, url, logs, ports), run from a checkout of the
// project. Only protocol messages go to standard output; steps go to standard error. Exit 0 when
// the client closes the connection, 1 the server could not start.
func (Sandbox) Mcp(ctx context.Context) (err error) {
	defer exitAs(tMCP, &err)
	home, err := os.UserHomeDir()
	if err != nil {
		return &homeError{err}
	}
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("find the current folder: %w", err)
	}
	proto, err := protocolWriter()
	if err != nil {
		return err
	}
	defer proto.Close()
	if readsTerminal(stdin) {
		fmt.Fprintln(stderr, "sandbox:mcp: an MCP server for coding agents, reading protocol messages on stdin; register it with your agent (README: For coding agents). Ctrl-D ends it.")
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()
	srv := newMCPServer(ctx, cwd, home, stderr)
	err = srv.Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(stdin), Writer: proto})
	if err == nil || errors.Is(err, io.EOF) || ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("sandbox:mcp: %w", err)
}

// protocolWriter is where the protocol goes: standard output, taken for
// the protocol alone (protocolOut), or the seam a test set.
func protocolWriter() (io.WriteCloser, error) {
	if f, ok := stdout.(*os.File); ok && f == os.Stdout {
		return protocolOut()
	}
	return nopWriteCloser{stdout}, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
