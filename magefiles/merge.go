//go:build mage

package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/ktrdr/sandboxkit/sandbox/merge"
	"github.com/magefile/mage/mg"
)

// Merge puts the sandbox parameters into the main docker-compose.yml (milestone 6): apply, verify, rollback.
type Merge mg.Namespace

// liveCheck is the -live item of merge:verify: bring the main stack up on the
// standard ports, check GET :8000/api/v1/health and the gate, bring it down.
func liveCheck(standin bool) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		m, cwd, err := manager()
		if err != nil {
			return err
		}
		gr, err := m.CheckMainStack(ctx, cwd, standin, nil)
		if gr != nil && !gr.Passed {
			for _, c := range gr.Checks {
				if !c.Passed {
					fmt.Printf("    gate: %s (%s): %s\n", c.Name, c.Service, c.LastError)
				}
			}
		}
		return err
	}
}

// Apply tags HEAD as the rollback point, backs up docker-compose.yml into .ktrdr-merge/, writes the merged file and runs the checklist; it rolls back by itself if an item fails.
func (Merge) Apply(ctx context.Context,
	from *string, // merged source (default docker-compose.sandbox.yml)
) error {
	var opts merge.Options
	if from != nil {
		opts.From = *from
	}
	res, err := merge.Apply(ctx, opts)
	printReport(res.Report)
	if err != nil {
		if errors.Is(err, merge.ErrMergeApplied) {
			return fail(1, err, "")
		}
		return fail(1, err, "docker-compose.yml is unchanged; fix the source and run merge:apply again")
	}
	fmt.Printf("merged %s (rollback point: tag %s, backup %s); undo with `go tool mage merge:rollback`\n",
		res.File, res.Tag, res.Backup)
	return nil
}

// Verify runs the checklist: the merged docker-compose.yml is backward compatible and follows the slot rules. Exit 0 pass, 1 fail.
func (Merge) Verify(ctx context.Context,
	live *bool, // also bring the main stack up on the standard ports and check it
	standin *bool, // with -live: run the bundled stand-in images
) error {
	var opts merge.Options
	if deref(live) {
		opts.Live = liveCheck(deref(standin))
	}
	rep, err := merge.Verify(ctx, opts)
	printReport(rep)
	if err != nil {
		return fail(1, err, "")
	}
	if failed := rep.Failed(); len(failed) > 0 {
		return fail(1, fmt.Errorf("merge:verify: %d of %d items failed for %s", len(failed), len(rep.Items), rep.File),
			"fix docker-compose.yml, or restore the pre-merge file with `go tool mage merge:rollback`")
	}
	fmt.Printf("merge:verify: all %d items pass\n", len(rep.Items))
	return nil
}

// Rollback restores the pre-merge docker-compose.yml byte for byte (from .ktrdr-merge/, else the rollback tag); no docker, harmless twice. Exit 0 ok, 1 failed.
func (Merge) Rollback(ctx context.Context) error {
	res, err := merge.Rollback(ctx, merge.Options{})
	if err != nil {
		hint := ""
		if res.Tag != "" {
			hint = fmt.Sprintf("the pre-merge file is at tag %s: git show %s:docker-compose.yml", res.Tag, res.Tag)
		}
		return fail(1, err, hint)
	}
	fmt.Println(res.Message)
	return nil
}

func printReport(r merge.Report) {
	for _, it := range r.Items {
		fmt.Println(it)
	}
}
