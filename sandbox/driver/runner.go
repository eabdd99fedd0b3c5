package driver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cmd is one external command: a program and its arguments, never a shell
// string. Dir is the working directory ("" means the caller's).
type Cmd struct {
	Name   string
	Args   []string
	Dir    string
	Env    []string  // the complete environment of the command; nil inherits the caller's
	Stdin  io.Reader // optional
	Stdout io.Writer // optional: stream output here instead of capturing it
	Stderr io.Writer // optional: stream errors here instead of capturing them
	// ExtraFiles are open files the command inherits as descriptors 3, 4, …
	// (exec.Cmd.ExtraFiles): how secrets reach compose without a path on disk.
	ExtraFiles []*os.File
}

// String renders the command for messages and logs.
func (c Cmd) String() string {
	parts := append([]string{c.Name}, c.Args...)
	for i, p := range parts {
		if p == "" || strings.ContainsAny(p, " \t\"'$\\") {
			parts[i] = fmt.Sprintf("%q", p)
		}
	}
	return strings.Join(parts, " ")
}

// Runner runs external commands (docker, git, go). It is the seam that unit
// tests replace with a fake. Run returns the captured standard output (when
// Cmd.Stdout is nil); a non-zero exit is an *ExitError carrying stderr.
type Runner interface {
	Run(ctx context.Context, c Cmd) ([]byte, error)
}

// ExecRunner is the real Runner, built on exec.CommandContext. On context
// cancellation the child gets SIGINT first and is killed after WaitDelay, so
// docker and git can finish what they were writing.
type ExecRunner struct{}

// ExitError reports a command that ran and failed.
type ExitError struct {
	Cmd    string
	Code   int
	Stderr string
}

// Error shows the last few lines of stderr: where tools put the reason.
func (e *ExitError) Error() string {
	msg := lastLines(strings.TrimSpace(e.Stderr), 6)
	if msg == "" {
		return fmt.Sprintf("%s: exit status %d", e.Cmd, e.Code)
	}
	return fmt.Sprintf("%s: exit status %d: %s", e.Cmd, e.Code, msg)
}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, c Cmd) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Dir = c.Dir
	if c.Env != nil {
		cmd.Env = c.Env
	}
	cmd.Stdin = c.Stdin
	cmd.ExtraFiles = c.ExtraFiles
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 10 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	}
	cmd.Stderr = &errb
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(c.Stderr, &errb)
	}
	if c.Stdout != nil && c.Stderr != nil {
		// Both streams may go to one writer (a hook's output): exec copies
		// each from its own goroutine, so their writes take turns.
		var mu sync.Mutex
		cmd.Stdout = &lockedWriter{mu: &mu, w: cmd.Stdout}
		cmd.Stderr = &lockedWriter{mu: &mu, w: cmd.Stderr}
	}
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			return out.Bytes(), fmt.Errorf("%s: interrupted: %w", c, ctx.Err())
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return out.Bytes(), &ExitError{Cmd: c.String(), Code: ee.ExitCode(), Stderr: tail(errb.String(), 4000)}
		}
		return out.Bytes(), fmt.Errorf("run %s: %w", c, err)
	}
	return out.Bytes(), nil
}

// lockedWriter writes to w holding mu, which it shares with another.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// lastLines returns the last n lines of s, marking a cut; a "fatal:" or
// "error:" line cut off above them (git's reason) is kept first.
func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s
	}
	out := ""
	for _, l := range lines[:len(lines)-n] {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "fatal:") || strings.HasPrefix(t, "error:") || strings.HasPrefix(t, "Error") {
			out = l + "\n"
			break
		}
	}
	return out + "…\n" + strings.Join(lines[len(lines)-n:], "\n")
}
