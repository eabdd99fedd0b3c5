package gate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresAuthError is a PostgreSQL server that refused the file's
// credentials: a database volume kept from an earlier start keeps the user
// and password it was first initialised with (POSTGRES_PASSWORD counts
// only on a fresh volume). Waiting does not help: it ends the gate.
type PostgresAuthError struct {
	Addr, User, Database string
	Code                 string // SQLSTATE: 28P01 (password), 28000 (role), 3D000 (database)
	Message              string // the server's message, printable
}

func (e *PostgresAuthError) Error() string {
	return fmt.Sprintf("postgres at %s refused user %q on database %q (SQLSTATE %s: %s): the database volume was initialised with other credentials than the file's (POSTGRES_* count only on a fresh volume); remove the volume with sandbox:down -volumes (its data goes) and up again",
		e.Addr, e.User, e.Database, e.Code, e.Message)
}

// Permanent marks the error as one that waiting does not cure.
func (e *PostgresAuthError) Permanent() bool { return true }

// PostgresAuthProbe checks that the PostgreSQL server at addr accepts user
// with password on database, with a real client (pgconn, from pgx): first
// the startup handshake (ProbePostgres: is it up yet?), then a connection
// that authenticates. A refusal of the credentials is a
// *PostgresAuthError; a server still starting a *PostgresStartingError.
func PostgresAuthProbe(addr, user, password, database string) Probe {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
		defer cancel()
		if err := ProbePostgres(ctx, addr, user, database); err != nil {
			return err
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("postgres probe: address %q: %w", addr, err)
		}
		u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: net.JoinHostPort(host, port), Path: "/" + database,
			RawQuery: url.Values{"sslmode": {"disable"}, "connect_timeout": {"1"}, "application_name": {"sandbox-gate"}}.Encode()}
		cfg, err := pgconn.ParseConfig(u.String())
		if err != nil {
			return fmt.Errorf("postgres probe of %s: %w", addr, err)
		}
		if deadline, ok := ctx.Deadline(); ok {
			cfg.ConnectTimeout = time.Until(deadline)
		}
		conn, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				switch pe.Code {
				case "28P01", "28000", "3D000":
					return &PostgresAuthError{Addr: addr, User: user, Database: database, Code: pe.Code, Message: pgPrintable(pe.Message)}
				case pgCannotConnectNow:
					return &PostgresStartingError{Addr: addr, Message: pgPrintable(pe.Message)}
				}
				return fmt.Errorf("postgres at %s: SQLSTATE %s: %s", addr, pe.Code, pgPrintable(pe.Message))
			}
			return fmt.Errorf("postgres at %s: connect as %s: %w", addr, user, err)
		}
		conn.Close(context.WithoutCancel(ctx))
		return nil
	}
}
