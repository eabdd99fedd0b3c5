package sandbox

import (
	"fmt"
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
