package merge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
)

// journal records what Apply changes, so that a merge that fails after it
// started writing can be undone completely: files get their old content
// back (or are removed if Apply created them), the rollback tag Apply
// created is deleted, and so is the state folder if Apply created it. It
// only ever removes what this Apply created.
type journal struct {
	files   []written
	tag     string // created by this Apply
	created string // the state folder, if this Apply created it
}

type written struct {
	path    string
	existed bool
	old     []byte
	mode    fs.FileMode
}

// write writes data to path atomically, remembering what was there.
func (j *journal) write(path string, data []byte, perm fs.FileMode) error {
	w := written{path: path}
	switch old, err := os.ReadFile(path); {
	case err == nil:
		w.existed, w.old, w.mode = true, old, fileMode(path, perm)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read %s before replacing it: %w", path, err)
	}
	if err := writeFileAtomic(path, data, perm); err != nil {
		return err
	}
	j.files = append(j.files, w)
	return nil
}

// undo reverts everything recorded, newest first, and says what it did.
func (j *journal) undo(ctx context.Context, o Options) (string, error) {
	var errs []error
	for _, w := range slices.Backward(j.files) {
		if w.existed {
			errs = append(errs, writeFileAtomic(w.path, w.old, w.mode))
		} else if err := os.Remove(w.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", w.path, err))
		}
	}
	if j.created != "" {
		if err := os.Remove(j.created); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove the state folder %s: %w", j.created, err))
		}
	}
	if j.tag != "" {
		if _, err := git(context.WithoutCancel(ctx), o, "tag", "-d", j.tag); err != nil {
			errs = append(errs, fmt.Errorf("delete tag %s: %w", j.tag, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("undo the merge: %w", err)
	}
	return fmt.Sprintf("undone: %s restored byte for byte, tag %s deleted, no merge state kept", o.Profile.MainCompose, j.tag), nil
}
