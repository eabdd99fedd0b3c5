package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakePG records what the entrypoint does instead of doing it.
type fakePG struct {
	uid      int
	calls    []string
	steps    []pgStep
	files    map[string]string
	appended map[string]string
	runErr   error
	exec     []string
	code     int
}

func (f *fakePG) system(tmp string) pgSystem {
	f.files, f.appended = map[string]string{}, map[string]string{}
	return pgSystem{
		Getuid: func() int { return f.uid },
		LookupUser: func(name string) (int, int, error) {
			f.calls = append(f.calls, "lookup "+name)
			return 999, 998, nil
		},
		PrepareDirs: func(uid, gid int, dirs ...string) error {
			f.calls = append(f.calls, "prepare "+strings.Join(dirs, " "))
			return nil
		},
		DropTo: func(uid, gid int) error { f.calls = append(f.calls, "drop"); return nil },
		Run: func(_ context.Context, s pgStep, _, _ io.Writer) error {
			f.calls = append(f.calls, "run "+s.Name)
			f.steps = append(f.steps, s)
			if s.Name == "initdb" && f.runErr == nil {
				// What initdb makes, as far as the entrypoint looks.
				if err := os.MkdirAll(s.Args[2], 0o700); err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(s.Args[2], "PG_VERSION"), []byte("15\n"), 0o600)
			}
			return f.runErr
		},
		WriteFile: func(p string, data []byte, _ fs.FileMode) error {
			f.files[p] = string(data)
			return nil
		},
		AppendFile: func(p string, data []byte) error {
			f.calls = append(f.calls, "append "+filepath.Base(p))
			f.appended[p] += string(data)
			return nil
		},
		Remove: func(p string) error { delete(f.files, p); return nil },
		Serve: func(argv []string, _, _ io.Writer) (int, error) {
			f.calls = append(f.calls, "serve")
			f.exec = argv
			return f.code, nil
		},
		TempDir: tmp,
	}
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPGEntrypointFirstStartAndExistingCluster(t *testing.T) {
	tests := []struct {
		name       string
		uid        int
		env        map[string]string
		cluster    bool // the data folder holds PG_VERSION
		extra      []string
		wantCalls  []string
		wantInitdb []string // arguments initdb gets besides -D DATA
		wantSQL    string
		wantServer []string // after postgres -D DATA -c listen_addresses=*
	}{
		{
			name: "first start as root: prepare, drop, initdb, hba, database, server",
			uid:  0,
			env:  map[string]string{"POSTGRES_USER": "ktrdr", "POSTGRES_PASSWORD": "localdev", "POSTGRES_DB": "ktrdr"},
			wantCalls: []string{"lookup postgres", "prepare DATA /var/run/postgresql", "drop",
				"run initdb", "append pg_hba.conf", "run create database ktrdr", "serve"},
			wantInitdb: []string{"-U", "ktrdr", "--encoding=UTF8", "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=TMP/ktrdr-pg-password"},
			wantSQL:    "CREATE DATABASE \"ktrdr\";\n",
		},
		{
			name:       "first start with defaults as postgres: no database to create",
			uid:        999,
			env:        map[string]string{"POSTGRES_PASSWORD": "pw"},
			wantCalls:  []string{"run initdb", "append pg_hba.conf", "serve"},
			wantInitdb: []string{"-U", "postgres", "--encoding=UTF8", "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=TMP/ktrdr-pg-password"},
		},
		{
			name:       "the database defaults to the user's name, which is quoted",
			uid:        999,
			env:        map[string]string{"POSTGRES_USER": `od"d`, "POSTGRES_PASSWORD": "pw"},
			wantCalls:  []string{"run initdb", "append pg_hba.conf", "run create database od\"d", "serve"},
			wantInitdb: []string{"-U", `od"d`, "--encoding=UTF8", "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=TMP/ktrdr-pg-password"},
			wantSQL:    "CREATE DATABASE \"od\"\"d\";\n",
		},
		{
			name:       "trust without a password",
			uid:        999,
			env:        map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"},
			wantCalls:  []string{"run initdb", "append pg_hba.conf", "serve"},
			wantInitdb: []string{"-U", "postgres", "--encoding=UTF8", "--locale=C", "--auth-local=trust", "--auth-host=trust"},
		},
		{
			name:       "an existing cluster is started as it is",
			uid:        0,
			env:        map[string]string{"POSTGRES_USER": "ktrdr", "POSTGRES_PASSWORD": "changed", "POSTGRES_DB": "other"},
			cluster:    true,
			wantCalls:  []string{"lookup postgres", "prepare DATA /var/run/postgresql", "drop", "serve"},
			extra:      []string{"postgres", "-c", "max_connections=50"},
			wantServer: []string{"-c", "max_connections=50"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, tmp := t.TempDir(), t.TempDir()
			if tt.cluster {
				require.NoError(t, os.WriteFile(filepath.Join(data, "PG_VERSION"), []byte("15\n"), 0o600))
			}
			env := map[string]string{"PGDATA": data, "KTRDR_PG_BIN": "/pg/bin"}
			for k, v := range tt.env {
				env[k] = v
			}
			f := &fakePG{uid: tt.uid, code: 3}
			var out, errOut bytes.Buffer
			code := pgEntrypoint(context.Background(), tt.extra, envOf(env), &out, &errOut, f.system(tmp))
			assert.Equal(t, 3, code, "the server's exit status")
			assert.Empty(t, errOut.String())
			for i := range f.calls {
				f.calls[i] = strings.ReplaceAll(f.calls[i], data, "DATA")
			}
			assert.Equal(t, tt.wantCalls, f.calls)
			assert.Equal(t, append([]string{"/pg/bin/postgres", "-D", data, "-c", "listen_addresses=*"}, tt.wantServer...), f.exec)
			assert.Empty(t, f.files, "the password file is gone")
			if tt.cluster {
				assert.Empty(t, f.steps)
				assert.Contains(t, out.String(), "holds a cluster already")
				return
			}
			require.NotEmpty(t, f.steps)
			initdb := f.steps[0].Args
			assert.Equal(t, []string{"/pg/bin/initdb", "-D", filepath.Join(data, pgBuildDir)}, initdb[:3])
			assert.FileExists(t, filepath.Join(data, "PG_VERSION"), "the cluster was moved into place")
			assert.NoDirExists(t, filepath.Join(data, pgBuildDir))
			for i := range initdb {
				initdb[i] = strings.ReplaceAll(initdb[i], tmp, "TMP")
			}
			assert.Equal(t, tt.wantInitdb, initdb[3:])
			method := "scram-sha-256"
			if tt.env["POSTGRES_HOST_AUTH_METHOD"] == "trust" {
				method = "trust"
			}
			assert.Contains(t, f.appended[filepath.Join(data, pgBuildDir, "pg_hba.conf")], "\nhost all all all "+method+"\n")
			if tt.wantSQL != "" {
				require.Len(t, f.steps, 2)
				assert.Equal(t, []string{"/pg/bin/postgres", "--single", "-D", filepath.Join(data, pgBuildDir), "-c", "listen_addresses=", "postgres"}, f.steps[1].Args)
				assert.Equal(t, tt.wantSQL, f.steps[1].Stdin)
			} else {
				assert.Len(t, f.steps, 1)
			}
		})
	}
}

func TestPGEntrypointPasswordFileHoldsThePassword(t *testing.T) {
	data, tmp := t.TempDir(), t.TempDir()
	f := &fakePG{uid: 999}
	sys := f.system(tmp)
	var seen string
	sys.Run = func(_ context.Context, s pgStep, _, _ io.Writer) error {
		if s.Name == "initdb" {
			seen = f.files[filepath.Join(tmp, "ktrdr-pg-password")]
		}
		return nil
	}
	pgEntrypoint(context.Background(), nil, envOf(map[string]string{"PGDATA": data, "POSTGRES_PASSWORD": "s3cret"}), io.Discard, io.Discard, sys)
	assert.Equal(t, "s3cret\n", seen)
	assert.Empty(t, f.files)
}

func TestPGEntrypointRefusals(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		runErr  error
		wantErr string
	}{
		{name: "no password", env: map[string]string{}, wantErr: "POSTGRES_PASSWORD is empty"},
		{name: "initdb fails", env: map[string]string{"POSTGRES_PASSWORD": "pw"}, runErr: errors.New("exit status 1"), wantErr: "first start: initdb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			env := map[string]string{"PGDATA": data, "KTRDR_PG_BIN": "/pg/bin"}
			for k, v := range tt.env {
				env[k] = v
			}
			f := &fakePG{uid: 999, runErr: tt.runErr}
			var errOut bytes.Buffer
			code := pgEntrypoint(context.Background(), nil, envOf(env), io.Discard, &errOut, f.system(t.TempDir()))
			assert.Equal(t, 1, code)
			assert.Contains(t, errOut.String(), tt.wantErr)
			assert.Nil(t, f.exec, "the server is not started")
			assert.Empty(t, f.files)
		})
	}
}

func TestPGPrepareDirs(t *testing.T) {
	root := t.TempDir()
	data, sock := filepath.Join(root, "data"), filepath.Join(root, "run", "postgresql")
	require.NoError(t, pgPrepareDirs(os.Getuid(), os.Getgid(), data, sock))
	fi, err := os.Stat(data)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm())
	assert.DirExists(t, sock)
}

// A first start stopped halfway (an interrupted up) leaves its build
// folder: the next start removes what it left and builds again; files it
// did not make are refused, untouched.
func TestPGEntrypointAfterAnInterruptedFirstStart(t *testing.T) {
	data := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(data, pgBuildDir, "global"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(data, "postgresql.conf"), []byte("half moved"), 0o600))
	f := &fakePG{uid: 999}
	var out, errOut bytes.Buffer
	code := pgEntrypoint(context.Background(), nil, envOf(map[string]string{"PGDATA": data, "KTRDR_PG_BIN": "/pg/bin", "POSTGRES_PASSWORD": "pw"}), &out, &errOut, f.system(t.TempDir()))
	require.Equal(t, 0, code, errOut.String())
	assert.Contains(t, f.calls, "run initdb")
	assert.NoFileExists(t, filepath.Join(data, "postgresql.conf"), "what the stopped start left is gone")
	assert.FileExists(t, filepath.Join(data, "PG_VERSION"))

	foreign := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("mine"), 0o600))
	f = &fakePG{uid: 999}
	errOut.Reset()
	code = pgEntrypoint(context.Background(), nil, envOf(map[string]string{"PGDATA": foreign, "KTRDR_PG_BIN": "/pg/bin", "POSTGRES_PASSWORD": "pw"}), &out, &errOut, f.system(t.TempDir()))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut.String(), "holds files but no cluster")
	assert.FileExists(t, filepath.Join(foreign, "notes.txt"))
	assert.Nil(t, f.exec, "the server is not started")
}
