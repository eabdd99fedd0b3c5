package driver

import "context"

// fakeRunner records commands and answers them with handle (nil: empty
// output, no error). The tests of this package run it from one goroutine.
type fakeRunner struct {
	calls  []Cmd
	handle func(c Cmd) ([]byte, error)
}

func (f *fakeRunner) Run(_ context.Context, c Cmd) ([]byte, error) {
	if f.calls = append(f.calls, c); f.handle == nil {
		return nil, nil
	}
	return f.handle(c)
}
