package gate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/internal/pgtest"
)

func TestPostgresAuthProbeAgainstARealServer(t *testing.T) {
	addr := pgtest.Start(t, pgtest.Options{Password: "pw"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	assert.NoError(t, PostgresAuthProbe(addr, "ktrdr", "pw", "postgres")(ctx), "the file's credentials")

	for name, c := range map[string]struct{ user, password, db, code string }{
		"another password (a volume kept from an earlier start)": {"ktrdr", "other", "postgres", "28P01"},
		"another user":     {"someone", "pw", "postgres", "28P01"},
		"another database": {"ktrdr", "pw", "nope", "3D000"},
	} {
		t.Run(name, func(t *testing.T) {
			err := PostgresAuthProbe(addr, c.user, c.password, c.db)(ctx)
			var ae *PostgresAuthError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, c.code, ae.Code)
			assert.Contains(t, err.Error(), "sandbox:down -volumes")
			assert.NotContains(t, err.Error(), c.password+"@", "the password is not shown")
			var perm interface{ Permanent() bool }
			assert.True(t, errors.As(err, &perm) && perm.Permanent())
		})
	}

	// The gate ends at once on it, rather than waiting out its timeout.
	res := (&Gate{Timeout: time.Minute, Checks: []Check{{Name: "Database ready", Service: "db", Probe: PostgresAuthProbe(addr, "ktrdr", "other", "postgres")}}}).Run(ctx)
	assert.False(t, res.Passed)
	assert.False(t, res.TimedOut)
	assert.Equal(t, "db", res.AbortedService)
	assert.Contains(t, res.Aborted, "Database ready failed: postgres at")
}
