package merge

import (
	"context"
	"errors"
	"fmt"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// git runs `git -C dir args…` through the Runner seam.
func git(ctx context.Context, o Options, args ...string) ([]byte, error) {
	return o.Runner.Run(ctx, sandbox.Cmd{Name: "git", Args: append([]string{"-C", o.Dir}, args...)})
}

// gitShow returns the bytes of the main compose file at rev.
func gitShow(ctx context.Context, o Options, rev string) ([]byte, error) {
	return git(ctx, o, "show", rev+":./"+o.Profile.MainCompose)
}

// tagExists reports whether refs/tags/name exists.
func tagExists(ctx context.Context, o Options, name string) (bool, error) {
	_, err := git(ctx, o, "rev-parse", "-q", "--verify", "refs/tags/"+name)
	if err == nil {
		return true, nil
	}
	var ee *sandbox.ExitError
	if errors.As(err, &ee) && ee.Code == 1 {
		return false, nil
	}
	return false, err
}

// createRollbackTag tags HEAD as sandbox-merge/pre-<UTC time>, with a
// numeric suffix if that name is taken, and returns the tag.
func createRollbackTag(ctx context.Context, o Options) (string, error) {
	base := TagPrefix + o.Now().UTC().Format("20060102T150405Z")
	for i := 1; i <= 100; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		exists, err := tagExists(ctx, o, name)
		if err != nil {
			return "", fmt.Errorf("check tag %s: %w", name, err)
		}
		if exists {
			continue
		}
		if _, err := git(ctx, o, "tag", name, "HEAD"); err != nil {
			return "", fmt.Errorf("create rollback tag %s: %w", name, err)
		}
		return name, nil
	}
	return "", fmt.Errorf("create rollback tag: %s and 99 suffixed names are taken", base)
}

// headHolds checks that HEAD's main compose file is byte-identical to cur,
// so that the rollback tag really holds the pre-merge file.
func headHolds(ctx context.Context, o Options, cur []byte) error {
	if _, err := git(ctx, o, "rev-parse", "--verify", "HEAD^{commit}"); err != nil {
		return fmt.Errorf("%s has no commit to tag as the rollback point: commit %s first: %w", o.Dir, o.Profile.MainCompose, err)
	}
	head, err := gitShow(ctx, o, "HEAD")
	if err != nil {
		return fmt.Errorf("%s is not committed at HEAD: commit it first so the rollback tag holds it: %w", o.Profile.MainCompose, err)
	}
	if sum(head) != sum(cur) {
		return fmt.Errorf("%s has uncommitted changes: commit or stash them first so the rollback tag holds the pre-merge file", o.Profile.MainCompose)
	}
	return nil
}
