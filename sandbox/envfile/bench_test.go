package envfile

import (
	"fmt"
	"testing"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"
)

// benchFile is a sandbox env file as the tool writes it (slot 3, every key
// of the ktrdr profile's kind).
func benchFile(b *testing.B) []byte {
	vals := map[string]string{
		"INSTANCE_ID": "ktrdr--feat-a", "COMPOSE_PROJECT_NAME": "ktrdr--feat-a", "SLOT_NUMBER": "3",
		"CREATED_AT": "2026-11-30T10:00:00Z", "SANDBOX_VERSION": "1", "KTRDR_SHARED_DIR": "/home/me/.ktrdr/shared",
		"KTRDR_DATA_DIR": "/home/me/.ktrdr/shared/data", "KTRDR_MODELS_DIR": "/home/me/.ktrdr/shared/models",
		"KTRDR_STRATEGIES_DIR": "/home/me/.ktrdr/shared/strategies",
	}
	for i, k := range []string{"API", "DB", "GRAFANA", "JAEGER_UI", "JAEGER_OTLP_GRPC", "JAEGER_OTLP_HTTP", "PROMETHEUS", "WORKER_1", "WORKER_2", "WORKER_3", "WORKER_4"} {
		vals["KTRDR_"+k+"_PORT"] = fmt.Sprint(8003 + 10*i)
	}
	data, err := Marshal("# Written by the sandbox tool: this sandbox's identity and ports. Do not edit while its stack runs.\n", vals)
	require.NoError(b, err)
	return data
}

// BenchmarkParse is this package's parse of a sandbox env file: what the
// resolver and every command pay per read. BenchmarkGodotenvFullParse is
// godotenv's parse of the same bytes, for comparison.
//
//	go test -run '^$' -bench 'Parse$' -benchmem -count 5 ./sandbox/envfile/
func BenchmarkParse(b *testing.B) {
	data := benchFile(b)
	vals, err := Parse(data)
	require.NoError(b, err)
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "file-bytes")
	b.ReportMetric(float64(len(vals)), "keys")
}

func BenchmarkGodotenvFullParse(b *testing.B) {
	data := benchFile(b)
	vals, err := godotenv.UnmarshalBytes(data)
	require.NoError(b, err)
	for b.Loop() {
		if _, err := godotenv.UnmarshalBytes(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "file-bytes")
	b.ReportMetric(float64(len(vals)), "keys")
}
