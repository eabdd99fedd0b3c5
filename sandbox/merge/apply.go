package merge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// Applied is what Apply did.
type Applied struct {
	File   string // the merged compose file (the link's target if it is a link)
	Source string // where its content came from
	Tag    string // the rollback point
	Backup string // the pre-merge file, byte for byte
	State  string // state.json
	Report Report // the checklist run on the merged file
}

// NothingWritten is VerifyError.Outcome when Apply refused before writing.
const NothingWritten = "nothing was written: no tag, no backup, no merge state"

// Apply merges the sandbox parameters into the main compose file. It builds
// the merged file (a header saying what it is, then Options.From, by
// default docker-compose.sandbox.yml) and runs the checklist on it against
// the current file before it changes anything: if an item fails it returns
// a *VerifyError and leaves everything as it was. It refuses while an
// earlier merge is in place, and if the current file is not committed at
// HEAD. Only then does it back the current file up with its SHA-256,
// record the merge state (with what Options.Accept accepted and the
// rollback tag), tag HEAD as the rollback point and write the merged file
// atomically. With Options.Live it then
// runs the live check; if that fails it undoes all of it.
func Apply(ctx context.Context, opts Options) (Applied, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Applied{}, err
	}
	if o.From == "" {
		o.From = o.sandboxPath()
	}
	res := Applied{File: o.mainPath(), Source: o.From}
	mf, err := locateMain(o)
	if err != nil {
		return res, err
	}
	res.File = mf.Path
	s, err := locateStore(ctx, o)
	if err != nil {
		return res, err
	}
	res.Backup, res.State = s.backupPath(), s.statePath()
	if err := notMerged(o, s); err != nil {
		return res, err
	}
	src, err := os.ReadFile(o.From)
	if err != nil {
		return res, fmt.Errorf("read the merge source: %w", err)
	}
	cur, err := os.ReadFile(mf.Path)
	if err != nil {
		return res, fmt.Errorf("read the pre-merge file: %w", err)
	}
	if err := headHolds(ctx, o, mf, cur); err != nil {
		return res, err
	}
	tag, err := freeTagName(ctx, o)
	if err != nil {
		return res, err
	}
	now := o.Now().UTC()
	merged := append([]byte(header(o, tag, now)), src...)

	res.Report = checklist(ctx, o, subject{
		merged: merged, pre: cur, preFrom: "the file it replaces",
		source: src, sourceName: o.rel(o.From),
	})
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if !res.Report.OK() {
		return res, &VerifyError{Failed: res.Report.Failed(), Outcome: NothingWritten}
	}

	unlock, err := s.lock(ctx)
	if err != nil {
		return res, err
	}
	defer unlock()
	// Under the lock: nobody merged or changed the file since the check.
	if err := notMerged(o, s); err != nil {
		return res, err
	}
	if again, err := os.ReadFile(mf.Path); err != nil || !bytes.Equal(again, cur) {
		return res, fmt.Errorf("%s changed while the merge was being checked: run merge:apply again", mf.Path)
	}
	j := &journal{}
	var accepted []string
	for _, d := range res.Report.Differences {
		if d.Accepted {
			accepted = append(accepted, d.String())
		}
	}
	if err := write(ctx, o, s, j, mf, tag, now, cur, merged, accepted); err != nil {
		msg, uerr := j.undo(ctx, o)
		if uerr != nil {
			return res, errors.Join(err, uerr)
		}
		return res, fmt.Errorf("%w (%s)", err, msg)
	}
	res.Tag = tag

	if o.Live != nil {
		if lerr := o.Live(ctx); lerr != nil {
			live := Item{Name: ItemLive, Reason: lerr.Error()}
			res.Report.Items = append(res.Report.Items, live)
			msg, uerr := j.undo(ctx, o)
			if uerr != nil {
				return res, errors.Join(&VerifyError{Failed: []Item{live}, Outcome: "undoing the merge failed"}, uerr)
			}
			res.Tag = ""
			return res, &VerifyError{Failed: []Item{live}, Outcome: msg}
		}
		res.Report.Items = append(res.Report.Items, Item{Name: ItemLive, OK: true})
	}
	return res, nil
}

// notMerged refuses while a merge is in place (under HOME, or in the
// checkout's .ktrdr-merge from an older version).
func notMerged(o Options, s store) error {
	st, err := readState(s)
	if err != nil {
		return err
	}
	if st.active() {
		return fmt.Errorf("%w (tag %s, state %s)", ErrMergeApplied, st.Tag, o.rel(st.Path))
	}
	return nil
}

// write does the changes of a merge, recording each in j: the backup, the
// state (which names the tag), the tag, the merged file. In that order a
// run killed half-way leaves no tag that no state names: rollback (from
// the backup) and the next apply's "already applied" check see it.
func write(ctx context.Context, o Options, s store, j *journal, mf mainFile, tag string, now time.Time, cur, merged []byte, accepted []string) error {
	if _, err := os.Lstat(s.Dir); err != nil {
		j.created = s.Dir
	}
	if err := s.prepare(); err != nil {
		return err
	}
	mode := fileMode(mf.Path, 0o644)
	if err := j.write(s.backupPath(), cur, 0o600); err != nil {
		return fmt.Errorf("back up %s: %w", o.Profile.MainCompose, err)
	}
	st := &State{
		Version:      StateVersion,
		Tag:          tag,
		SHA256:       sum(cur),
		CreatedAt:    sandbox.FormatTime(now),
		Source:       o.rel(o.From),
		MergedSHA256: sum(merged),
		Checkout:     o.Dir,
		File:         mf.Rel,
		Accept:       o.Accept,
		Accepted:     accepted,
	}
	b, err := encodeState(st)
	if err != nil {
		return err
	}
	if err := j.write(s.statePath(), b, 0o600); err != nil {
		return fmt.Errorf("record the merge state: %w", err)
	}
	if err := createTag(ctx, o, tag); err != nil {
		return err
	}
	j.tag = tag
	if err := j.write(mf.Path, merged, mode); err != nil {
		return fmt.Errorf("write the merged file: %w", err)
	}
	return nil
}

func header(o Options, tag string, now time.Time) string {
	return fmt.Sprintf(`# %s: the main ktrdr stack, merged with the sandbox parameters.
# Written by merge:apply from %s at %s. With no variables it is the
# standard stack; check with `+"`go tool mage merge:verify`"+`.
# Rollback point: git tag %s. Restore the pre-merge file with
# scripts/sandbox-rollback.sh (or `+"`go tool mage merge:rollback`"+`).

`, o.Profile.MainCompose, o.rel(o.From), sandbox.FormatTime(now), tag)
}
