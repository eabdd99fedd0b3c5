package driver

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func touch(t *testing.T, root string, names ...string) {
	t.Helper()
	for _, n := range names {
		p := filepath.Join(root, n)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, nil, 0o755))
	}
}

func TestFindHostPostgres(t *testing.T) {
	root := t.TempDir()
	_, err := FindHostPostgres(root)
	require.ErrorIs(t, err, ErrNoHostPostgres)
	assert.ErrorContains(t, err, root)

	server := func(v string) []string {
		return []string{"usr/lib/postgresql/" + v + "/bin/postgres", "usr/lib/postgresql/" + v + "/bin/initdb",
			"usr/lib/postgresql/" + v + "/bin/pg_isready", "usr/share/postgresql/" + v + "/postgres.bki"}
	}
	touch(t, root, server("13")...)
	touch(t, root, server("15")...)
	touch(t, root, server("16")[:2]...) // 16 without pg_isready and data: a client-only leftover
	touch(t, root, "usr/lib/postgresql/x/bin/postgres")
	pg, err := FindHostPostgres(root)
	require.NoError(t, err)
	assert.Equal(t, HostPostgres{Version: 15, Lib: filepath.Join(root, "usr/lib/postgresql/15"), Share: filepath.Join(root, "usr/share/postgresql/15")}, pg)
}

// hostPostgres skips a test on a machine without Debian's PostgreSQL.
func hostPostgres(t *testing.T) HostPostgres {
	t.Helper()
	pg, err := FindHostPostgres("")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs PostgreSQL's server binaries (.ci/run installs them): %v", err)
		}
		t.Skipf("no PostgreSQL here: %v", err)
	}
	return pg
}

func TestPostgresImageBuildCommands(t *testing.T) {
	pg := hostPostgres(t)
	var layer []byte
	f := &fakeRunner{handle: func(c Cmd) ([]byte, error) {
		switch c.Name {
		case "go":
			return nil, os.WriteFile(c.Args[len(c.Args)-2], []byte("fake binary"), 0o755)
		case "docker":
			if c.Stdin == nil {
				return nil, nil // image inspect: the tag names nothing yet
			}
			var err error
			layer, err = io.ReadAll(c.Stdin)
			return nil, err
		}
		return nil, nil
	}}
	var progress bytes.Buffer
	require.NoError(t, BuildPostgresImage(t.Context(), f, "/repo", "./cmd/standin", "ktrdr-postgres:x", &progress))
	require.Len(t, f.calls, 3)
	assert.Equal(t, "./cmd/standin", f.calls[0].Args[len(f.calls[0].Args)-1])
	assert.Contains(t, f.calls[0].Env, "CGO_ENABLED=0")
	ver := filepath.Base(pg.Lib)
	assert.Equal(t, []string{"import",
		"--change", `ENTRYPOINT ["/standin", "pg-entrypoint"]`,
		"--change", "ENV PATH=/usr/lib/postgresql/" + ver + "/bin:/usr/local/bin:/usr/bin:/bin",
		"--change", "ENV PGDATA=/var/lib/postgresql/data",
		"--change", "ENV TZ=Etc/UTC",
		"--change", "EXPOSE 5432",
		"--change", "LABEL sandbox.standin=1",
		"-", "ktrdr-postgres:x"}, f.calls[2].Args)

	entries := map[string]*tar.Header{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		entries[h.Name] = h
		order = append(order, h.Name)
		if h.Name == "standin" {
			b, _ := io.ReadAll(tr)
			assert.Equal(t, "fake binary", string(b))
		}
	}
	lib := "usr/lib/postgresql/" + ver
	for _, name := range []string{"standin", "bin/dash", lib + "/bin/postgres", lib + "/bin/initdb", lib + "/bin/pg_isready", lib + "/bin/psql",
		lib + "/lib/plpgsql.so", "usr/share/postgresql/" + ver + "/postgres.bki", "usr/share/zoneinfo/Etc/UTC", "etc/passwd", "etc/group"} {
		require.Contains(t, entries, name)
		assert.Equal(t, byte(tar.TypeReg), entries[name].Typeflag, name)
	}
	assert.Equal(t, "dash", entries["bin/sh"].Linkname)
	assert.Equal(t, "../lib/postgresql/"+ver+"/bin/pg_isready", entries["usr/bin/pg_isready"].Linkname)
	for _, dir := range []string{"var/lib/postgresql/data/", "var/run/postgresql/"} {
		require.Contains(t, entries, dir)
		assert.Equal(t, 999, entries[dir].Uid, "%s belongs to postgres", dir)
	}
	assert.Equal(t, int64(0o700), entries["var/lib/postgresql/data/"].Mode)
	assert.Equal(t, int64(0o1777), entries["tmp/"].Mode)
	var libc, loader bool
	for name := range entries {
		assert.NotContains(t, name, "llvmjit", "no JIT: it needs LLVM")
		assert.False(t, strings.HasPrefix(name, "usr/share/postgresql/"+ver+"/man/"), "no manual pages: %s", name)
		libc = libc || strings.HasSuffix(name, "/libc.so.6")
		loader = loader || strings.HasPrefix(name, "lib64/ld-linux") || strings.HasPrefix(name, "lib/ld-linux")
	}
	assert.True(t, libc, "the C library the programs need")
	assert.True(t, loader, "the program interpreter")
	// Every entry's folder comes before it.
	seen := map[string]bool{}
	for _, name := range order {
		if d := filepath.Dir(strings.TrimSuffix(name, "/")); d != "." {
			assert.True(t, seen[d+"/"], "%s before %s", d, name)
		}
		seen[name] = true
	}
	assert.Contains(t, progress.String(), "built ktrdr-postgres:x")
}

func TestPostgresImageBuildErrors(t *testing.T) {
	root := t.TempDir()
	f := &fakeRunner{}
	err := BuildPostgresImageFrom(t.Context(), f, root, "/repo", "./cmd/standin", "ktrdr-postgres:x", nil)
	require.ErrorIs(t, err, ErrNoHostPostgres)
	assert.ErrorContains(t, err, "ktrdr-postgres:x")
	assert.Empty(t, f.calls, "nothing compiled or imported")

	hostPostgres(t)
	refused := &fakeRunner{handle: func(c Cmd) ([]byte, error) {
		switch {
		case c.Name == "go":
			return nil, os.WriteFile(c.Args[len(c.Args)-2], []byte("fake binary"), 0o755)
		case c.Stdin != nil:
			return nil, &ExitError{Cmd: "docker import", Code: 1, Stderr: "no space left on device"}
		}
		return nil, nil
	}}
	err = BuildPostgresImage(t.Context(), refused, "/repo", "./cmd/standin", "ktrdr-postgres:x", nil)
	require.Error(t, err)
	assert.ErrorContains(t, err, "docker import of PostgreSQL")
	assert.ErrorContains(t, err, "no space left on device")
}
