package sandbox

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/stretchr/testify/require"
)

// fakeRunner records commands and answers them with handle (nil handle: empty output, no error).
// Shared by every test file of the package.
type fakeRunner struct {
	mu     sync.Mutex
	calls  []driver.Cmd
	handle func(c driver.Cmd) ([]byte, error)
}

func (f *fakeRunner) Run(ctx context.Context, c driver.Cmd) ([]byte, error) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	h := f.handle
	f.mu.Unlock()
	if h == nil {
		return nil, nil
	}
	return h(c)
}

// commands returns every recorded call as "name arg arg…".
func (f *fakeRunner) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.calls))
	for i, c := range f.calls {
		out[i] = strings.Join(append([]string{c.Name}, c.Args...), " ")
	}
	return out
}

// fileText returns a file's content.
func fileText(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
