package driver

import (
	"context"
	"strings"
	"sync"
)

// fakeRunner records commands and answers them with handle (nil: empty
// output, no error).
type fakeRunner struct {
	mu     sync.Mutex
	calls  []Cmd
	handle func(c Cmd) ([]byte, error)
}

func (f *fakeRunner) Run(ctx context.Context, c Cmd) ([]byte, error) {
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
