package merge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Applied is what Apply did.
type Applied struct {
	File   string // the merged compose file
	Source string // where its content came from
	Tag    string // the rollback point
	Backup string // the pre-merge file, byte for byte
	State  string // state.json
	Report Report // the checklist run on the merged file
}

// Apply merges the sandbox parameters into the main compose file. Before
// changing anything it tags HEAD as the rollback point and backs the current
// file up into .ktrdr-merge/ with its SHA-256; it refuses while an earlier
// merge is in place. Then it writes the merged file atomically (Options.From,
// by default docker-compose.sandbox.yml, under a header saying it is the
// merged file) and runs Verify. If an item fails it rolls back by itself and
// returns a *VerifyError naming the failed items.
func Apply(ctx context.Context, opts Options) (Applied, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Applied{}, err
	}
	if o.From == "" {
		o.From = o.sandboxPath()
	}
	res := Applied{File: o.mainPath(), Source: o.From, Backup: o.backupPath(), State: o.statePath()}

	st, err := readState(o)
	if err != nil {
		return res, err
	}
	if st != nil && st.RolledBackAt == "" {
		return res, fmt.Errorf("%w (tag %s, %s): roll it back first with `go tool mage merge:rollback` (or scripts/sandbox-rollback.sh)",
			ErrMergeApplied, st.Tag, o.rel(o.statePath()))
	}
	src, err := os.ReadFile(o.From)
	if err != nil {
		return res, fmt.Errorf("read the merge source: %w", err)
	}
	cur, err := os.ReadFile(o.mainPath())
	if err != nil {
		return res, fmt.Errorf("read the pre-merge file: %w", err)
	}
	if err := headHolds(ctx, o, cur); err != nil {
		return res, err
	}

	tag, err := createRollbackTag(ctx, o)
	if err != nil {
		return res, err
	}
	res.Tag = tag
	now := o.Now().UTC()
	if err := os.MkdirAll(o.stateDir(), 0o755); err != nil {
		return res, fmt.Errorf("create %s: %w", o.stateDir(), err)
	}
	if err := writeFileAtomic(filepath.Join(o.stateDir(), ".gitignore"), []byte("*\n"), 0o644); err != nil {
		return res, err
	}
	if err := writeFileAtomic(o.backupPath(), cur, fileMode(o.mainPath(), 0o644)); err != nil {
		return res, fmt.Errorf("back up %s: %w", o.Profile.MainCompose, err)
	}
	merged := append([]byte(header(o, tag, now)), src...)
	st = &State{
		Version:      1,
		Tag:          tag,
		SHA256:       sum(cur),
		CreatedAt:    now.Format(time.RFC3339),
		Source:       o.rel(o.From),
		MergedSHA256: sum(merged),
	}
	if err := writeState(o, st); err != nil {
		return res, fmt.Errorf("record the merge state: %w", err)
	}

	if err := writeFileAtomic(o.mainPath(), merged, fileMode(o.mainPath(), 0o644)); err != nil {
		return res, rollbackAfter(ctx, o, fmt.Errorf("write the merged file: %w", err))
	}
	rep, err := Verify(ctx, o)
	res.Report = rep
	if err != nil {
		return res, rollbackAfter(ctx, o, fmt.Errorf("verify the merged file: %w", err))
	}
	if !rep.OK() {
		rb, rerr := Rollback(context.WithoutCancel(ctx), o)
		if rerr != nil {
			return res, fmt.Errorf("%w; and the rollback failed: %w", &VerifyError{Failed: rep.Failed(), RolledBack: "rollback failed"}, rerr)
		}
		return res, &VerifyError{Failed: rep.Failed(), RolledBack: "rolled back: " + rb.Message}
	}
	return res, nil
}

// rollbackAfter rolls back after cause and returns an error naming both.
func rollbackAfter(ctx context.Context, o Options, cause error) error {
	rb, err := Rollback(context.WithoutCancel(ctx), o)
	if err != nil {
		return errors.Join(cause, fmt.Errorf("and the rollback failed: %w", err))
	}
	return fmt.Errorf("%w (rolled back: %s)", cause, rb.Message)
}

func header(o Options, tag string, now time.Time) string {
	return fmt.Sprintf(`# %s: the main ktrdr stack, merged with the sandbox parameters.
# Written by merge:apply from %s at %s. With no variables it is the
# standard stack; check with `+"`go tool mage merge:verify`"+`.
# Rollback point: git tag %s. Restore the pre-merge file with
# scripts/sandbox-rollback.sh (or `+"`go tool mage merge:rollback`"+`).

`, o.Profile.MainCompose, o.rel(o.From), now.Format(time.RFC3339), tag)
}
