package merge

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// git runs `git -C dir args…` through the Runner seam.
func git(ctx context.Context, o Options, args ...string) ([]byte, error) {
	return o.Runner.Run(ctx, driver.Cmd{Name: "git", Args: append([]string{"-C", o.Dir}, args...)})
}

// gitShow returns the bytes of the file rel (relative to the checkout root)
// at rev.
func gitShow(ctx context.Context, o Options, rev, rel string) ([]byte, error) {
	return git(ctx, o, "show", rev+":./"+rel)
}

// tagExists reports whether refs/tags/name exists.
func tagExists(ctx context.Context, o Options, name string) (bool, error) {
	_, err := git(ctx, o, "rev-parse", "-q", "--verify", "refs/tags/"+name)
	if err == nil {
		return true, nil
	}
	var ee *driver.ExitError
	if errors.As(err, &ee) && ee.Code == 1 {
		return false, nil
	}
	return false, err
}

// freeTagName returns the first free name of sandbox-merge/pre-<UTC time>,
// then with a numeric suffix.
func freeTagName(ctx context.Context, o Options) (string, error) {
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
		if !exists {
			return name, nil
		}
	}
	return "", fmt.Errorf("name the rollback tag: %s and 99 suffixed names are taken", base)
}

// createTag tags HEAD as name; git refuses a name that exists.
func createTag(ctx context.Context, o Options, name string) error {
	if _, err := git(ctx, o, "tag", name, "HEAD"); err != nil {
		return fmt.Errorf("create rollback tag %s: %w", name, err)
	}
	return nil
}

// headHolds checks that HEAD holds the main compose file as it is now, so
// that the rollback tag really holds the pre-merge file: HEAD's copy of the
// file read and written (mf.Rel, the link's target if the main file is a
// link) is byte-identical to cur, and if the main file is a link, HEAD has
// the same link. The link's own text is never compared with cur.
func headHolds(ctx context.Context, o Options, mf mainFile, cur []byte) error {
	if _, err := git(ctx, o, "rev-parse", "--verify", "HEAD^{commit}"); err != nil {
		return fmt.Errorf("%s has no commit to tag as the rollback point: commit %s first: %w", o.Dir, mf.Rel, err)
	}
	name := mf.Rel
	if mf.Link != "" {
		name = fmt.Sprintf("%s (the target of the link %s)", mf.Rel, o.Profile.MainCompose)
		if err := headHasLink(ctx, o, mf.Link); err != nil {
			return err
		}
	}
	head, err := gitShow(ctx, o, "HEAD", mf.Rel)
	if err != nil {
		return fmt.Errorf("%s is not committed at HEAD: commit it first so the rollback tag holds it: %w", name, err)
	}
	if sum(head) != sum(cur) {
		return fmt.Errorf("%s has uncommitted changes: commit or stash them first so the rollback tag holds the pre-merge file", name)
	}
	return nil
}

// headHasLink checks that HEAD has the main compose file as a symbolic link
// to link.
func headHasLink(ctx context.Context, o Options, link string) error {
	main := filepath.ToSlash(o.Profile.MainCompose)
	out, err := git(ctx, o, "ls-tree", "-z", "HEAD", "--", main)
	if err != nil {
		return fmt.Errorf("list %s at HEAD: %w", main, err)
	}
	entry := strings.TrimSuffix(string(out), "\x00")
	mode, _, _ := strings.Cut(entry, " ")
	var was string
	switch mode {
	case "":
		was = "has no " + main
	case "120000":
		text, err := gitShow(ctx, o, "HEAD", main)
		if err != nil {
			return fmt.Errorf("read the link %s at HEAD: %w", main, err)
		}
		if string(text) == link {
			return nil
		}
		was = fmt.Sprintf("has it as a link to %s", text)
	default:
		was = "has it as a regular file"
	}
	return fmt.Errorf("%s is a link to %s, but HEAD %s: commit the link first so the rollback tag holds the pre-merge file", main, link, was)
}
