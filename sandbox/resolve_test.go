package sandbox

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeSandboxRoot makes a folder holding a slot-N .env.sandbox and returns it.
func writeSandboxRoot(t testing.TB, slot int) string {
	root := t.TempDir()
	p := KTRDR()
	require.NoError(t, p.WriteEnv(filepath.Join(root, p.EnvFile), p.NewEnv("feat-a", slot, "", time.Now(), false)))
	return root
}

func TestResolveAPIURLPrecedence(t *testing.T) {
	root := writeSandboxRoot(t, 2)
	deep := filepath.Join(root, "a", "b", "c")
	require.NoError(t, os.MkdirAll(deep, 0o755))
	outside := t.TempDir()
	t.Setenv("KTRDR_API_PORT", "9999") // must never matter
	t.Setenv("KTRDR_API_URL", "http://env.example:1")

	cases := []struct {
		name string
		url  string
		port int
		cwd  string
		want string
	}{
		{"url beats everything", "http://h:1234", 8005, deep, "http://h:1234"},
		{"port beats the file", "", 8005, deep, "http://localhost:8005"},
		{"file in cwd", "", 0, root, "http://localhost:8002"},
		{"file three levels up", "", 0, deep, "http://localhost:8002"},
		{"no file: the main stack", "", 0, outside, "http://localhost:8000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ResolveAPIURL(c.url, c.port, c.cwd)
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

func TestResolveAPIURLBadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".env.sandbox")
	require.NoError(t, os.WriteFile(path, []byte("KTRDR_API_PORT=eighty\n"), 0o644))
	_, err := ResolveAPIURL("", 0, dir)
	assert.ErrorContains(t, err, path)
	assert.ErrorContains(t, err, "KTRDR_API_PORT")
	_, err = ResolveAPIURL("", 70000, dir)
	assert.ErrorContains(t, err, "70000")
	// A folder named .env.sandbox is not a sandbox.
	odd := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(odd, ".env.sandbox"), 0o755))
	got, err := ResolveAPIURL("", 0, odd)
	require.NoError(t, err)
	assert.Equal(t, "http://localhost:8000", got)
}

// Only the canonical form of a port is a port: what the tool writes.
func TestResolveAPIURLRefusesNonCanonicalPorts(t *testing.T) {
	for _, v := range []string{"+8001", "08001", "0", "65536", "-1", "8_001", "0x1f41", "8001.0", "８００１", "99999999999999999999"} {
		t.Run(v, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, ".env.sandbox")
			require.NoError(t, os.WriteFile(path, []byte("KTRDR_API_PORT="+v+"\n"), 0o644))
			_, err := ResolveAPIURL("", 0, dir)
			var ee *EnvFileError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, path, ee.Path)
			assert.Equal(t, "KTRDR_API_PORT", ee.Key)
		})
	}
	for _, v := range []string{"1", "8001", "65535", `"8001"`, "'8001'", "8001 # the API"} {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, ".env.sandbox"), []byte("KTRDR_API_PORT="+v+"\n"), 0o644))
		_, err := ResolveAPIURL("", 0, dir)
		assert.NoError(t, err, v)
	}
}

// The search stops at the checkout's root, the folder holding .git (a
// folder in a clone, a file in a worktree); without one it goes to the top.
func TestResolveAPIURLStopsAtTheCheckoutRoot(t *testing.T) {
	p := KTRDR()
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
			require.NoError(t, p.WriteEnv(filepath.Join(top, p.EnvFile), p.NewEnv("outer", 5, "", time.Now(), false)))
			cwd := tt.layout(t, top)
			got, err := ResolveAPIURL("", 0, cwd)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			url, _, err := ResolveAPIURLSource("", 0, cwd)
			require.NoError(t, err)
			assert.Equal(t, got, url)
		})
	}
}

// An env file that is a symlink is refused: it could be another folder's.
func TestResolveAPIURLRefusesASymlinkedEnvFile(t *testing.T) {
	other := writeSandboxRoot(t, 7)
	dir := t.TempDir()
	link := filepath.Join(dir, ".env.sandbox")
	require.NoError(t, os.Symlink(filepath.Join(other, ".env.sandbox"), link))
	_, err := ResolveAPIURL("", 0, dir)
	var ee *EnvFileError
	require.ErrorAs(t, err, &ee)
	assert.ErrorIs(t, err, ErrEnvSymlink)
	assert.Equal(t, link, ee.Path)
	m := &Manager{Profile: KTRDR(), Home: t.TempDir(), Runner: &fakeRunner{}, Out: io.Discard, Now: time.Now}
	_, err = m.Status(t.Context(), dir)
	assert.ErrorIs(t, err, ErrEnvSymlink, "the lifecycle commands refuse it too")
}

func ExampleResolveAPIURL() {
	// In a sandbox checkout (slot 2), from any folder below its root:
	root, _ := os.MkdirTemp("", "ktrdr--feat-a")
	defer os.RemoveAll(root)
	p := KTRDR()
	_ = p.WriteEnv(filepath.Join(root, ".env.sandbox"), p.NewEnv("feat-a", 2, "", time.Now(), false))
	sub := filepath.Join(root, "ktrdr", "cli")
	_ = os.MkdirAll(sub, 0o755)

	fromFile, _ := ResolveAPIURL("", 0, sub)          // ktrdr operations list
	fromPort, _ := ResolveAPIURL("", 8005, sub)       // ktrdr -p 8005 operations list
	fromURL, _ := ResolveAPIURL("http://h:9", 0, sub) // ktrdr -u http://h:9 operations list
	mainStack, _ := ResolveAPIURL("", 0, os.TempDir())
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

func BenchmarkResolveAPIURL(b *testing.B) {
	root := writeSandboxRoot(b, 3)
	deep := filepath.Join(root, "1", "2", "3", "4", "5")
	require.NoError(b, os.MkdirAll(deep, 0o755))
	b.Run("five-below-sandbox-root", func(b *testing.B) {
		for b.Loop() {
			if _, err := ResolveAPIURL("", 0, deep); err != nil {
				b.Fatal(err)
			}
		}
	})
	none := filepath.Join(b.TempDir(), "a", "b", "c")
	require.NoError(b, os.MkdirAll(none, 0o755))
	b.Run("no-env-file-above", func(b *testing.B) {
		for b.Loop() {
			if _, err := ResolveAPIURL("", 0, none); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The main checkout: no env file, the search stops at the .git folder.
	checkout := b.TempDir()
	require.NoError(b, os.MkdirAll(filepath.Join(checkout, ".git"), 0o755))
	inCheckout := filepath.Join(checkout, "a", "b", "c")
	require.NoError(b, os.MkdirAll(inCheckout, 0o755))
	b.Run("main-checkout-three-below-root", func(b *testing.B) {
		for b.Loop() {
			if _, err := ResolveAPIURL("", 0, inCheckout); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzReadEnvKey checks the resolver's one-key fast path against a full
// godotenv parse of the same file: same value, same presence, same error.
func FuzzReadEnvKey(f *testing.F) {
	f.Add("KTRDR_API_PORT=8002\n")
	f.Add("A=\"multi\nKTRDR_API_PORT=1\"\nKTRDR_API_PORT=2\n")
	f.Add("export KTRDR_API_PORT = '8003' # c\n")
	f.Add("B=7\nKTRDR_API_PORT=${B}\n")
	f.Add("KTRDR_API_PORT: 8004\nKTRDR_API_PORT=8005\n")
	f.Add("KTRDR_API_PORTX=1\n")
	f.Add("KTRDR_API_PORT=+8002\n")
	f.Add("KTRDR_API_PORT=08002\n")
	path := filepath.Join(f.TempDir(), ".env.sandbox") // one file per worker, rewritten each time
	f.Fuzz(func(t *testing.T, content string) {
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		got, gotOK, gotErr := readEnvKey(path, "KTRDR_API_PORT")
		all, wantErr := godotenv.Read(path)
		if wantErr != nil {
			if gotErr == nil {
				// The fast path read fewer lines; that is only fine if it then agrees on the key.
				t.Skip("full parse fails elsewhere in the file")
			}
			return
		}
		require.NoError(t, gotErr)
		want, wantOK := all["KTRDR_API_PORT"]
		assert.Equal(t, wantOK, gotOK)
		assert.Equal(t, want, got)
	})
}

// Issue 16, attack 5: a .env.sandbox in a folder above the checkout was
// taken as the checkout's: the resolver printed its port and down ran
// compose with that folder's files.
func TestEnvFileAboveTheCheckoutIsNotItsOwn(t *testing.T) {
	e := lcSetup(t)
	p := KTRDR()
	require.NoError(t, p.WriteEnv(filepath.Join(e.dev, p.EnvFile), p.NewEnv("outside", 5, "", lcNow(), false)))
	lcWrite(t, filepath.Join(e.dev, p.SandboxCompose), "services: {}\n")
	sub := filepath.Join(e.main, "src", "pkg")
	require.NoError(t, os.MkdirAll(sub, 0o755))
	plain := filepath.Join(e.dev, "plain") // a worktree without an env file: .git is a file
	lcGit(t, e.main, "worktree", "add", "-q", "-b", "plain", plain)
	require.FileExists(t, filepath.Join(plain, ".git"))

	for _, dir := range []string{e.main, sub, plain} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			url, err := ResolveAPIURL("", 0, dir)
			require.NoError(t, err)
			assert.Equal(t, "http://localhost:8000", url)
			_, source, err := ResolveAPIURLSource("", 0, dir)
			require.NoError(t, err)
			assert.Contains(t, source, "up to the checkout's root")

			var ns *NotSandboxError
			_, err = e.m.Down(t.Context(), dir, true, nil)
			assert.ErrorAs(t, err, &ns)
			_, err = e.m.Status(t.Context(), dir)
			assert.ErrorAs(t, err, &ns)
			_, err = e.m.Destroy(t.Context(), DestroyOptions{Dir: dir})
			assert.ErrorAs(t, err, &ns)
		})
	}
	assert.Empty(t, e.r.composeCalls("down"), "no compose call for the outer folder's stack")
	// Outside any checkout, the nearest file still counts.
	url, err := ResolveAPIURL("", 0, filepath.Join(e.dev))
	require.NoError(t, err)
	assert.Equal(t, "http://localhost:8005", url)
}
