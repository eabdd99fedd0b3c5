package sandbox_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"github.com/ktrdr/sandboxkit/sandbox"
	"github.com/stretchr/testify/require"
)

// BenchmarkGodotenvFullParse is the cost that the resolver's one-key fast
// path avoids: a full godotenv parse of the same kind of file
// BenchmarkResolveAPIURL reads (a new sandbox's .env.sandbox in slot 3).
// It reports the file's size and number of keys with the time.
//
//	go test -run '^$' -bench GodotenvFullParse -benchmem -count=5 ./sandbox/
func BenchmarkGodotenvFullParse(b *testing.B) {
	p := sandbox.KTRDR()
	path := filepath.Join(b.TempDir(), p.EnvFile)
	require.NoError(b, p.WriteEnv(path, p.NewEnv("feat-a", 3, "", time.Now(), false)))
	data, err := os.ReadFile(path)
	require.NoError(b, err)
	vals, err := godotenv.Read(path)
	require.NoError(b, err)
	require.Contains(b, vals, "KTRDR_API_PORT")
	b.ResetTimer()
	for b.Loop() {
		if _, err := godotenv.Read(path); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "file-bytes")
	b.ReportMetric(float64(len(vals)), "keys")
}
