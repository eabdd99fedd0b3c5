package driver

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// One writer for both streams (a hook's output) gets both, whole.
func TestExecRunnerOneWriterForBothStreams(t *testing.T) {
	var out bytes.Buffer
	_, err := ExecRunner{}.Run(t.Context(), Cmd{Name: "sh", Args: []string{"-c", "echo out; echo err >&2; exit 1"}, Stdout: &out, Stderr: &out})
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Contains(t, out.String(), "out\n")
	assert.Contains(t, out.String(), "err\n")
	assert.Equal(t, "err\n", ee.Stderr)
}
