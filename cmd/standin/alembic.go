package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// alembic answers ktrdr's migration command, `alembic upgrade head`, as the
// real backend image does for its database: it reads the head revision of
// the mounted migrations (alembic/versions/*.py: the revision no other
// names as its down_revision) and records it in alembic_version of the
// database the backend's environment names. Nothing else of a migration is
// run: the stand-in stores no data of its own, but the database is real.
//
// The versions folder: $KTRDR_STANDIN_ALEMBIC_DIR, else /app/alembic/versions
// (where ktrdr mounts ./alembic), else ./alembic/versions. The database:
// $DATABASE_URL, else DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD (or their
// KTRDR_DB_* and POSTGRES_* names).
func alembicMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "upgrade" || args[1] != "head" {
		fmt.Fprintf(stderr, "standin alembic: only `alembic upgrade head` is answered (got %q)\n", strings.Join(args, " "))
		return 2
	}
	dir := alembicDir(getenv)
	head, err := alembicHead(dir)
	if err != nil {
		fmt.Fprintf(stderr, "standin alembic: %v\n", err)
		return 1
	}
	if head == "" {
		fmt.Fprintf(stdout, "INFO  [alembic.runtime.migration] no revisions in %s: nothing to do\n", dir)
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	dsn, err := alembicDSN(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "standin alembic: %v\n", err)
		return 1
	}
	if err := stampHead(ctx, dsn, head); err != nil {
		fmt.Fprintf(stderr, "standin alembic: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "INFO  [alembic.runtime.migration] Running upgrade -> %s (stand-in: head of %s recorded)\n", head, dir)
	return 0
}

func alembicDir(getenv func(string) string) string {
	if d := getenv("KTRDR_STANDIN_ALEMBIC_DIR"); d != "" {
		return d
	}
	if fi, err := os.Stat("/app/alembic/versions"); err == nil && fi.IsDir() {
		return "/app/alembic/versions"
	}
	return filepath.Join("alembic", "versions")
}

var (
	revisionLine = regexp.MustCompile(`(?m)^revision(?:\s*:\s*[\w\[\], |]+)?\s*=\s*['"]([^'"]+)['"]`)
	downLine     = regexp.MustCompile(`(?m)^down_revision(?:\s*:\s*[\w\[\], |]+)?\s*=\s*(.+)$`)
	quoted       = regexp.MustCompile(`['"]([^'"]+)['"]`)
)

// alembicHead returns the one revision of dir that no other revision names
// as its down_revision ("" when dir has none).
func alembicHead(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.py"))
	if err != nil {
		return "", err
	}
	var revs []string
	down := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("read migration %s: %w", f, err)
		}
		m := revisionLine.FindSubmatch(data)
		if m == nil {
			continue // not a revision (an __init__.py, a helper)
		}
		revs = append(revs, string(m[1]))
		if d := downLine.FindSubmatch(data); d != nil {
			for _, q := range quoted.FindAllSubmatch(d[1], -1) {
				down[string(q[1])] = true
			}
		}
	}
	var heads []string
	for _, r := range revs {
		if !down[r] {
			heads = append(heads, r)
		}
	}
	slices.Sort(heads)
	switch len(heads) {
	case 0:
		if len(revs) > 0 {
			return "", fmt.Errorf("the revisions of %s form a cycle: no head", dir)
		}
		return "", nil
	case 1:
		return heads[0], nil
	}
	return "", fmt.Errorf("multiple heads in %s (%s): merge them first, as alembic asks", dir, strings.Join(heads, ", "))
}

func alembicDSN(getenv func(string) string) (string, error) {
	if u := getenv("DATABASE_URL"); u != "" {
		// SQLAlchemy's "postgresql+asyncpg://…": the driver is not the server's.
		if scheme, rest, ok := strings.Cut(u, "://"); ok {
			scheme, _, _ = strings.Cut(scheme, "+")
			u = scheme + "://" + rest
		}
		return u, nil
	}
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := getenv(k); v != "" {
				return v
			}
		}
		return ""
	}
	host := first("DB_HOST", "KTRDR_DB_HOST", "POSTGRES_HOST")
	if host == "" {
		return "", fmt.Errorf("no database: set DATABASE_URL or DB_HOST (and DB_PORT, DB_NAME, DB_USER, DB_PASSWORD)")
	}
	port := first("DB_PORT", "KTRDR_DB_PORT", "POSTGRES_PORT")
	if port == "" {
		port = "5432"
	}
	user := first("DB_USER", "KTRDR_DB_USER", "POSTGRES_USER")
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, first("DB_PASSWORD", "KTRDR_DB_PASSWORD", "POSTGRES_PASSWORD")),
		Host: net.JoinHostPort(host, port), Path: "/" + first("DB_NAME", "KTRDR_DB_NAME", "POSTGRES_DB"), RawQuery: "sslmode=disable"}
	return u.String(), nil
}

// stampHead records head as the database's one alembic revision.
func stampHead(ctx context.Context, dsn, head string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to the database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, q := range []string{
			`CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))`,
			`DELETE FROM alembic_version`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", strings.Fields(q)[0], err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO alembic_version (version_num) VALUES ($1)`, head); err != nil {
			return fmt.Errorf("record revision %s: %w", head, err)
		}
		return nil
	})
}
