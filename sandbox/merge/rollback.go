package merge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
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
	File    string // the restored compose file
	Tag     string // the rollback tag (kept)
	SHA256  string // of the pre-merge file, which the file now has
	Message string // one line saying what happened
	Kept    string // where edits made after the merge were saved, if there were any
}

// Rollback restores the pre-merge docker-compose.yml: from the backup in
// .ktrdr-merge/, or, if that is gone or damaged, from the rollback tag via
// git. It checks that the result is byte-identical to the pre-merge file by
// SHA-256 and records the rollback in state.json. It runs no compose and no
// docker, deletes nothing, keeps the tag, and is harmless to run twice.
// Without a merge state it does nothing and says so.
func Rollback(ctx context.Context, opts Options) (Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Result{}, err
	}
	res := Result{File: o.mainPath()}
	st, err := readState(o)
	if err != nil {
		return res, err
	}
	if st == nil {
		res.Action = NothingToDo
		res.Message = fmt.Sprintf("no merge state in %s/: merge:apply never ran in this checkout; %s left as it is, nothing to do",
			StateDir, o.Profile.MainCompose)
		return res, nil
	}
	res.Tag, res.SHA256 = st.Tag, st.SHA256
	kept := ""
	if st.Tag != "" {
		kept = "; tag " + st.Tag + " kept"
	}

	cur, err := os.ReadFile(o.mainPath())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("read %s: %w", o.mainPath(), err)
	}
	if err == nil && sum(cur) == st.SHA256 {
		res.Action = NothingToDo
		res.Message = fmt.Sprintf("%s is already the pre-merge file (sha256 %.12s): nothing to do%s", o.Profile.MainCompose, st.SHA256, kept)
		return res, markRolledBack(o, st)
	}

	// Edits made to the merged file since Apply are not thrown away: they are
	// saved beside the backup before the pre-merge file replaces them.
	if err == nil && st.MergedSHA256 != "" && sum(cur) != st.MergedSHA256 {
		keep := filepath.Join(o.stateDir(), o.Profile.MainCompose+".post-merge-"+o.Now().UTC().Format("20060102T150405Z"))
		if err := writeFileAtomic(keep, cur, 0o644); err != nil {
			return res, fmt.Errorf("save the edits made to %s since the merge: %w", o.Profile.MainCompose, err)
		}
		res.Kept = keep
	}

	mode := fileMode(o.mainPath(), 0o644)
	from := ""
	var problems []error
	if b, err := os.ReadFile(o.backupPath()); err == nil && sum(b) == st.SHA256 {
		if err := restore(o, b, st.SHA256, mode); err != nil {
			return res, err
		}
		res.Action, from = RestoredFromBackup, "the backup "+o.rel(o.backupPath())
	} else {
		switch {
		case err == nil:
			problems = append(problems, fmt.Errorf("backup %s has sha256 %.12s, want %.12s: not used", o.rel(o.backupPath()), sum(b), st.SHA256))
		case errors.Is(err, fs.ErrNotExist):
			problems = append(problems, fmt.Errorf("backup %s is gone", o.rel(o.backupPath())))
		default:
			problems = append(problems, fmt.Errorf("read backup: %w", err))
		}
		if st.Tag == "" {
			return res, fmt.Errorf("cannot roll back %s: %w; and the merge state names no tag", o.Profile.MainCompose, errors.Join(problems...))
		}
		b, err := gitShow(ctx, o, st.Tag)
		if err != nil {
			return res, fmt.Errorf("cannot roll back %s: %w; and reading it from tag %s failed: %w", o.Profile.MainCompose, errors.Join(problems...), st.Tag, err)
		}
		if got := sum(b); got != st.SHA256 {
			return res, fmt.Errorf("cannot roll back %s: %w; and tag %s holds sha256 %.12s, want %.12s", o.Profile.MainCompose, errors.Join(problems...), st.Tag, got, st.SHA256)
		}
		if err := restore(o, b, st.SHA256, mode); err != nil {
			return res, err
		}
		res.Action, from = RestoredFromTag, "tag "+st.Tag
	}
	res.Message = fmt.Sprintf("restored %s from %s (sha256 %.12s, byte-identical to the pre-merge file)%s",
		o.Profile.MainCompose, from, st.SHA256, kept)
	if res.Kept != "" {
		res.Message += fmt.Sprintf("; your edits since the merge are saved in %s", o.rel(res.Kept))
	}
	return res, markRolledBack(o, st)
}

// restore writes b over the main compose file and checks it by SHA-256.
func restore(o Options, b []byte, want string, mode fs.FileMode) error {
	if err := writeFileAtomic(o.mainPath(), b, mode); err != nil {
		return fmt.Errorf("restore %s: %w", o.Profile.MainCompose, err)
	}
	got, err := os.ReadFile(o.mainPath())
	if err != nil {
		return fmt.Errorf("check restored %s: %w", o.Profile.MainCompose, err)
	}
	if s := sum(got); s != want {
		return fmt.Errorf("restored %s has sha256 %.12s, want %.12s", o.Profile.MainCompose, s, want)
	}
	return nil
}

func markRolledBack(o Options, st *State) error {
	if st.RolledBackAt != "" {
		return nil
	}
	st.RolledBackAt = o.Now().UTC().Format(time.RFC3339)
	if err := writeState(o, st); err != nil {
		return fmt.Errorf("record the rollback in %s: %w", o.rel(o.statePath()), err)
	}
	return nil
}
