package gate

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A step (a hook) runs once, only after the checks it needs passed, and the
// gate passes only after it.
func TestGateOnceRunsAfterItsNeeds(t *testing.T) {
	var dbUp atomic.Bool
	var runs atomic.Int32
	db := Check{Name: "Database ready", Service: "db", Probe: func(context.Context) error {
		if !dbUp.Load() {
			dbUp.Store(true)
			return errors.New("not yet")
		}
		return nil
	}}
	migrate := Check{Name: "Hook migrations", Service: "backend", Once: true, Needs: []string{"Database ready"},
		Probe: func(context.Context) error {
			runs.Add(1)
			if !dbUp.Load() {
				return errors.New("ran before the database was ready")
			}
			return nil
		}}
	res := (&Gate{Checks: []Check{migrate, db}, Interval: time.Millisecond, MaxInterval: time.Millisecond}).Run(t.Context())
	require.True(t, res.Passed, res.Aborted)
	assert.Equal(t, int32(1), runs.Load())
	assert.Equal(t, 1, res.Checks[0].Attempts)
	assert.GreaterOrEqual(t, res.Checks[0].ReadyAfter, res.Checks[1].ReadyAfter)
}

// A step that fails ends the gate at once, naming it; it is not retried.
func TestGateOnceFailureEndsTheGate(t *testing.T) {
	var runs atomic.Int32
	hook := Check{Name: "Hook seed", Service: "backend", Once: true, Probe: func(context.Context) error {
		runs.Add(1)
		return errors.New("exit status 2\nTraceback: boom")
	}}
	never := Check{Name: "Backend healthy", Service: "backend", Probe: func(context.Context) error { return errors.New("503") }}
	res := (&Gate{Checks: []Check{hook, never}, Timeout: time.Minute, Interval: time.Millisecond, MaxInterval: time.Millisecond}).Run(t.Context())
	assert.False(t, res.Passed)
	assert.False(t, res.TimedOut)
	assert.Equal(t, "Hook seed failed: exit status 2", res.Aborted)
	assert.Equal(t, "backend", res.AbortedService)
	assert.Equal(t, int32(1), runs.Load())
	assert.Contains(t, res.Checks[0].LastError, "Traceback: boom", "the whole output tail is kept in the check")
}
