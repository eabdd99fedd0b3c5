package targets

import (
	"context"
	"fmt"
	"slices"
	"strings"

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
					fmt.Fprintf(stdout, "    gate: %s (%s): %s\n", c.Name, c.Service, c.LastError)
				}
			}
		}
		return err
	}
}

// mergeOptions builds the options shared by the merge targets from their flags.
func mergeOptions(from, accept *string) (merge.Options, error) {
	var opts merge.Options
	if from != nil {
		opts.From = *from
	}
	if accept != nil {
		list, err := merge.ParseAccept(*accept)
		if err != nil {
			return opts, &acceptError{err}
		}
		opts.Accept = list
	}
	return opts, nil
}

// acceptHint names the -accept value that would accept the changes the
// report refused, for a person who intended them. Services the merged file
// drops come first: the usual fix is to add them to the merge source.
func acceptHint(target string, rep merge.Report) string {
	var keys, dropped, dropKeys []string
	for _, d := range rep.Unaccepted() {
		switch {
		case d.Dropped():
			dropped, dropKeys = append(dropped, d.Service), append(dropKeys, d.Key())
		case !slices.Contains(keys, d.Key()):
			keys = append(keys, d.Key())
		}
	}
	var hints []string
	if len(dropped) > 0 {
		hints = append(hints, fmt.Sprintf("add %s to the merge source (docker-compose.sandbox.yml, or -from), each host port as ${VAR:-<main port>}: a merge keeps every service of the main file; to remove %s on purpose, name each: -accept=%s",
			strings.Join(dropped, ", "), map[bool]string{true: "it", false: "them"}[len(dropped) == 1], strings.Join(dropKeys, ",")))
	}
	if len(keys) > 0 {
		hints = append(hints, fmt.Sprintf("if these changes to the main stack are intended: go tool mage %s -accept=%s", target, strings.Join(keys, ",")))
	}
	return strings.Join(hints, "; ")
}

// Apply checks the merged file against the current docker-compose.yml (same main stack unless -accept names a change), then tags HEAD, backs up, records and writes it. A refused merge changes nothing.
func (Merge) Apply(ctx context.Context,
	from *string, // merged source (default docker-compose.sandbox.yml)
	accept *string, // intended changes to the main stack: <service>.<field>,*.<field>,name,volumes,networks
) (err error) {
	defer exitAs(tApply, &err)
	opts, err := mergeOptions(from, accept)
	if err != nil {
		return err
	}
	res, err := merge.Apply(ctx, opts)
	printReport(res.Report)
	if err != nil {
		return &refusedMergeError{err, res.Report}
	}
	fmt.Fprintf(stdout, "merged %s (rollback point: tag %s, backup %s); undo with `go tool mage merge:rollback`\n",
		res.File, res.Tag, res.Backup)
	return nil
}

// Verify runs the checklist: the merged docker-compose.yml runs the same main stack as the pre-merge file (but for accepted changes) and follows the slot rules. Exit 0 pass, 1 fail.
func (Merge) Verify(ctx context.Context,
	live *bool, // also bring the main stack up on the standard ports and check it
	standin *bool, // with -live: run the bundled stand-in images
	from *string, // merge source the services item compares with (default: the one merge:apply used)
	accept *string, // intended changes to the main stack, besides those merge:apply accepted
) (err error) {
	defer exitAs(tVerify, &err)
	opts, err := mergeOptions(from, accept)
	if err != nil {
		return err
	}
	if deref(live) {
		opts.Live = liveCheck(deref(standin))
	}
	rep, err := merge.Verify(ctx, opts)
	printReport(rep)
	if err != nil {
		return err
	}
	if len(rep.Failed()) > 0 {
		return &verifyFailedError{rep}
	}
	fmt.Fprintf(stdout, "merge:verify: all %d items pass\n", len(rep.Items))
	return nil
}

// Rollback restores the pre-merge docker-compose.yml byte for byte (from the backup, else the rollback tag); no docker, harmless twice. Exit 0 ok, 1 failed.
func (Merge) Rollback(ctx context.Context) (err error) {
	defer exitAs(tRollback, &err)
	res, err := merge.Rollback(ctx, merge.Options{})
	if err != nil {
		return &rollbackError{err, res}
	}
	fmt.Fprintln(stdout, res.Message)
	return nil
}

func printReport(r merge.Report) {
	for _, it := range r.Items {
		fmt.Fprintln(stdout, it)
	}
}
