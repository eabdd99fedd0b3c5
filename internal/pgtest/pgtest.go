// Package pgtest starts a real PostgreSQL server for tests, from the host's
// Debian packages (postgresql, which .ci/run installs): no image, no
// registry. Tests only.
package pgtest

import (
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// Start starts a throwaway PostgreSQL server from the host's
// packages (Debian's postgresql, which .ci/run installs) with user ktrdr,
// password pw and database ktrdr, password authentication over TCP. It
// returns host:port. Without the packages it skips, except in CI.
func Start(t testing.TB) string {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	pg, err := user.Lookup("postgres")
	if len(bins) == 0 || err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("PostgreSQL's server packages are missing (apt-get install postgresql)")
		}
		t.Skip("no PostgreSQL server packages on this machine")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	dir, err := os.MkdirTemp("", "pgauth-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chown(dir, uid, gid))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pw"), []byte("pw\n"), 0o600))
	require.NoError(t, os.Chown(filepath.Join(dir, "pw"), uid, gid))
	as := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		if os.Getuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		}
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "LC_ALL=C"}
		return cmd
	}
	data := filepath.Join(dir, "data")
	out, err := as("initdb", "-D", data, "-U", "ktrdr", "--pwfile", filepath.Join(dir, "pw"), "--auth-local=trust", "--auth-host=scram-sha-256").CombinedOutput()
	require.NoError(t, err, string(out))
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	out, err = as("pg_ctl", "-D", data, "-w", "-l", filepath.Join(dir, "log"), "-o",
		"-p "+strconv.Itoa(port)+" -c listen_addresses=127.0.0.1 -k "+dir, "start").CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() { _ = as("pg_ctl", "-D", data, "-m", "immediate", "stop").Run() })
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
