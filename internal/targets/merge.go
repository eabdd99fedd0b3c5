package targets

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox/merge"
	"github.com/magefile/mage/mg"
)

// Merge puts the sandbox parameters into the main docker-compose.yml (milestone 6): apply, verify, rollback.
type Merge mg.Namespace

// liveCheck is the -live item of merge:verify: bring the main stack up on the
// standard ports, check GET :8000/api/v1/health and the gate, bring it down.
// Its steps and the failed gate checks go to stdout, or to stderr when
// stdout carries JSON.
func liveCheck(standin, jsonOut bool) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		out := stdout
		if jsonOut {
			out = stderr
		}
		m, cwd, err := manager(&jsonOut)
		if err != nil {
			return err
		}
		gr, err := m.CheckMainStack(ctx, cwd, standin, nil)
		if gr != nil && !gr.Passed {
			for _, c := range gr.Checks {
				if !c.Passed {
					fmt.Fprintf(out, "    gate: %s (%s): %s\n", c.Name, c.Service, c.LastError)
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
	json *bool, // print the report as one JSON document (items, differences, new variables); progress goes to stderr
) (err error) {
	defer exitAs(tVerify, &err)
	opts, err := mergeOptions(from, accept)
	if err != nil {
		return err
	}
	if deref(live) {
		opts.Live = liveCheck(deref(standin), deref(json))
	}
	rep, err := merge.Verify(ctx, opts)
	switch {
	case !deref(json):
		printReport(rep)
	case err == nil:
		if err := printJSON(verifyJSON(rep)); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	if len(rep.Failed()) > 0 {
		return &verifyFailedError{rep}
	}
	if !deref(json) {
		fmt.Fprintf(stdout, "merge:verify: all %d items pass\n", len(rep.Items))
	}
	return nil
}

// verifyDoc is merge:verify's report as -json prints it, for CI: File is
// absolute, RelFile relative to the folder the target ran in (the
// checkout root, what a CI annotation names).
type verifyDoc struct {
	File         string        `json:"file"`
	RelFile      string        `json:"rel_file"`
	Passed       bool          `json:"passed"`
	Items        []itemDoc     `json:"items"`
	Differences  []diffDoc     `json:"differences"`
	NewVariables []variableDoc `json:"new_variables"`
}

// itemDoc is one checklist item; Reason says what failed, why it was
// skipped, or what was accepted ("" when there is nothing to say).
// Differences are those the item judged: the comparison with the
// pre-merge file has them, the other items none.
type itemDoc struct {
	Name        string    `json:"name"`
	OK          bool      `json:"ok"`
	Skipped     bool      `json:"skipped"`
	Reason      string    `json:"reason"`
	Differences []diffDoc `json:"differences"`
}

// diffDoc is one way the main stack changes: Key is what -accept names;
// Old and New are the rendered values, "(none)" when absent.
type diffDoc struct {
	Service  string `json:"service"`
	Field    string `json:"field"`
	Key      string `json:"key"`
	Old      string `json:"old"`
	New      string `json:"new"`
	Accepted bool   `json:"accepted"`
}

// variableDoc is a variable the merged file reads that the pre-merge file
// did not: its default, and where the main checkout sets it ("" unset).
type variableDoc struct {
	Name    string `json:"name"`
	Default string `json:"default"`
	Origin  string `json:"origin"`
}

// verifyJSON turns the report into its document; lists are never null.
func verifyJSON(rep merge.Report) verifyDoc {
	doc := verifyDoc{File: rep.File, RelFile: rep.File, Passed: rep.OK(),
		Items: []itemDoc{}, Differences: []diffDoc{}, NewVariables: []variableDoc{}}
	if cwd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(cwd, rep.File); err == nil && !strings.HasPrefix(r, "..") {
			doc.RelFile = filepath.ToSlash(r)
		}
	}
	for _, d := range rep.Differences {
		doc.Differences = append(doc.Differences, diffDoc{Service: d.Service, Field: d.Field, Key: d.Key(), Old: d.Old, New: d.New, Accepted: d.Accepted})
	}
	for _, it := range rep.Items {
		item := itemDoc{Name: it.Name, OK: it.OK, Skipped: it.Skipped, Reason: it.Reason, Differences: []diffDoc{}}
		if strings.HasPrefix(it.Name, merge.ItemCompatible) {
			item.Differences = doc.Differences
		}
		doc.Items = append(doc.Items, item)
	}
	for _, v := range rep.NewVariables {
		doc.NewVariables = append(doc.NewVariables, variableDoc{Name: v.Name, Default: v.Default, Origin: v.Origin})
	}
	return doc
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
