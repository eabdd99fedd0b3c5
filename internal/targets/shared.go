package targets

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/ktrdr/sandboxkit/internal/text"

	"github.com/ktrdr/sandboxkit/sandbox/shared"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// InitShared creates the shared folders ~/.ktrdr/shared/{data,models,strategies} and, with -from, copies a backup into them (existing files are never deleted; files that differ are refused unless -merge).
func (Sandbox) InitShared(ctx context.Context,
	from *string, // backup folder holding data/, models/, strategies/ (or one of them)
	minimal *bool, // create the empty folders only
	merge *bool, // overwrite existing files that differ from the backup
) (err error) {
	defer exitAs(tInitShared, &err)
	home, err := os.UserHomeDir()
	if err != nil {
		return &homeError{err}
	}
	opts := sandbox.KTRDR().SharedOptions(home)
	if from != nil {
		opts.From = *from
	}
	opts.Minimal = minimal != nil && *minimal
	opts.Merge = merge != nil && *merge
	if opts.From != "" {
		opts.Progress = sharedProgressPrinter()
	}
	rep, err := shared.Init(ctx, opts)
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "shared folders in %s:\n", rep.Root)
	for _, f := range rep.Folders {
		fmt.Fprintf(stdout, "  %-12s %7d %-5s %10s\n", f.Name, f.Files, text.Plural(f.Files, "file", "files"), sharedSize(f.Bytes))
	}
	if rep.From != "" {
		fmt.Fprintf(stdout, "from %s: %d new, %d overwritten (%s written), %d identical left alone\n",
			rep.From, len(rep.Copied), len(rep.Overwritten), sharedSize(rep.CopiedBytes), len(rep.Skipped))
		for _, p := range rep.Overwritten {
			fmt.Fprintf(stdout, "  overwrote %s\n", p)
		}
		for _, p := range rep.Ignored {
			fmt.Fprintf(stdout, "  not copied: %s\n", p)
		}
	}
	// Sandboxes made before the shared folders existed keep their own ./data.
	if m, err := sandbox.LoadManager(home); err == nil {
		if ids, err := m.OwnDataSandboxes(); err == nil && len(ids) > 0 {
			fmt.Fprintf(stdout, "note: %d sandbox(es) created before these folders existed still mount their own ./data, ./models, ./strategies: %s\n", len(ids), strings.Join(ids, ", "))
			fmt.Fprintln(stdout, "  to share, destroy and create them again (their .env.sandbox is written at create time)")
		}
	}
	return nil
}

// URL prints the ktrdr API URL commands run here use: -url, else -port, else KTRDR_API_PORT from the nearest .env.sandbox, else http://localhost:8000.
func (Sandbox) URL(
	url *string, // explicit URL; printed as is
	port *int, // explicit port on localhost
	json *bool, // print {"url": …} for scripts
) (err error) {
	defer exitAs(tURL, &err)
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("find the current folder: %w", err)
	}
	var u string
	var p int
	if url != nil {
		u = *url
	}
	if port != nil {
		p = *port
	}
	resolved, err := sandbox.ResolveAPIURL(u, p, cwd)
	if err != nil {
		return err
	}
	if deref(json) {
		return printJSON(urlDoc{resolved})
	}
	fmt.Fprintln(stdout, resolved)
	return nil
}

// urlDoc is what sandbox:url -json prints.
type urlDoc struct {
	URL string `json:"url"`
}

// sharedProgressPrinter reports copy progress on stderr: one updating line on
// a terminal, otherwise a line every 10%.
func sharedProgressPrinter() func(copied, total int64, files int) {
	terminal := false
	if f, ok := stderr.(*os.File); ok {
		fi, err := f.Stat()
		terminal = err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	lastTenth := -1
	return func(copied, total int64, files int) {
		if total <= 0 {
			return
		}
		pct := int(copied * 100 / total)
		line := fmt.Sprintf("copying: %s of %s (%d%%), %d %s", sharedSize(copied), sharedSize(total), pct,
			files, text.Plural(files, "file", "files"))
		if terminal {
			end := ""
			if copied >= total {
				end = "\n"
			}
			fmt.Fprintf(stderr, "\r%-70s%s", line, end)
			return
		}
		if tenth := pct / 10; tenth > lastTenth {
			lastTenth = tenth
			fmt.Fprintln(stderr, line)
		}
	}
}

// sharedSize formats a byte count for people: 532 B, 4.2 MB, 1.3 GB.
func sharedSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/float64(div)), ".0") + " " + string("KMGTPE"[exp]) + "B"
}
