package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A target interrupted "at some moment" may have finished, or not begun,
// the phase a test means to interrupt: a test that then accepts either
// outcome proves nothing. The helpers here interrupt a target at a known
// phase instead: a wrapper of the tool the phase runs (git, docker) stops
// at the phase's call, and says so with a file; the test interrupts the
// target once that file exists. No timing is involved.

// phaseWait bounds the wait for a target to reach a phase, or to end once
// interrupted: an upper bound only (a first up may build the stand-in image).
const phaseWait = 3 * time.Minute

// hold is one armed stop in a tool the targets run.
type hold struct {
	what   string // the phase, for messages
	armed  string // exists until the stop is taken
	marker string // written, holding the wrapper's pid, once the call is held
	// inPhase, if set, checks the state while the call is held, before the
	// interrupt: that the phase is the one the test names.
	inPhase func()
}

// holdAt puts a wrapper of tool first on e's PATH. Its first call whose
// arguments include every one of words is held: the wrapper runs the real
// tool first when after is set, then writes h.marker and waits until it is
// killed (the target's cancellation interrupts it), so that the target
// stays inside the phase. Every other call, and every call once the stop
// was taken, runs the real tool. The wrapper is armed at once.
func (e *env) holdAt(t *testing.T, what, tool string, after bool, words ...string) *hold {
	t.Helper()
	real, err := exec.LookPath(tool)
	require.NoError(t, err)
	dir := t.TempDir()
	h := &hold{what: what, armed: filepath.Join(dir, "armed"), marker: filepath.Join(dir, "reached")}
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = "'" + w + "'"
	}
	runReal := ""
	if after {
		runReal = fmt.Sprintf("%q \"$@\"\n  ", real)
	}
	script := fmt.Sprintf(`#!/bin/sh
# e2e: hold the first %[1]s call with the words %[2]s (see holdAt)
match=
if [ -e %[3]q ]; then
  match=1
  for w in %[2]s; do
    case " $* " in *" $w "*) ;; *) match= ;; esac
  done
fi
if [ -n "$match" ] && rm %[3]q 2>/dev/null; then
  %[4]secho $$ > %[5]q.tmp && mv %[5]q.tmp %[5]q
  exec sleep 3600
fi
exec %[6]q "$@"
`, tool, strings.Join(quoted, " "), h.armed, runReal, h.marker, real)
	require.NoError(t, os.WriteFile(filepath.Join(dir, tool), []byte(script), 0o755))
	require.NoError(t, os.WriteFile(h.armed, nil, 0o644))
	for i, kv := range e.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			e.Env[i] = "PATH=" + dir + string(os.PathListSeparator) + v
		}
	}
	// A held call that nothing interrupted (a failed test) must not outlive it.
	t.Cleanup(func() {
		if data, err := os.ReadFile(h.marker); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return h
}

// reached reports whether the held call was reached.
func (h *hold) reached() bool {
	_, err := os.Stat(h.marker)
	return err == nil
}

// interruptAt runs the target args in dir, waits until it reaches h's phase,
// sends it SIGINT (Ctrl-C) and returns what it printed and how it ended. A
// target that ends before the phase fails the test.
func (e *env) interruptAt(t *testing.T, h *hold, dir string, args ...string) result {
	t.Helper()
	return e.interruptWhen(t, dir, h.what, func(string) bool {
		if !h.reached() {
			return false
		}
		if h.inPhase != nil {
			h.inPhase()
		}
		return true
	}, args...)
}

// interruptWhen runs the target args in dir and sends it SIGINT once
// reached(stdout so far) holds; a target that ends first fails the test.
func (e *env) interruptWhen(t *testing.T, dir, what string, reached func(stdout string) bool, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "sbx"), args...)
	cmd.Dir, cmd.Env = dir, e.Env
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(phaseWait)
	for !reached(out.String()) {
		select {
		case err := <-done:
			r, _ := resultOf(err, out.String(), errb.String())
			t.Fatalf("%v ended before %s:\n%s", args, what, r)
		case <-limit:
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%v did not reach %s within %s:\n%s\n%s", args, what, phaseWait, out.String(), errb.String())
		case <-tick.C:
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	var err error
	select {
	case err = <-done:
	case <-time.After(phaseWait):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not end within %s of the interrupt", args, phaseWait)
	}
	r, rerr := resultOf(err, out.String(), errb.String())
	require.NoError(t, rerr)
	t.Logf("$ sbx %s, interrupted %s\n%s", strings.Join(args, " "), what, r)
	return r
}

// instanceRecords is the folder where the suite keeps an instance's
// teardown copy and meta.json.
func (e *env) instanceRecords(id string) string {
	return filepath.Join(e.Home, ".ktrdr", "sandbox", "instances", id)
}
