package targets

import (
	"context"
	"fmt"

	"github.com/magefile/mage/mg"

	"github.com/ktrdr/sandboxkit/sandbox"
)

// createdDoc is what sandbox:create -json prints, and what the MCP server's
// create tool returns: the new sandbox, its API URL and, with -up, the
// result of starting it. A start that failed is described in Error; the
// sandbox stays created.
type createdDoc struct {
	*sandbox.Created
	APIURL string            `json:"api_url"`
	Up     *sandbox.UpResult `json:"up,omitempty"`
	Error  *errorDoc         `json:"error,omitempty"`
}

// errorDoc is a failure as a script or an agent reads it: the message, the
// hint a person would get, and the exit code the target exits with.
type errorDoc struct {
	Message  string `json:"message"`
	Hint     string `json:"hint,omitempty"`
	ExitCode int    `json:"exit_code"`
}

// newErrorDoc describes err as target would exit with it.
func newErrorDoc(target string, err error) *errorDoc {
	code, hint := classify(target, err)
	return &errorDoc{Message: err.Error(), Hint: hint, ExitCode: code}
}

// apiURL is the URL of the new sandbox's API.
func apiURL(m *sandbox.Manager, c *sandbox.Created) string {
	return fmt.Sprintf("http://%s:%d", c.Host, c.Ports[m.Profile.APIPortKey])
}

// createAndStart creates a sandbox and, when up is set, starts it in its
// new folder with the gate (uo.Dir is set here). created runs between the
// two with the new sandbox's document, for whoever reports progress. A failed start leaves the sandbox
// created and returns a *startFailedError carrying up's exit code.
func createAndStart(ctx context.Context, m *sandbox.Manager, co sandbox.CreateOptions, up bool, uo sandbox.UpOptions,
	created func(*createdDoc)) (*createdDoc, error) {
	res, err := m.Create(ctx, co)
	if err != nil {
		return nil, err
	}
	doc := &createdDoc{Created: res, APIURL: apiURL(m, res)}
	if created != nil {
		created(doc)
	}
	if !up {
		return doc, nil
	}
	uo.Dir = res.Path
	doc.Up, err = m.Up(ctx, uo)
	if err != nil && doc.Up != nil && doc.Up.Interrupted {
		err = &leftRunningError{err}
	}
	if err != nil {
		code, hint := classify(tUp, err)
		sf := &startFailedError{err: err, created: res, code: code, hint: hint}
		doc.Error = &errorDoc{Message: sf.Error(), Hint: startFailedHint(sf), ExitCode: code}
		return doc, sf
	}
	return doc, nil
}

// startFailedError: sandbox:create -up made the sandbox, but starting it
// failed; the command exits as sandbox:up would have.
type startFailedError struct {
	err     error
	created *sandbox.Created
	code    int    // sandbox:up's exit code for err
	hint    string // sandbox:up's hint for err
}

func (e *startFailedError) Error() string {
	return fmt.Sprintf("created %s, but starting it failed: %v", e.created.ID, e.err)
}
func (e *startFailedError) Unwrap() error { return e.err }

// startFailedHint is sandbox:up's hint, then where the sandbox that stays is.
func startFailedHint(e *startFailedError) string {
	stays := fmt.Sprintf("the sandbox stays created: cd %s && go tool mage sandbox:status (or sandbox:logs; sandbox:up again once fixed), or remove it with go tool mage sandbox:destroy -name=%s -force",
		e.created.Path, e.created.Name)
	if e.hint == "" {
		return stays
	}
	return e.hint + "; " + stays
}

// printCreated tells a person what sandbox:create made.
func printCreated(res *createdDoc) {
	for _, s := range sortedSlots(res.Skipped) {
		fmt.Fprintf(stdout, "Skipped slot %d: %s\n", s, res.Skipped[s])
	}
	on := ""
	if res.Engine != "local" {
		on = " on engine " + res.Engine
	}
	fmt.Fprintf(stdout, "Created sandbox %s in slot %d%s (API %s)\n", res.ID, res.Slot, on, res.APIURL)
}

// upOptions are the options of an up whose gate progress is shown on
// stdout, or on stderr when stdout carries JSON; stop ends the display.
func upOptions(o sandbox.UpOptions, jsonOut bool) (_ sandbox.UpOptions, stop func()) {
	progressOut := stdout
	if jsonOut {
		progressOut = stderr
	}
	o.Progress, stop = newGateProgress(progressOut, isTerminal(progressOut))
	if mg.Verbose() {
		o.Output = stderr
	}
	return o, stop
}

// showUp writes up's result for a person: the gate's report, or the log
// tails of what failed before the gate.
func showUp(res *sandbox.UpResult) {
	switch {
	case res == nil:
	case res.Gate != nil:
		fmt.Fprintln(stdout)
		writeGateReport(stdout, *res.Gate, res.URLs, res.Logs)
	default:
		writeLogTails(stdout, res.Logs)
	}
}
