package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// InitShared creates the shared folders ~/.ktrdr/shared/{data,models,strategies} and, with -from, copies a backup into them (existing files are never deleted; files that differ are refused unless -merge).
func (Sandbox) InitShared(ctx context.Context,
	from *string, // backup folder holding data/, models/, strategies/ (or one of them)
	minimal *bool, // create the empty folders only
	merge *bool, // overwrite existing files that differ from the backup
) error {
	home, err := os.UserHomeDir()
	if err != nil {
		return fail(1, fmt.Errorf("find the home folder: %w", err), "set HOME")
	}
	opts := sandbox.SharedOptions{Home: home}
	if from != nil {
		opts.From = *from
	}
	opts.Minimal = minimal != nil && *minimal
	opts.Merge = merge != nil && *merge
	if opts.From != "" {
		opts.Progress = sharedProgressPrinter()
	}
	rep, err := sandbox.InitShared(ctx, opts)
	if err != nil {
		var ce *sandbox.SharedConflictError
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return fail(1, err, "interrupted: what this run had copied or created was removed again and replaced files were put back; run it again to copy")
		case errors.As(err, &ce) && len(ce.Clashes) > 0:
			return fail(1, err, "move the clashing paths out of "+ce.Root+", then run it again")
		case errors.As(err, &ce):
			return fail(1, err, "run it again with -merge to overwrite them with the backup's version")
		}
		if errors.Is(err, fs.ErrNotExist) {
			return fail(1, err, "check the -from path")
		}
		return fail(1, err, "nothing was left half done: what this run had copied or created was removed again; fix the cause above and run it again")
	}

	fmt.Printf("shared folders in %s:\n", rep.Root)
	for _, f := range rep.Folders {
		fmt.Printf("  %-12s %7d %-5s %10s\n", f.Name, f.Files, sharedPlural(f.Files, "file", "files"), sharedSize(f.Bytes))
	}
	if rep.From != "" {
		fmt.Printf("from %s: %d new, %d overwritten (%s written), %d identical left alone\n",
			rep.From, len(rep.Copied), len(rep.Overwritten), sharedSize(rep.CopiedBytes), len(rep.Skipped))
		for _, p := range rep.Overwritten {
			fmt.Printf("  overwrote %s\n", p)
		}
		for _, p := range rep.Ignored {
			fmt.Printf("  not copied: %s\n", p)
		}
	}
	// Sandboxes made before the shared folders existed keep their own ./data.
	if m, err := sandbox.LoadManager(home, io.Discard); err == nil {
		if ids, err := m.OwnDataSandboxes(); err == nil && len(ids) > 0 {
			fmt.Printf("note: %d sandbox(es) created before these folders existed still mount their own ./data, ./models, ./strategies: %s\n", len(ids), strings.Join(ids, ", "))
			fmt.Println("  to share, destroy and create them again (their .env.sandbox is written at create time)")
		}
	}
	return nil
}

// URL prints the ktrdr API URL commands run here use: -url, else -port, else KTRDR_API_PORT from the nearest .env.sandbox, else http://localhost:8000.
func (Sandbox) URL(
	url *string, // explicit URL; printed as is
	port *int, // explicit port on localhost
) error {
	cwd, err := os.Getwd()
	if err != nil {
		return fail(1, fmt.Errorf("find the current folder: %w", err), "")
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
		var ef *sandbox.EnvFileError
		switch {
		case errors.Is(err, sandbox.ErrEnvSymlink):
			return fail(1, err, "a sandbox's .env.sandbox is written by sandbox:create and sandbox:init, never linked: remove the symlink (or pass -port=N)")
		case errors.As(err, &ef) && ef.Key != "":
			return fail(1, err, "the tool writes "+ef.Key+" as plain decimal digits (e.g. 8001, no sign, no leading zero): fix it in "+ef.Path+", or pass -port=N")
		}
		return fail(1, err, "")
	}
	fmt.Println(resolved)
	return nil
}

// sharedProgressPrinter reports copy progress on stderr: one updating line on
// a terminal, otherwise a line every 10%.
func sharedProgressPrinter() func(copied, total int64, files int) {
	fi, err := os.Stderr.Stat()
	terminal := err == nil && fi.Mode()&os.ModeCharDevice != 0
	lastTenth := -1
	return func(copied, total int64, files int) {
		if total <= 0 {
			return
		}
		pct := int(copied * 100 / total)
		line := fmt.Sprintf("copying: %s of %s (%d%%), %d %s", sharedSize(copied), sharedSize(total), pct,
			files, sharedPlural(files, "file", "files"))
		if terminal {
			end := ""
			if copied >= total {
				end = "\n"
			}
			fmt.Fprintf(os.Stderr, "\r%-70s%s", line, end)
			return
		}
		if tenth := pct / 10; tenth > lastTenth {
			lastTenth = tenth
			fmt.Fprintln(os.Stderr, line)
		}
	}
}

func sharedPlural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
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
