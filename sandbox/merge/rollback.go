package merge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// Action says what Rollback did.
type Action string

// The outcomes of Rollback.
const (
	RestoredFromBackup Action = "restored from backup"
	RestoredFromTag    Action = "restored from tag"
	NothingToDo        Action = "nothing to do"
)

// Result is what Rollback did, for a person and for tests.
type Result struct {
	Action  Action
	File    string // the restored compose file (the link's target if the main file is a link)
	Rel     string // File relative to the checkout root, as git names it at the tag; "" until known
	Tag     string // the rollback tag (kept)
	SHA256  string // of the pre-merge file, which the file now has
	Message string // one line saying what happened
	Kept    string // where edits made after the merge were saved, if there were any
}

// Rollback restores the pre-merge main compose file of the merge in place:
// from the backup, or, if that is gone or damaged, from the rollback tag via
// git. It checks that the result is byte-identical to the pre-merge file by
// SHA-256, saves edits made to the merged file since the merge beside the
// state, records the rollback in the merge state and removes the backup,
// which it no longer needs. It keeps the tag and the state, runs no compose
// and no docker, and does nothing the second time (nor without a merge in
// place).
func Rollback(ctx context.Context, opts Options) (Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Result{}, err
	}
	res := Result{File: o.mainPath()}
	s, err := locateStore(ctx, o)
	if err != nil {
		return res, err
	}
	st, err := readState(s)
	if err != nil || st == nil {
		res.Action = NothingToDo
		res.Message = fmt.Sprintf("no merge state for this checkout: merge:apply never ran here (or ran before the checkout was moved); %s left as it is, nothing to do",
			o.Profile.MainCompose)
		return res, err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return res, err
	}
	defer unlock()
	if st, err = readState(s); err != nil {
		return res, err
	}
	res.Tag, res.SHA256 = st.Tag, st.SHA256
	kept := ""
	if st.Tag != "" {
		kept = "; tag " + st.Tag + " kept"
	}
	if !st.active() {
		res.Action = NothingToDo
		res.Message = fmt.Sprintf("the merge of %s (tag %s) was rolled back at %s; %s left as it is, nothing to do",
			st.CreatedAt, st.Tag, st.RolledBackAt, o.Profile.MainCompose)
		return res, nil
	}
	mf, err := locateMain(o)
	if err != nil {
		return res, err
	}
	if st.File != "" && st.File != mf.Rel {
		return res, fmt.Errorf("the merge wrote %s, but %s now leads to %s: refusing to guess which to restore", st.File, o.Profile.MainCompose, mf.Rel)
	}
	res.File, res.Rel = mf.Path, mf.Rel
	rel := mf.Rel
	name := o.Profile.MainCompose // what the messages call the restored file
	if mf.Link != "" {
		name = fmt.Sprintf("%s (the target of the link %s)", rel, o.Profile.MainCompose)
	}

	cur, err := os.ReadFile(mf.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("read %s: %w", mf.Path, err)
	}
	if err == nil && sum(cur) == st.SHA256 {
		res.Action = NothingToDo
		res.Message = fmt.Sprintf("%s is already the pre-merge file (sha256 %.12s): nothing to do%s", name, st.SHA256, kept)
		return res, finish(o, s, st)
	}

	// Edits made to the merged file since Apply are not thrown away: they are
	// saved beside the state before the pre-merge file replaces them.
	if err == nil && st.MergedSHA256 != "" && sum(cur) != st.MergedSHA256 {
		if err := s.prepare(); err != nil {
			return res, err
		}
		keep := filepath.Join(s.Dir, o.Profile.MainCompose+".post-merge-"+o.Now().UTC().Format("20060102T150405Z"))
		if err := writeFileAtomic(keep, cur, 0o600); err != nil {
			return res, fmt.Errorf("save the edits made to %s since the merge: %w", o.Profile.MainCompose, err)
		}
		res.Kept = keep
	}

	mode := fileMode(mf.Path, 0o644)
	from := ""
	var problems []error
	if b, err := os.ReadFile(st.Backup); err == nil && sum(b) == st.SHA256 {
		if err := restore(o, mf, b, st.SHA256, mode); err != nil {
			return res, err
		}
		res.Action, from = RestoredFromBackup, "the backup "+o.rel(st.Backup)
	} else {
		switch {
		case err == nil:
			problems = append(problems, fmt.Errorf("backup %s has sha256 %.12s, want %.12s: not used", o.rel(st.Backup), sum(b), st.SHA256))
		case errors.Is(err, fs.ErrNotExist):
			problems = append(problems, fmt.Errorf("backup %s is gone", o.rel(st.Backup)))
		default:
			problems = append(problems, fmt.Errorf("read backup: %w", err))
		}
		if st.Tag == "" {
			return res, fmt.Errorf("cannot roll back %s: %w; and the merge state names no tag", o.Profile.MainCompose, errors.Join(problems...))
		}
		b, err := gitShow(ctx, o, st.Tag, rel)
		if err != nil {
			return res, fmt.Errorf("cannot roll back %s: %w; and reading it from tag %s failed: %w", o.Profile.MainCompose, errors.Join(problems...), st.Tag, err)
		}
		if got := sum(b); got != st.SHA256 {
			return res, fmt.Errorf("cannot roll back %s: %w; and tag %s holds sha256 %.12s, want %.12s", o.Profile.MainCompose, errors.Join(problems...), st.Tag, got, st.SHA256)
		}
		if err := restore(o, mf, b, st.SHA256, mode); err != nil {
			return res, err
		}
		res.Action, from = RestoredFromTag, "tag "+st.Tag
	}
	res.Message = fmt.Sprintf("restored %s from %s (sha256 %.12s, byte-identical to the pre-merge file)%s",
		name, from, st.SHA256, kept)
	if res.Kept != "" {
		res.Message += fmt.Sprintf("; your edits since the merge are saved in %s", res.Kept)
	}
	return res, finish(o, s, st)
}

// restore writes b over the main compose file and checks it by SHA-256.
func restore(o Options, mf mainFile, b []byte, want string, mode fs.FileMode) error {
	if err := writeFileAtomic(mf.Path, b, mode); err != nil {
		return fmt.Errorf("restore %s: %w", o.Profile.MainCompose, err)
	}
	got, err := os.ReadFile(mf.Path)
	if err != nil {
		return fmt.Errorf("check restored %s: %w", o.Profile.MainCompose, err)
	}
	if s := sum(got); s != want {
		return fmt.Errorf("restored %s has sha256 %.12s, want %.12s", o.Profile.MainCompose, s, want)
	}
	return nil
}

// finish records the rollback in the state under HOME (also for a state an
// older version left in the checkout, which is never written) and removes
// the backup there, which the restored file makes redundant.
func finish(o Options, s store, st *loaded) error {
	st.RolledBackAt = sandbox.FormatTime(o.Now())
	if err := s.write(st.State); err != nil {
		return fmt.Errorf("record the rollback in %s: %w", s.statePath(), err)
	}
	if !st.Legacy {
		if err := os.Remove(st.Backup); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the backup %s, no longer needed: %w", st.Backup, err)
		}
	}
	return nil
}
