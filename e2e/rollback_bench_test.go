package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkMergeRollbackWholeProcess times `merge:rollback` as a whole
// process in a checkout whose legacy compose file was merged: the compiled
// targets (the binary TestMain builds with `go tool mage -compile`) and the
// README's entry point `go tool mage merge:rollback` (mage's cache warm),
// five runs each, each after a fresh `merge:apply` (untimed). Every rollback
// must leave the file byte-identical to the pre-merge one. No docker.
//
//	go test ./e2e/ -run '^$' -bench MergeRollbackWholeProcess -benchtime 1x -v
func BenchmarkMergeRollbackWholeProcess(b *testing.B) {
	e := newEnv(b)
	legacy, err := os.ReadFile(filepath.Join(repoRoot, "sandbox", "merge", "testdata", "docker-compose.legacy.yml"))
	require.NoError(b, err)
	composePath := filepath.Join(e.Main, "docker-compose.yml")
	require.NoError(b, os.WriteFile(composePath, legacy, 0o644))
	e.git(e.Main, "commit", "-q", "-am", "the pre-sandbox compose file")
	require.Equal(b, 0, e.run(e.Main, "go", "tool", "mage", "-l").Code) // warm mage's cache

	const runs = 5
	timeIt := func(name string, args ...string) []time.Duration {
		var ds []time.Duration
		for i := range runs {
			e.must(e.Main, "merge:apply", "-accept="+legacyAccept)
			merged, err := os.ReadFile(composePath)
			require.NoError(b, err)
			require.NotEqual(b, legacy, merged, "apply changed the file")
			cmd := exec.Command(name, args...)
			cmd.Dir, cmd.Env = e.Main, e.Env
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			start := time.Now()
			err = cmd.Run()
			d := time.Since(start)
			require.NoError(b, err, "%s %v: %s", name, args, out.String())
			restored, err := os.ReadFile(composePath)
			require.NoError(b, err)
			require.Equal(b, legacy, restored, "run %d of %s %v: byte for byte", i+1, filepath.Base(name), args)
			ds = append(ds, d)
		}
		b.Logf("%s %v: %v", filepath.Base(name), args, ds)
		return ds
	}
	compiled := timeIt(filepath.Join(binDir, "sbx"), "merge:rollback")
	mage := timeIt("go", "tool", "mage", "merge:rollback")
	benchSpread(b, "compiled", compiled)
	benchSpread(b, "go-tool-mage", mage)
	b.ReportMetric(runs, "runs")
}
