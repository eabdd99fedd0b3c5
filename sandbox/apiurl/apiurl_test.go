package apiurl

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox/envfile"
)

// envLike is a sandbox env file as the tool writes it, for slot.
func envLike(slot int) string {
	return fmt.Sprintf("# Written by the sandbox tool\nCOMPOSE_PROJECT_NAME=\"ktrdr--feat-a\"\nCREATED_AT=\"2026-11-30T10:00:00Z\"\nINSTANCE_ID=\"ktrdr--feat-a\"\nKTRDR_API_PORT=%d\nKTRDR_DB_PORT=%d\nKTRDR_SHARED_DIR=\"\"\nSANDBOX_VERSION=1\nSLOT_NUMBER=%d\n", 8000+slot, 5432+slot, slot)
}

// writeSandboxRoot makes a folder holding a slot-N .env.sandbox and returns it.
func writeSandboxRoot(t testing.TB, slot int) string {
	root := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, ".env.sandbox"), []byte(envLike(slot)), 0o644))
	return root
}

func TestResolvePrecedence(t *testing.T) {
	root := writeSandboxRoot(t, 2)
	envPath := filepath.Join(root, ".env.sandbox")
	deep := filepath.Join(root, "a", "b", "c")
	require.NoError(t, os.MkdirAll(deep, 0o755))
	outside := t.TempDir()
	t.Setenv("KTRDR_API_PORT", "9999") // must never matter
	t.Setenv("KTRDR_API_URL", "http://env.example:1")

	tests := []struct {
		name       string
		url        string
		port       int
		cwd        string
		want       string
		wantSource string
	}{
		{"url beats everything", "http://h:1234", 8005, deep, "http://h:1234", "explicit URL"},
		{"port beats the file", "", 8005, deep, "http://localhost:8005", "explicit port"},
		{"file in cwd", "", 0, root, "http://localhost:8002", "KTRDR_API_PORT in " + envPath},
		{"file three levels up", "", 0, deep, "http://localhost:8002", "KTRDR_API_PORT in " + envPath},
		{"no file: the main stack", "", 0, outside, "http://localhost:8000", "default: no .env.sandbox in " + outside + " or its parents"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.url, tt.port, tt.cwd)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			url, source, err := ResolveSource(tt.url, tt.port, tt.cwd)
			require.NoError(t, err)
			assert.Equal(t, got, url, "ResolveSource agrees with Resolve")
			assert.Equal(t, tt.wantSource, source)
		})
	}
}

func TestResolveOnAnotherEngine(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".env.sandbox"), []byte(envLike(3)+"SANDBOX_CONTEXT=\"big\"\nSANDBOX_HOST=\"10.251.1.2\"\n"), 0o644))
	got, err := Resolve("", 0, dir)
	require.NoError(t, err)
	assert.Equal(t, "http://10.251.1.2:8003", got)

	for _, h := range []string{"a b", "-x", "a..b", "h/p"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, ".env.sandbox"), []byte(envLike(3)+"SANDBOX_HOST=\""+h+"\"\n"), 0o644))
		_, err := Resolve("", 0, dir)
		var ee *envfile.Error
		require.ErrorAs(t, err, &ee, h)
		assert.Equal(t, "SANDBOX_HOST", ee.Key, h)
	}
}

func TestResolveBadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".env.sandbox")
	require.NoError(t, os.WriteFile(path, []byte("KTRDR_API_PORT=eighty\n"), 0o644))
	_, err := Resolve("", 0, dir)
	assert.ErrorContains(t, err, path)
	assert.ErrorContains(t, err, "KTRDR_API_PORT")
	_, _, err = ResolveSource("", 0, dir)
	assert.ErrorContains(t, err, path)

	require.NoError(t, os.WriteFile(path, []byte("SLOT_NUMBER=1\n"), 0o644))
	_, err = Resolve("", 0, dir)
	assert.ErrorIs(t, err, ErrNoPort)
	assert.ErrorContains(t, err, path)

	_, err = Resolve("", 70000, dir)
	assert.ErrorContains(t, err, "70000")

	// A folder named .env.sandbox is not a sandbox.
	odd := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(odd, ".env.sandbox"), 0o755))
	got, err := Resolve("", 0, odd)
	require.NoError(t, err)
	assert.Equal(t, "http://localhost:8000", got)
}

// The file that made the CLI and `up` disagree (issue 15): a quoted value
// and the next key on one line. godotenv read the port from it, the old
// resolver did not, compose read something else again. Now every reader
// refuses it, naming the line.
func TestResolveRefusesAFileTheReadersWouldReadDifferently(t *testing.T) {
	for _, content := range []string{
		"INSTANCE_ID=\"ktrdr--q1\"KTRDR_API_PORT=8001\n",
		"export KTRDR_API_PORT=8001\n",
		"KTRDR_API_PORT = 8001\n",
		"KTRDR_API_PORT=8001\r\n",
		"A=\"multi\nKTRDR_API_PORT=1\"\n",
		"B=7\nKTRDR_API_PORT=${B}\n",
		"KTRDR_API_PORT=8001\nKTRDR_API_PORT=8002\n",
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, ".env.sandbox")
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		_, err := Resolve("", 0, dir)
		var se *envfile.SyntaxError
		require.ErrorAs(t, err, &se, "%q", content)
		assert.ErrorContains(t, err, path)
	}
}

// Only the canonical form of a port is a port: what the tool writes.
func TestResolveRefusesNonCanonicalPorts(t *testing.T) {
	for _, v := range []string{"+8001", "08001", "0", "65536", "-1", "8_001", "0x1f41", "8001.0", "８００１", "99999999999999999999"} {
		t.Run(v, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, ".env.sandbox")
			require.NoError(t, os.WriteFile(path, []byte("KTRDR_API_PORT="+v+"\n"), 0o644))
			_, err := Resolve("", 0, dir)
			var ee *envfile.Error
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, path, ee.Path)
			assert.Equal(t, "KTRDR_API_PORT", ee.Key)
		})
	}
	for _, v := range []string{"1", "8001", "65535", `"8001"`, "'8001'", "8001 # the API"} {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, ".env.sandbox"), []byte("KTRDR_API_PORT="+v+"\n"), 0o644))
		got, err := Resolve("", 0, dir)
		require.NoError(t, err, v)
		assert.Regexp(t, `^http://localhost:\d+$`, got)
	}
}

// The search stops at the checkout's root, the folder holding .git (a
// folder in a clone, a file in a worktree); without one it goes to the top.
func TestResolveStopsAtTheCheckoutRoot(t *testing.T) {
	tests := []struct {
		name   string
		layout func(t *testing.T, top string) (cwd string) // top holds a slot-5 env file
		want   string
	}{
		{"above a clone's root", func(t *testing.T, top string) string {
			require.NoError(t, os.MkdirAll(filepath.Join(top, "repo", ".git"), 0o755))
			return filepath.Join(top, "repo")
		}, "http://localhost:8000"},
		{"above a clone's root, from below it", func(t *testing.T, top string) string {
			require.NoError(t, os.MkdirAll(filepath.Join(top, "repo", ".git"), 0o755))
			require.NoError(t, os.MkdirAll(filepath.Join(top, "repo", "a", "b"), 0o755))
			return filepath.Join(top, "repo", "a", "b")
		}, "http://localhost:8000"},
		{"above a worktree's root", func(t *testing.T, top string) string {
			require.NoError(t, os.MkdirAll(filepath.Join(top, "wt", "x"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(top, "wt", ".git"), []byte("gitdir: /elsewhere\n"), 0o644))
			return filepath.Join(top, "wt", "x")
		}, "http://localhost:8000"},
		{"at the checkout's root", func(t *testing.T, top string) string {
			require.NoError(t, os.MkdirAll(filepath.Join(top, ".git"), 0o755))
			require.NoError(t, os.MkdirAll(filepath.Join(top, "src"), 0o755))
			return filepath.Join(top, "src")
		}, "http://localhost:8005"},
		{"no checkout at all", func(t *testing.T, top string) string {
			require.NoError(t, os.MkdirAll(filepath.Join(top, "a", "b"), 0o755))
			return filepath.Join(top, "a", "b")
		}, "http://localhost:8005"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(top, ".env.sandbox"), []byte(envLike(5)), 0o644))
			cwd := tt.layout(t, top)
			got, err := Resolve("", 0, cwd)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			url, source, err := ResolveSource("", 0, cwd)
			require.NoError(t, err)
			assert.Equal(t, got, url)
			if tt.want == "http://localhost:8000" {
				assert.Contains(t, source, "up to the checkout's root")
			}
		})
	}
}

// An env file that is a symlink is refused: it could be another folder's.
func TestResolveRefusesASymlinkedEnvFile(t *testing.T) {
	other := writeSandboxRoot(t, 7)
	dir := t.TempDir()
	link := filepath.Join(dir, ".env.sandbox")
	require.NoError(t, os.Symlink(filepath.Join(other, ".env.sandbox"), link))
	_, err := Resolve("", 0, dir)
	var ee *envfile.Error
	require.ErrorAs(t, err, &ee)
	assert.ErrorIs(t, err, ErrSymlink)
	assert.Equal(t, link, ee.Path)
}

func ExampleResolve() {
	// In a sandbox checkout (slot 2), from any folder below its root:
	root, _ := os.MkdirTemp("", "ktrdr--feat-a")
	defer os.RemoveAll(root)
	_ = os.WriteFile(filepath.Join(root, ".env.sandbox"), []byte(envLike(2)), 0o644)
	sub := filepath.Join(root, "ktrdr", "cli")
	_ = os.MkdirAll(sub, 0o755)

	fromFile, _ := Resolve("", 0, sub)          // ktrdr operations list
	fromPort, _ := Resolve("", 8005, sub)       // ktrdr -p 8005 operations list
	fromURL, _ := Resolve("http://h:9", 0, sub) // ktrdr -u http://h:9 operations list
	mainStack, _ := Resolve("", 0, os.TempDir())
	fmt.Println(fromFile)
	fmt.Println(fromPort)
	fmt.Println(fromURL)
	fmt.Println(mainStack)
	// Output:
	// http://localhost:8002
	// http://localhost:8005
	// http://h:9
	// http://localhost:8000
}

// BenchmarkResolve is what every ktrdr CLI command pays to find its API:
//
//	go test -run '^$' -bench '^BenchmarkResolve$' -benchmem -count 5 ./sandbox/apiurl/
func BenchmarkResolve(b *testing.B) {
	root := writeSandboxRoot(b, 3)
	deep := filepath.Join(root, "a", "b", "c", "d", "e")
	require.NoError(b, os.MkdirAll(deep, 0o755))
	b.Run("five-below-sandbox-root", func(b *testing.B) {
		for b.Loop() {
			if _, err := Resolve("", 0, deep); err != nil {
				b.Fatal(err)
			}
		}
	})
	none := filepath.Join(b.TempDir(), "x", "y")
	require.NoError(b, os.MkdirAll(none, 0o755))
	b.Run("no-env-file-above", func(b *testing.B) {
		for b.Loop() {
			if _, err := Resolve("", 0, none); err != nil {
				b.Fatal(err)
			}
		}
	})
	checkout := b.TempDir()
	require.NoError(b, os.Mkdir(filepath.Join(checkout, ".git"), 0o755))
	inCheckout := filepath.Join(checkout, "p", "q", "r")
	require.NoError(b, os.MkdirAll(inCheckout, 0o755))
	b.Run("main-checkout-three-below-root", func(b *testing.B) {
		for b.Loop() {
			if _, err := Resolve("", 0, inCheckout); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzResolve: whatever the file holds, the resolver answers with the port
// the env file reader reads, or refuses with an error naming the file.
func FuzzResolve(f *testing.F) {
	f.Add([]byte(envLike(3)))
	f.Add([]byte("INSTANCE_ID=\"ktrdr--q1\"KTRDR_API_PORT=8001"))
	f.Add([]byte("KTRDR_API_PORT=8001 # c\nSANDBOX_HOST=h.example"))
	dir := f.TempDir()
	path := filepath.Join(dir, ".env.sandbox")
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(path, data, 0o644))
		url, err := Resolve("", 0, dir)
		vals, perr := envfile.Parse(data)
		if err != nil {
			assert.ErrorContains(t, err, path)
			return
		}
		require.NoError(t, perr, "the resolver accepted a file the reader refuses")
		port, ok := envfile.ParsePort(vals["KTRDR_API_PORT"])
		require.True(t, ok)
		assert.Contains(t, url, ":"+strconv.Itoa(port))
	})
}
