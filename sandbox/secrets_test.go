package sandbox

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	dbSecret  = "hunter2-db-pass"
	jwtSecret = "jwt secret value"
)

// writeSecrets writes the secrets file of m with mode perm.
func writeSecrets(t *testing.T, m *Manager, content string, perm fs.FileMode) string {
	t.Helper()
	path := m.Profile.SecretsPath(m.Home)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), perm))
	require.NoError(t, os.Chmod(path, perm))
	return path
}

// secretEnvFiles returns what each --env-file of a compose command holds,
// read while the command runs (a /dev/fd/N is its inherited file).
func secretEnvFiles(t *testing.T, c driver.Cmd) []string {
	var out []string
	for i := 0; i+1 < len(c.Args); i++ {
		if c.Args[i] != "--env-file" {
			continue
		}
		path := c.Args[i+1]
		if n, ok := strings.CutPrefix(path, "/dev/fd/"); ok {
			fd, err := strconv.Atoi(n)
			require.NoError(t, err)
			require.Less(t, fd-3, len(c.ExtraFiles), "the command inherits /dev/fd/%d", fd)
			data, err := io.ReadAll(io.NewSectionReader(c.ExtraFiles[fd-3], 0, 1<<20))
			require.NoError(t, err)
			out = append(out, string(data))
			continue
		}
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		out = append(out, string(data))
	}
	return out
}

// grepTree fails for every file under root that holds s.
func grepTree(t *testing.T, root, s string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || d.Name() == SecretsFileName {
			return err
		}
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.NotContains(t, string(data), s, "%s holds a secret", path)
		return nil
	}))
}

// Up reads the secrets file, gives compose the secrets as one more
// --env-file (and only that way), and writes them nowhere.
func TestUpPassesSecretsOnlyAsAnEnvFile(t *testing.T) {
	var mu sync.Mutex
	var seen [][]string // the env files of each compose command
	var composeCmds []driver.Cmd
	m, root, _ := upFixture(t, func(c driver.Cmd) ([]byte, error) {
		if c.Name == "docker" && len(c.Args) > 0 && c.Args[0] == "compose" {
			files := secretEnvFiles(t, c)
			mu.Lock()
			seen, composeCmds = append(seen, files), append(composeCmds, c)
			mu.Unlock()
		}
		return nil, nil
	})
	m.Home = t.TempDir()
	writeSecrets(t, m, "KTRDR_DB_PASSWORD="+dbSecret+"\nKTRDR_AUTH_JWT_SECRET=\""+jwtSecret+"\"\n", 0o600)
	t.Setenv("KTRDR_AUTH_JWT_SECRET", "from-the-shell")
	var out strings.Builder
	res, err := m.Up(t.Context(), UpOptions{Dir: root, NoWait: true, Output: &out})
	require.NoError(t, err)

	require.NotEmpty(t, seen)
	for i, files := range seen {
		require.Len(t, files, 2, "the secrets and the sandbox's env file: %v", composeCmds[i].Args)
		assert.Equal(t, "KTRDR_AUTH_JWT_SECRET=\""+jwtSecret+"\"\nKTRDR_DB_PASSWORD=\""+dbSecret+"\"\n", files[0])
		assert.Contains(t, files[1], "INSTANCE_ID=")
		c := composeCmds[i]
		assert.NotContains(t, strings.Join(c.Args, " "), dbSecret)
		for _, kv := range c.Env {
			assert.False(t, strings.HasPrefix(kv, "KTRDR_AUTH_JWT_SECRET="), "the shell's export does not shadow the secret")
		}
	}
	// The database URL holds the password: masked.
	found := false
	for _, u := range res.URLs {
		assert.NotContains(t, u.URL, dbSecret)
		found = found || strings.Contains(u.URL, ":***@")
	}
	assert.True(t, found, "the database URL shows *** for its password: %v", res.URLs)
	grepTree(t, m.Home, jwtSecret)
	grepTree(t, root, dbSecret)
	grepTree(t, root, jwtSecret)
	assert.NotContains(t, out.String(), dbSecret)

	// down passes them too (compose interpolates the file for it).
	seen = nil
	_, err = m.Down(t.Context(), DownOptions{Dir: root})
	require.NoError(t, err)
	require.Len(t, seen, 1)
	assert.Contains(t, seen[0][0], dbSecret)
}

// What compose says is masked in the error up returns, which still is a
// *ComposeError.
func TestUpMasksSecretsInComposeErrors(t *testing.T) {
	m, root, _ := upFixture(t, func(c driver.Cmd) ([]byte, error) {
		if slices.Contains(c.Args, "up") {
			return nil, &driver.ExitError{Cmd: "docker compose up", Code: 1, Stderr: "invalid value " + dbSecret + " for DB_PASSWORD"}
		}
		if slices.Contains(c.Args, "logs") {
			return []byte("connecting with " + dbSecret + "\n"), nil
		}
		return nil, nil
	})
	m.Home = t.TempDir()
	writeSecrets(t, m, "KTRDR_DB_PASSWORD="+dbSecret+"\n", 0o400)
	res, err := m.Up(t.Context(), UpOptions{Dir: root})
	var ce *ComposeError
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, err.Error(), "invalid value *** for DB_PASSWORD")
	for _, tail := range res.Logs {
		assert.NotContains(t, tail, dbSecret)
	}
}

func TestSecretsFileIsRefusedUnlessPrivate(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T, path string)
		reason  string
		fix     string
		vals    map[string]string
		missing bool
	}{
		{"missing", func(*testing.T, string) {}, "", "", nil, true},
		{"mode 0600", func(t *testing.T, path string) { write0(t, path, "A_KEY=hunter2\n", 0o600) }, "", "", map[string]string{"A_KEY": "hunter2"}, false},
		{"mode 0644", func(t *testing.T, path string) { write0(t, path, "A_KEY=hunter2\n", 0o644) }, "mode 0644", "chmod 600 ", nil, false},
		{"mode 0660", func(t *testing.T, path string) { write0(t, path, "A_KEY=hunter2\n", 0o660) }, "mode 0660", "chmod 600 ", nil, false},
		{"a symlink to a private file", func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "real.env")
			write0(t, target, "A_KEY=hunter2\n", 0o600)
			require.NoError(t, os.Symlink(target, path))
		}, "is a symlink", "replace the link", nil, false},
		{"a folder", func(t *testing.T, path string) { require.NoError(t, os.Mkdir(path, 0o700)) }, "not a regular file", "regular file", nil, false},
		{"a line that is no KEY=", func(t *testing.T, path string) { write0(t, path, "A_KEY=x\nhunter2-alone\n", 0o600) }, "line 2 does not start with KEY=", "KEY=value", nil, false},
		{"a key that is none", func(t *testing.T, path string) { write0(t, path, "hunter2 x=1\n", 0o600) }, "line 1 does not start with KEY=", "KEY=value", nil, false},
		{"a value outside the form", func(t *testing.T, path string) { write0(t, path, "A_KEY=hun$ter2\n", 0o600) }, "the value of A_KEY holds '$'", "KEY=value", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secrets.env")
			tt.make(t, path)
			vals, err := readSecretsFile(path)
			if tt.reason == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.vals, vals)
				return
			}
			var fe *SecretsFileError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, path, fe.Path)
			assert.Contains(t, fe.Reason, tt.reason)
			assert.Contains(t, fe.Fix, tt.fix)
			if strings.HasPrefix(tt.fix, "chmod") {
				assert.Equal(t, "chmod 600 "+path, fe.Fix)
			}
			assert.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func write0(t *testing.T, path, content string, perm fs.FileMode) {
	require.NoError(t, os.WriteFile(path, []byte(content), perm))
	require.NoError(t, os.Chmod(path, perm))
}

// secretsManager is a manager whose secrets command "vault" prints out
// (or fails with err).
func secretsManager(t *testing.T, out string, err error) (*Manager, *fakeRunner) {
	r := &fakeRunner{handle: func(c driver.Cmd) ([]byte, error) {
		if c.Name != "vault" {
			return nil, nil
		}
		if _, werr := io.WriteString(c.Stdout, out); werr != nil {
			return nil, errors.New("run vault: " + werr.Error())
		}
		return nil, err
	}}
	m := &Manager{Profile: KTRDR(), Home: t.TempDir(), Runner: r, SecretsCommand: []string{"vault", "get", "ktrdr"}}
	return m, r
}

func TestSecretsCommand(t *testing.T) {
	t.Run("its output, and the file wins", func(t *testing.T) {
		m, r := secretsManager(t, "JWT=from-vault\nAPI_KEY=key-from-vault\n", nil)
		writeSecrets(t, m, "JWT=local-override\n", 0o600)
		sec, err := m.loadSecrets(t.Context(), map[string]string{"INSTANCE_ID": "x"})
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"JWT": "local-override", "API_KEY": "key-from-vault"}, sec.vals)
		assert.Equal(t, []string{"vault get ktrdr"}, r.commands(), "run without a shell")
		assert.Equal(t, "a *** and ***", sec.Mask("a key-from-vault and local-override"))
	})
	t.Run("fails: its error output is masked", func(t *testing.T) {
		m, _ := secretsManager(t, "JWT=half-printed\n", &driver.ExitError{Cmd: "vault get ktrdr", Code: 3, Stderr: "cannot finish after JWT=half-printed; local is local-override"})
		writeSecrets(t, m, "OTHER=local-override\n", 0o600)
		_, err := m.loadSecrets(t.Context(), nil)
		var ce *SecretsCommandError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, 3, ce.ExitCode)
		assert.Equal(t, []string{"vault", "get", "ktrdr"}, ce.Argv)
		assert.NotContains(t, err.Error(), "half-printed")
		assert.NotContains(t, err.Error(), "local-override")
		assert.Contains(t, err.Error(), "failed with exit status 3: cannot finish after JWT=***; local is ***")
	})
	t.Run("prints too much", func(t *testing.T) {
		m, _ := secretsManager(t, strings.Repeat("A=b\n", SecretsMaxOutput/4+1), nil)
		_, err := m.loadSecrets(t.Context(), nil)
		var ce *SecretsCommandError
		require.ErrorAs(t, err, &ce)
		assert.Contains(t, ce.Reason, "printed more than")
	})
	t.Run("prints something else", func(t *testing.T) {
		m, _ := secretsManager(t, "{\"jwt\": \"hunter2-json\"}\n", nil)
		_, err := m.loadSecrets(t.Context(), nil)
		var ce *SecretsCommandError
		require.ErrorAs(t, err, &ce)
		assert.Contains(t, ce.Reason, "line 1 does not start with KEY=")
		assert.NotContains(t, err.Error(), "hunter2")
	})
	t.Run("sets what the env file decides", func(t *testing.T) {
		m, _ := secretsManager(t, "KTRDR_API_PORT=1\n", nil)
		_, err := m.loadSecrets(t.Context(), map[string]string{"KTRDR_API_PORT": "8001"})
		var ce *SecretsCommandError
		require.ErrorAs(t, err, &ce)
		assert.Contains(t, err.Error(), "KTRDR_API_PORT")
	})
	t.Run("the file sets a compose setting", func(t *testing.T) {
		m := &Manager{Profile: KTRDR(), Home: t.TempDir(), Runner: &fakeRunner{}}
		path := writeSecrets(t, m, "COMPOSE_PROFILES=all\n", 0o600)
		_, err := m.loadSecrets(t.Context(), nil)
		var fe *SecretsFileError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, "remove COMPOSE_PROFILES from "+path, fe.Fix)
	})
	t.Run("neither", func(t *testing.T) {
		m := &Manager{Profile: KTRDR(), Home: t.TempDir(), Runner: &fakeRunner{}}
		sec, err := m.loadSecrets(t.Context(), nil)
		require.NoError(t, err)
		assert.Nil(t, sec)
		assert.Equal(t, "x", sec.Mask("x"))
		require.NoError(t, sec.MaskError(nil))
	})
}

func TestValidateSecretsCommand(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		ok   bool
	}{
		{nil, true},
		{[]string{"op", "inject", "-i", "/home/me/t.tpl"}, true},
		{[]string{"/usr/bin/sops", "-d", "x"}, true},
		{[]string{}, false},
		{[]string{""}, false},
		{[]string{"./bin/op"}, false},
	} {
		err := ValidateSecretsCommand(tc.argv)
		assert.Equal(t, tc.ok, err == nil, "%q: %v", tc.argv, err)
	}
}

func TestMaskingWriterMasksAcrossWrites(t *testing.T) {
	var out strings.Builder
	mw := &maskingWriter{w: &out, s: newSecrets(map[string]string{"K": "hunter2"})}
	for _, p := range []string{"a hun", "ter2 b\nc hunter", "2"} {
		_, err := io.WriteString(mw, p)
		require.NoError(t, err)
	}
	mw.Flush()
	assert.Equal(t, "a *** b\nc ***", out.String())
}
