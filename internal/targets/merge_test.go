package targets

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magefile/mage/mg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// merge:verify -json prints exactly one document on stdout, passed or
// failed, in the shape CI reads: every item, every difference, every new
// variable; the error and its hint stay on the error (stderr).
func TestVerifyJSON(t *testing.T) {
	// applied merges the project's files in the main checkout, then changes
	// the merged file's database image: a difference no one accepted.
	applied := func(t *testing.T, w *world) {
		w.mainCompose(t)
		require.NoError(t, Merge{}.Apply(t.Context(), nil, nil))
		path := filepath.Join(w.main, "docker-compose.yml")
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		changed := strings.Replace(string(data), "${KTRDR_DB_IMAGE:-timescale/timescaledb:latest-pg16}", "postgres:9.6", 1)
		require.NotEqual(t, string(data), changed)
		write(t, path, changed)
	}
	dbImage := diffDoc{Service: "db", Field: "image", Key: "db.image", Old: "timescale/timescaledb:latest-pg16", New: "postgres:9.6"}
	tests := []struct {
		name   string
		setup  func(t *testing.T, w *world)
		accept *string
		code   int
		passed bool
		failed []string // names of the failed items (prefixes)
		diffs  []diffDoc
		error  string // in the error mage prints
	}{
		{
			name: "pass",
			setup: func(t *testing.T, w *world) {
				w.mainCompose(t)
				require.NoError(t, Merge{}.Apply(t.Context(), nil, nil))
			},
			passed: true, diffs: []diffDoc{},
		},
		{
			name:   "fail: nothing merged",
			setup:  func(t *testing.T, w *world) { t.Chdir(w.main) },
			code:   1,
			failed: []string{"merged file parses", "no variables", "as the main checkout runs it", "every host port", "no container_name", "same services"},
			diffs:  []diffDoc{},
			error:  "items failed",
		},
		{
			name:   "fail: a change to the main stack",
			setup:  applied,
			code:   1,
			failed: []string{"as the main checkout runs it"},
			diffs:  []diffDoc{dbImage},
			error:  "-accept=db.image",
		},
		{
			name:   "the change accepted",
			setup:  applied,
			accept: ptr("db.image"),
			passed: true,
			diffs:  []diffDoc{{Service: "db", Field: "image", Key: "db.image", Old: dbImage.Old, New: dbImage.New, Accepted: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			tt.setup(t, w)
			w.out.Reset()
			w.errOut.Reset()
			err := Merge{}.Verify(t.Context(), nil, nil, nil, tt.accept, ptr(true))
			t.Logf("stdout:\n%s\nstderr:\n%s\nerror: %v", w.out, w.errOut, err)
			assert.Equal(t, tt.code, mg.ExitStatus(err))
			if tt.error != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.error)
			}
			doc := oneDocument(t, w.out.Bytes())
			assert.Equal(t, filepath.Join(w.main, "docker-compose.yml"), doc.File)
			assert.Equal(t, "docker-compose.yml", doc.RelFile)
			assert.Equal(t, tt.passed, doc.Passed)
			require.Len(t, doc.Items, 6)
			var failed []string
			for _, it := range doc.Items {
				if !it.OK {
					failed = append(failed, it.Name)
					assert.NotEmpty(t, it.Reason, "a failed item says why")
				}
			}
			require.Len(t, failed, len(tt.failed), "failed items: %q", failed)
			for i, prefix := range tt.failed {
				assert.True(t, strings.HasPrefix(failed[i], prefix), "%q starts with %q", failed[i], prefix)
			}
			assert.Equal(t, tt.diffs, doc.Differences)
			for _, it := range doc.Items {
				if strings.HasPrefix(it.Name, "as the main checkout runs it") {
					assert.Equal(t, tt.diffs, it.Differences, "the comparison item has its differences")
				} else {
					assert.Empty(t, it.Differences, "%s judges no differences", it.Name)
				}
			}
			assert.NotNil(t, doc.NewVariables)
		})
	}
}

// oneDocument decodes stdout as exactly one JSON document of
// merge:verify's shape, and checks its keys are the documented ones.
func oneDocument(t *testing.T, out []byte) verifyDoc {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(out))
	var raw map[string]json.RawMessage
	require.NoError(t, dec.Decode(&raw), "stdout is a JSON document: %s", out)
	assert.False(t, dec.More(), "stdout holds one document only")
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	assert.ElementsMatch(t, []string{"file", "rel_file", "passed", "items", "differences", "new_variables"}, keys)
	var items []map[string]any
	require.NoError(t, json.Unmarshal(raw["items"], &items))
	for _, it := range items {
		assert.ElementsMatch(t, []string{"name", "ok", "skipped", "reason", "differences"}, keysOf(it))
	}
	var doc verifyDoc
	dec = json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&doc))
	return doc
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Before a report exists (an -accept entry that names nothing), nothing
// is printed on stdout: only the error.
func TestVerifyJSONNoReport(t *testing.T) {
	w := newWorld(t)
	w.mainCompose(t)
	err := Merge{}.Verify(t.Context(), nil, nil, nil, ptr("not a key!"), ptr(true))
	require.Error(t, err)
	assert.Equal(t, 1, mg.ExitStatus(err))
	assert.Contains(t, err.Error(), "accept")
	assert.Empty(t, w.out.String())
}
