// Package pgtest starts a real PostgreSQL server for tests, from the host's
// Debian packages (postgresql, which .ci/run installs): no image, no
// registry. Without the packages a test is skipped on a laptop and fails in
// CI. Tests only.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// binDir finds the PostgreSQL server binaries (initdb, pg_ctl). Without
// them the test is skipped on a laptop and fails in CI.
func binDir(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { // highest major version last
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[j]))))
		return vi < vj
	})
	if len(matches) > 0 {
		return filepath.Dir(matches[len(matches)-1])
	}
	if os.Getenv("CI") != "" {
		t.Fatal("PostgreSQL server binaries (initdb, pg_ctl) not found in PATH or /usr/lib/postgresql/*/bin; CI must install them (apt-get install postgresql)")
	}
	t.Skip("PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql to run this test")
	return ""
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Options shape the server Start makes. The superuser is ktrdr.
type Options struct {
	// Standby makes a standby (standby.signal) with hot_standby off and no
	// primary: it stays in recovery and answers every connection with
	// SQLSTATE 57P03, a deterministic "starting up" state.
	Standby bool
	// Password, when set, is ktrdr's password, required over TCP
	// (scram-sha-256); without it every connection is trusted.
	Password string
}

// Start runs initdb and pg_ctl start for a throw-away server on 127.0.0.1
// and a free port, and returns its address. PostgreSQL refuses to
// run as root, so as root it runs as the postgres user (or nobody) through
// runuser. The server is stopped and its files removed at cleanup, also on failure.
func Start(t testing.TB, o Options) string {
	t.Helper()
	bin := binDir(t)
	root, err := os.MkdirTemp("", "pgprobe-test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	require.NoError(t, os.Chmod(root, 0o755))
	data, sock := filepath.Join(root, "data"), filepath.Join(root, "sock")
	require.NoError(t, os.Mkdir(data, 0o700))
	require.NoError(t, os.Mkdir(sock, 0o755))

	var prefix []string
	if os.Geteuid() == 0 {
		name := "postgres"
		u, err := user.Lookup(name)
		if err != nil {
			name = "nobody"
			u, err = user.Lookup(name)
		}
		require.NoError(t, err, "as root, PostgreSQL needs a non-root user (postgres or nobody)")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{root, data, sock} {
			require.NoError(t, os.Chown(p, uid, gid))
		}
		runuser, err := exec.LookPath("runuser")
		require.NoError(t, err, "as root, the test needs runuser to start PostgreSQL as %s", name)
		prefix = []string{runuser, "-u", name, "--"}
	}
	pg := func(timeout time.Duration, name string, args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		argv := append(append(append([]string{}, prefix...), filepath.Join(bin, name)), args...)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
		}
		return nil
	}

	initdb := []string{"-D", data, "-U", "ktrdr", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"}
	if o.Password != "" {
		pw := filepath.Join(root, "pw")
		require.NoError(t, os.WriteFile(pw, []byte(o.Password+"\n"), 0o644))
		initdb = append(initdb, "--auth-host=scram-sha-256", "--pwfile="+pw)
	}
	require.NoError(t, pg(time.Minute, "initdb", initdb...))
	port := freePort(t)
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = off\n", port, sock)
	if o.Standby {
		conf += "hot_standby = off\n"
		require.NoError(t, os.WriteFile(filepath.Join(data, "standby.signal"), nil, 0o600))
	}
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(conf)
	require.NoError(t, errors.Join(err, f.Close()))

	logFile := filepath.Join(root, "server.log")
	t.Cleanup(func() {
		if err := pg(30*time.Second, "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"); err != nil {
			t.Logf("stop PostgreSQL: %v", err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(logFile); err == nil {
				t.Logf("PostgreSQL log:\n%s", b)
			}
		}
	})
	if err := pg(time.Minute, "pg_ctl", "-D", data, "-l", logFile, "-w", "-t", "50", "start"); err != nil {
		b, _ := os.ReadFile(logFile)
		t.Fatalf("start PostgreSQL: %v\nlog:\n%s", err, b)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
