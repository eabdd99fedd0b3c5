package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// The CI recipe of docs/ci.md, run as written: the test reads the page's
// workflows, and runs each job's `run:` steps in order with the GitHub
// expressions replaced by test values, in a shell as GitHub's (bash -e:
// here the mvdan.cc/sh interpreter with -e), skipping the `uses:` steps
// (the checkout is the test's repository; Go is on PATH).

// ciDoc is the page holding the workflows, the single source of them.
const ciDoc = "docs/ci.md"

type ciStep struct {
	Name string `yaml:"name"`
	Uses string `yaml:"uses"`
	Run  string `yaml:"run"`
	If   string `yaml:"if"`
}

type ciJob struct {
	RunsOn any      `yaml:"runs-on"`
	Steps  []ciStep `yaml:"steps"`
}

type ciWorkflow struct {
	Name string `yaml:"name"`
	On   struct {
		PullRequest struct {
			Paths []string `yaml:"paths"`
		} `yaml:"pull_request"`
	} `yaml:"on"`
	Jobs map[string]ciJob `yaml:"jobs"`
}

// ciWorkflows reads every ```yaml block of docs/ci.md as a workflow, and
// returns them by job id.
func ciWorkflows(t *testing.T) map[string]ciWorkflow {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, ciDoc))
	require.NoError(t, err)
	out := map[string]ciWorkflow{}
	blocks := regexp.MustCompile("(?ms)^```yaml\n(.*?)^```\n").FindAllStringSubmatch(string(data), -1)
	require.NotEmpty(t, blocks, "%s holds ```yaml blocks", ciDoc)
	for _, b := range blocks {
		var wf ciWorkflow
		require.NoError(t, yaml.Unmarshal([]byte(b[1]), &wf), "a workflow of %s:\n%s", ciDoc, b[1])
		for id := range wf.Jobs {
			require.NotContains(t, out, id, "job ids of %s are distinct", ciDoc)
			out[id] = wf
		}
	}
	return out
}

// stepResult is what one step printed and how it ended; Skipped: it did
// not run (an earlier step failed and it is not if: always()).
type stepResult struct {
	Name           string
	Skipped        bool
	Code           int
	Stdout, Stderr string
	Start, End     time.Time
}

// jobResult is a job's steps that have a run:, in order.
type jobResult struct{ Steps []stepResult }

func (j jobResult) step(name string) stepResult {
	for _, s := range j.Steps {
		if s.Name == name {
			return s
		}
	}
	return stepResult{Name: name, Skipped: true, Code: -1}
}

// failed reports whether a step failed.
func (j jobResult) failed() bool {
	return slices.ContainsFunc(j.Steps, func(s stepResult) bool { return !s.Skipped && s.Code != 0 })
}

func (j jobResult) String() string {
	var b strings.Builder
	for _, s := range j.Steps {
		if s.Skipped {
			fmt.Fprintf(&b, "--- step %q: skipped\n", s.Name)
			continue
		}
		fmt.Fprintf(&b, "--- step %q: exit %d\n%s--- stderr\n%s", s.Name, s.Code, s.Stdout, s.Stderr)
	}
	return b.String()
}

var ciExpr = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)

// runJob runs job's run: steps in dir with env, as GitHub runs them: a
// step after a failed one only if: always(). It does not touch t, so it
// may run on another goroutine; an error is a step it cannot run as
// written (an unknown expression or condition, a script that does not
// parse).
func runJob(ctx context.Context, job ciJob, dir string, env []string, github map[string]string) (jobResult, error) {
	var res jobResult
	failed := false
	for _, st := range job.Steps {
		if st.Run == "" {
			continue // uses: the test's checkout and Go stand for it
		}
		name := st.Name
		if name == "" {
			name = st.Run
		}
		switch strings.TrimSpace(st.If) {
		case "":
			if failed {
				res.Steps = append(res.Steps, stepResult{Name: name, Skipped: true})
				continue
			}
		case "always()", "${{ always() }}":
		default:
			return res, fmt.Errorf("step %q: condition %q: the test knows only always()", name, st.If)
		}
		var missing []string
		script := ciExpr.ReplaceAllStringFunc(st.Run, func(m string) string {
			key := ciExpr.FindStringSubmatch(m)[1]
			v, ok := github[key]
			if !ok {
				missing = append(missing, key)
			}
			return v
		})
		if len(missing) > 0 {
			return res, fmt.Errorf("step %q: no test value for %s", name, strings.Join(missing, ", "))
		}
		r, err := runScript(ctx, script, dir, env)
		if err != nil {
			return res, fmt.Errorf("step %q: %w", name, err)
		}
		r.Name = name
		res.Steps = append(res.Steps, r)
		failed = failed || r.Code != 0
	}
	return res, nil
}

// runScript runs a step's script as `bash -e` would, in dir with env.
func runScript(ctx context.Context, script, dir string, env []string) (stepResult, error) {
	file, err := syntax.NewParser().Parse(strings.NewReader(script), "run")
	if err != nil {
		return stepResult{}, err
	}
	var out, errb bytes.Buffer
	r, err := interp.New(interp.Dir(dir), interp.Env(expand.ListEnviron(env...)), interp.StdIO(nil, &out, &errb), interp.Params("-e"))
	if err != nil {
		return stepResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	start := time.Now()
	err = r.Run(ctx, file)
	res := stepResult{Stdout: out.String(), Stderr: errb.String(), Start: start, End: time.Now()}
	if code, ok := interp.IsExitStatus(err); ok {
		res.Code = int(code)
		err = nil
	}
	return res, err
}

// The merge:verify job: on the project's merged file it passes with one
// JSON document and no annotation; with the file broken it fails with
// exit 1 and an annotation per failed item, on docker-compose.yml.
func TestCIRecipeMergeVerify(t *testing.T) {
	wfs := ciWorkflows(t)
	require.Contains(t, wfs, "merge-verify")
	wf := wfs["merge-verify"]
	assert.Contains(t, wf.On.PullRequest.Paths, "docker-compose*.yml", "only pull requests that touch a compose file")
	job := wf.Jobs["merge-verify"]
	e := newEnv(t)
	github := map[string]string{}

	run := func() (jobResult, map[string]any) {
		t.Helper()
		res, err := runJob(t.Context(), job, e.Main, e.Env, github)
		require.NoError(t, err)
		t.Logf("merge-verify job:\n%s", res)
		data, err := os.ReadFile(filepath.Join(e.Main, "verify.json"))
		require.NoError(t, err)
		dec := json.NewDecoder(bytes.NewReader(data))
		var doc map[string]any
		require.NoError(t, dec.Decode(&doc), "verify.json is a JSON document:\n%s", data)
		assert.False(t, dec.More(), "verify.json holds one document only")
		return res, doc
	}

	pass, doc := run()
	require.False(t, pass.failed(), "the project's merged file passes:\n%s", pass)
	assert.Equal(t, true, doc["passed"])
	assert.Equal(t, "docker-compose.yml", doc["rel_file"])
	assert.NotContains(t, pass.step("merge:verify").Stdout, "::error")

	// A container_name: two stacks would clash.
	composePath := filepath.Join(e.Main, "docker-compose.yml")
	before := mustRead(t, composePath)
	broken := bytes.Replace(before, []byte("\n  backend:\n"), []byte("\n  backend:\n    container_name: ktrdr-backend\n"), 1)
	require.NotEqual(t, before, broken)
	require.NoError(t, os.WriteFile(composePath, broken, 0o644))
	fail, doc := run()
	step := fail.step("merge:verify")
	assert.Equal(t, 1, step.Code, "the job fails with merge:verify's exit 1:\n%s", fail)
	assert.Equal(t, false, doc["passed"])
	assert.Contains(t, step.Stdout, "::error file=docker-compose.yml::no container_name: backend sets container_name: ktrdr-backend")
	assert.Len(t, strings.Split(strings.TrimSpace(step.Stdout), "\n"), 1, "one annotation, for the one failed item")
	assert.Contains(t, step.Stderr, "items failed", "the error is in the log")
	assert.Contains(t, step.Stderr, "hint:")
}

// The end-to-end job, two runs at once on one machine (one HOME, two
// runners' checkouts): each makes its own sandbox, which answers at the URL
// it prints, and destroys it; nothing of either is left.
func TestCIRecipeSandboxE2E(t *testing.T) {
	needDocker(t)
	wfs := ciWorkflows(t)
	require.Contains(t, wfs, "e2e")
	job := wfs["e2e"].Jobs["e2e"]
	e := newEnv(t)

	// A second runner: its own work folder with a checkout of the project.
	second := filepath.Join(e.Dev, "runner-2", "ktrdr")
	require.NoError(t, os.MkdirAll(filepath.Dir(second), 0o755))
	e.git(e.Dev, "clone", "-q", e.Main, second)
	runs := []struct {
		dir, runID string
	}{{e.Main, "e2e101"}, {second, "e2e102"}} // "ci-e2e…": what an interrupted run left is found (isE2EProject)

	results := make([]jobResult, len(runs))
	errs := make([]error, len(runs))
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Go(func() {
			results[i], errs[i] = runJob(t.Context(), job, r.dir, e.Env, map[string]string{"github.run_id": r.runID, "github.run_attempt": "1"})
		})
	}
	wg.Wait()

	a, b := results[0].step("Create and start a sandbox"), results[1].step("Create and start a sandbox")
	assert.True(t, a.Start.Before(b.End) && b.Start.Before(a.End), "the two jobs created and started their sandboxes at the same time")
	ports := map[float64]string{}
	for i, r := range runs {
		name := "ci-" + r.runID + "-1"
		require.NoError(t, errs[i])
		t.Logf("e2e job in %s:\n%s", r.dir, results[i])
		assert.False(t, results[i].failed(), "job %s:\n%s", name, results[i])
		health := results[i].step("Test against it")
		assert.Equal(t, 0, health.Code, "the sandbox answered at the URL it printed")
		assert.Contains(t, health.Stdout, `"ok"`, "its health body")
		assert.False(t, results[i].step("Destroy the sandbox").Skipped)

		var created struct {
			ID     string             `json:"id"`
			Slot   int                `json:"slot"`
			Path   string             `json:"path"`
			APIURL string             `json:"api_url"`
			Ports  map[string]float64 `json:"ports"`
			Up     struct {
				Gate struct {
					Passed bool `json:"passed"`
				} `json:"gate"`
			} `json:"up"`
			Error any `json:"error"`
		}
		data := readOrNil(filepath.Join(r.dir, "sandbox.json"))
		require.NoError(t, json.Unmarshal(data, &created), "sandbox.json: %s", data)
		api := created.Ports["KTRDR_API_PORT"]
		assert.Equal(t, fmt.Sprintf("http://localhost:%d", int(api)), created.APIURL)
		assert.True(t, created.Up.Gate.Passed)
		assert.Nil(t, created.Error)
		assert.Equal(t, "ktrdr--"+name, created.ID)
		assert.Equal(t, filepath.Join(filepath.Dir(r.dir), "ktrdr--"+name), created.Path, "beside the runner's checkout")
		assert.NotContains(t, ports, api, "two jobs, two API ports")
		ports[api] = name

		// Nothing left: no entry, no worktree, no containers, volumes or networks.
		assertCILeftNothing(t, e, name, created.Path)
	}

	// A start that fails (a hook of the user's settings fails the gate):
	// the step fails with up's exit code, the test step is skipped, and the
	// sandbox is destroyed all the same.
	e.writeConfig(`{"hooks": [{"name": "ci-fails", "service": "backend", "command": ["sh", "-c", "exit 3"], "timeout": "20s"}]}`)
	failed, err := runJob(t.Context(), job, e.Main, e.Env, map[string]string{"github.run_id": "e2e103", "github.run_attempt": "2"})
	require.NoError(t, err)
	t.Logf("e2e job with a failing start:\n%s", failed)
	assert.Equal(t, 2, failed.step("Create and start a sandbox").Code, "the gate's exit code")
	assert.True(t, failed.step("Test against it").Skipped)
	assert.Equal(t, 0, failed.step("Destroy the sandbox").Code, "if: always() runs after a failure")
	var doc struct {
		Path  string `json:"path"`
		Error struct {
			ExitCode int `json:"exit_code"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(readOrNil(filepath.Join(e.Main, "sandbox.json")), &doc))
	assert.Equal(t, 2, doc.Error.ExitCode)
	assertCILeftNothing(t, e, "ci-e2e103-2", doc.Path)
}

// assertCILeftNothing checks that sandbox name has no registry entry, no
// worktree folder, and no containers, volumes or networks.
func assertCILeftNothing(t *testing.T, e *env, name, path string) {
	t.Helper()
	registry := string(readOrNil(filepath.Join(e.Home, ".ktrdr", "sandbox", "instances.json")))
	assert.NotContains(t, registry, "ktrdr--"+name)
	assert.NotEmpty(t, path)
	assert.NoDirExists(t, path)
	c, v, n := projectResources("ktrdr--" + name)
	assert.Zero(t, c+v+n, "containers %d, volumes %d, networks %d of ktrdr--%s", c, v, n, name)
}

// readOrNil reads a file, or returns nothing if it cannot.
func readOrNil(path string) []byte {
	data, _ := os.ReadFile(path)
	return data
}
