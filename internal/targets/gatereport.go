package targets

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/gate"

	"github.com/fatih/color"

	"github.com/ktrdr/sandboxkit/sandbox"
)

var gateSpinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// newGateProgress returns a Gate.Progress function writing to w, and a stop
// function to call once Run has returned. On a terminal (tty) it keeps a live
// block, one line per check, redrawn in place with a spinner; otherwise it
// prints a plain line only when a check passes or, at the end, fails.
// Colour follows tty, NO_COLOR and TERM=dumb.
func newGateProgress(w io.Writer, tty bool) (update func(gate.State), stop func()) {
	useColor := tty && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	paint := func(a ...color.Attribute) *color.Color {
		c := color.New(a...)
		if useColor {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
		return c
	}
	p := &gateProgress{w: w, green: paint(color.FgGreen), red: paint(color.FgRed), faint: paint(color.Faint), cyan: paint(color.FgCyan)}
	if !tty {
		p.printed = map[int]bool{}
		return p.plain, func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				p.mu.Lock()
				p.frame++
				if p.have && !p.last.Done {
					p.redraw()
				}
				p.mu.Unlock()
			}
		}
	}()
	var once sync.Once
	update = func(s gate.State) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.last, p.have = s, true
		p.redraw()
	}
	stop = func() {
		once.Do(func() {
			close(quit)
			<-done
		})
	}
	return update, stop
}

type gateProgress struct {
	w                       io.Writer
	green, red, faint, cyan *color.Color
	mu                      sync.Mutex
	last                    gate.State
	have                    bool
	frame, drawn            int
	printed                 map[int]bool // plain mode: lines already printed, by check
}

func (p *gateProgress) redraw() {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, c := range p.last.Checks {
		b.WriteString("\r\x1b[2K  ")
		switch {
		case c.Passed:
			fmt.Fprintf(&b, "%s %s %s", p.green.Sprint("✓"), c.Name, p.faint.Sprintf("(%s)", gateSeconds(c.ReadyAfter)))
		case p.last.Done && p.last.Interrupted:
			fmt.Fprintf(&b, "%s %s %s", p.faint.Sprint("–"), c.Name, p.faint.Sprint("(interrupted)"))
		case p.last.Done:
			fmt.Fprintf(&b, "%s %s", p.red.Sprint("✗"), c.Name)
			if c.LastError != "" {
				b.WriteString(p.faint.Sprint(" — " + gateTruncate(c.LastError, 100)))
			}
		default:
			fmt.Fprintf(&b, "%s %s", p.cyan.Sprint(gateSpinner[p.frame%len(gateSpinner)]), c.Name)
			if c.LastError != "" {
				b.WriteString(p.faint.Sprint(" — " + gateTruncate(c.LastError, 60)))
			}
		}
		b.WriteString("\n")
	}
	p.drawn = len(p.last.Checks)
	io.WriteString(p.w, b.String())
}

func (p *gateProgress) plain(s gate.State) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range s.Checks {
		switch {
		case p.printed[i]:
		case c.Passed:
			p.printed[i] = true
			fmt.Fprintf(p.w, "✓ %s (%s)\n", c.Name, gateSeconds(c.ReadyAfter))
		case s.Done && s.Interrupted:
			p.printed[i] = true
			fmt.Fprintf(p.w, "– %s (interrupted)\n", c.Name)
		case s.Done:
			p.printed[i] = true
			if c.LastError != "" {
				fmt.Fprintf(p.w, "✗ %s: %s\n", c.Name, c.LastError)
			} else {
				fmt.Fprintf(p.w, "✗ %s\n", c.Name)
			}
		}
	}
}

// writeGateReport writes the gate's verdict: on success the service URLs, on
// failure the reason and, for each failing check, its service, last error and
// the last sandbox.GateLogLines lines of that service's logs (logs is keyed by service).
func writeGateReport(w io.Writer, res gate.Result, urls []sandbox.NamedURL, logs map[string]string) {
	if res.Passed {
		fmt.Fprintf(w, "Startability Gate: PASSED (%s)\n", gateSeconds(res.Elapsed))
		width := 0
		for _, u := range urls {
			width = max(width, len([]rune(u.Label)))
		}
		if len(urls) > 0 {
			fmt.Fprintln(w)
		}
		for _, u := range urls {
			fmt.Fprintf(w, "  %-*s  %s\n", width, u.Label, u.URL)
		}
		return
	}
	switch {
	case res.Aborted != "":
		fmt.Fprintf(w, "Startability Gate: FAILED after %s: %s\n", gateSeconds(res.Elapsed), res.Aborted)
	case res.TimedOut:
		fmt.Fprintf(w, "Startability Gate: FAILED: timed out after %s\n", gateSeconds(res.Elapsed))
	default:
		fmt.Fprintf(w, "Startability Gate: FAILED after %s\n", gateSeconds(res.Elapsed))
	}
	shown := map[string]bool{}
	writeLogs := func(service string) {
		if shown[service] {
			fmt.Fprintf(w, "  (logs of %s shown above)\n", service)
			return
		}
		shown[service] = true
		writeLogTail(w, "  ", service, logs[service])
	}
	if s := res.AbortedService; s != "" {
		fmt.Fprintf(w, "\n✗ service %s\n", s)
		writeLogs(s)
	}
	for _, c := range res.Checks {
		if c.Passed {
			continue
		}
		fmt.Fprintf(w, "\n✗ %s (service %s, %d attempts)\n", c.Name, c.Service, c.Attempts)
		if c.LastError != "" {
			// A hook's error carries its output's last lines: indented under it.
			fmt.Fprintf(w, "  last error: %s\n", strings.ReplaceAll(c.LastError, "\n", "\n    "))
		} else {
			fmt.Fprintf(w, "  no attempt finished\n")
		}
		writeLogs(c.Service)
	}
}

// gateLastLines returns the last n non-trailing lines of s.
func gateLastLines(s string, n int) []string {
	s = strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func gateSeconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

func gateTruncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// writeLogTails prints the log tails up gathered when the stack did not
// start (the dependency that failed), by service.
func writeLogTails(w io.Writer, logs map[string]string) {
	for _, service := range slices.Sorted(maps.Keys(logs)) {
		writeLogTail(w, "", service, logs[service])
	}
}

// writeLogTail prints the last sandbox.GateLogLines lines of one service's
// logs, indented.
func writeLogTail(w io.Writer, indent, service, logs string) {
	lines := gateLastLines(logs, sandbox.GateLogLines)
	if len(lines) == 0 {
		fmt.Fprintf(w, "%sno logs from %s\n", indent, service)
		return
	}
	fmt.Fprintf(w, "%slast %d log lines of %s:\n", indent, len(lines), service)
	for _, l := range lines {
		fmt.Fprintf(w, "%s  %s\n", indent, l)
	}
}
