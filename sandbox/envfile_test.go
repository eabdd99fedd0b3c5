package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox/envfile"
)

func TestEnvRoundTrip(t *testing.T) {
	p := KTRDR()
	dir := t.TempDir()
	path := filepath.Join(dir, ".env.sandbox")
	now := time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC)
	e := p.NewEnv("feat-a", 2, "/home/u/.ktrdr/shared", now, true)
	e.Extra = map[string]string{"MY_NOTE": "kept, with spaces"}
	require.NoError(t, p.WriteEnv(path, e))

	got, err := p.ReadEnv(path)
	require.NoError(t, err)
	assert.Equal(t, e, got)

	vals, err := envfile.Read(path)
	require.NoError(t, err)
	for _, k := range []string{"INSTANCE_ID", "COMPOSE_PROJECT_NAME", "SLOT_NUMBER", "KTRDR_SHARED_DIR", "CREATED_AT", "SANDBOX_VERSION",
		"KTRDR_DATA_DIR", "KTRDR_MODELS_DIR", "KTRDR_STRATEGIES_DIR"} {
		assert.Contains(t, vals, k)
	}
	assert.Equal(t, "ktrdr--feat-a", vals["COMPOSE_PROJECT_NAME"])
	assert.Equal(t, "8002", vals["KTRDR_API_PORT"])
	assert.Equal(t, "4337", vals["KTRDR_JAEGER_OTLP_GRPC_PORT"])
	assert.Equal(t, "2026-11-28T10:30:00Z", vals["CREATED_AT"])
	assert.Equal(t, "/home/u/.ktrdr/shared/data", vals["KTRDR_DATA_DIR"])
	assert.Equal(t, "ktrdr-standin:dev", vals["KTRDR_BACKEND_IMAGE"])
	assert.Equal(t, "ktrdr-postgres:dev", vals["KTRDR_DB_IMAGE"], "the database is a real PostgreSQL")

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")

	// A file the previous version wrote (with godotenv) reads the same.
	old, err := godotenv.Marshal(p.Values(e))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte("# Written by the sandbox tool\n"+old+"\n"), 0o644))
	got, err = p.ReadEnv(path)
	require.NoError(t, err)
	assert.Equal(t, e, got)
}

// A value no reader would read alike is refused when written, not later.
func TestWriteEnvRefusesValuesTheFileCannotHold(t *testing.T) {
	p := KTRDR()
	path := filepath.Join(t.TempDir(), ".env.sandbox")
	err := p.WriteEnv(path, p.NewEnv("feat-a", 1, "/home/$USER/shared", time.Now(), false))
	var ve *envfile.ValueError
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, ve.Value, "$USER")
	assert.NoFileExists(t, path)
}

func TestEnvWithoutSharedRootFallsBack(t *testing.T) {
	p := KTRDR()
	vals := p.Values(p.NewEnv("x", 1, "", time.Now(), false))
	assert.Equal(t, "./data", vals["KTRDR_DATA_DIR"])
	assert.NotContains(t, vals, "KTRDR_BACKEND_IMAGE", "real images unless -standin")
}

func TestReadEnvErrors(t *testing.T) {
	p := KTRDR()
	good := p.Values(p.NewEnv("feat-a", 1, "", time.Now(), false))
	cases := []struct {
		name, key string
		mutate    func(map[string]string)
	}{
		{"missing API port", "KTRDR_API_PORT", func(m map[string]string) { delete(m, "KTRDR_API_PORT") }},
		{"port not a number", "KTRDR_API_PORT", func(m map[string]string) { m["KTRDR_API_PORT"] = "80a0" }},
		{"port out of range", "KTRDR_WORKER_PORT_2", func(m map[string]string) { m["KTRDR_WORKER_PORT_2"] = "70000" }},
		{"missing id", "INSTANCE_ID", func(m map[string]string) { delete(m, "INSTANCE_ID") }},
		{"id of the main stack", "INSTANCE_ID", func(m map[string]string) { m["INSTANCE_ID"], m["COMPOSE_PROJECT_NAME"] = "ktrdr2", "ktrdr2" }},
		{"id with a hostile name", "INSTANCE_ID", func(m map[string]string) { m["INSTANCE_ID"] = "ktrdr--../x" }},
		{"project differs from id", "COMPOSE_PROJECT_NAME", func(m map[string]string) { m["COMPOSE_PROJECT_NAME"] = "other" }},
		// godotenv.Marshal writes numbers canonically: these are written raw (see below).
		{"port with a sign", "KTRDR_API_PORT", func(m map[string]string) { m["KTRDR_API_PORT"] = "+8001" }},
		{"port with a leading zero", "KTRDR_API_PORT", func(m map[string]string) { m["KTRDR_API_PORT"] = "08001" }},
		{"port with a space", "KTRDR_DB_PORT", func(m map[string]string) { m["KTRDR_DB_PORT"] = "' 5433'" }},
		{"port zero", "KTRDR_DB_PORT", func(m map[string]string) { m["KTRDR_DB_PORT"] = "0" }},
		{"bad slot", "SLOT_NUMBER", func(m map[string]string) { m["SLOT_NUMBER"] = "two" }},
		{"slot with a sign", "SLOT_NUMBER", func(m map[string]string) { m["SLOT_NUMBER"] = "+1" }},
		{"slot with a leading zero", "SLOT_NUMBER", func(m map[string]string) { m["SLOT_NUMBER"] = "01" }},
		{"negative slot", "SLOT_NUMBER", func(m map[string]string) { m["SLOT_NUMBER"] = "-1" }},
		{"unknown version", "SANDBOX_VERSION", func(m map[string]string) { m["SANDBOX_VERSION"] = "9" }},
		{"bad time", "CREATED_AT", func(m map[string]string) { m["CREATED_AT"] = "yesterday" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := map[string]string{}
			for k, v := range good {
				m[k] = v
			}
			c.mutate(m)
			path := filepath.Join(t.TempDir(), ".env.sandbox")
			raw := m[c.key]
			delete(m, c.key)
			data, err := envfile.Marshal("", m)
			require.NoError(t, err)
			content := string(data)
			if raw != "" { // as is, not re-formatted by Marshal
				content += "\n" + c.key + "=" + raw
			}
			require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
			_, err = p.ReadEnv(path)
			var ee *EnvFileError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, c.key, ee.Key)
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), c.key)
		})
	}
	_, err := p.ReadEnv(filepath.Join(t.TempDir(), "nope"))
	assert.ErrorContains(t, err, "nope")
}

func TestWriteFileAtomicKeepsOldContentOnFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	require.NoError(t, os.Chmod(dir, 0o555))
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	if os.Geteuid() == 0 {
		// root ignores the folder's mode: simulate the failure with a path whose folder is a file.
		require.NoError(t, os.Chmod(dir, 0o755))
		err := WriteFileAtomic(filepath.Join(path, "inner"), []byte("new"), 0o644)
		assert.Error(t, err)
	} else {
		assert.Error(t, WriteFileAtomic(path, []byte("new"), 0o644))
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "old", string(b))
}

func FuzzReadEnv(f *testing.F) {
	p := KTRDR()
	data, _ := envfile.Marshal("", p.Values(p.NewEnv("feat-a", 3, "/s", time.Unix(0, 0), true)))
	good := string(data)
	f.Add(good)
	f.Add("INSTANCE_ID=\"ktrdr--q1\"KTRDR_API_PORT=8001")
	f.Add("INSTANCE_ID=x\nKTRDR_API_PORT='8001\n")
	f.Add("export A=\"b\\\"c\"\n# c\nB=${A}\n")
	f.Add(strings.Repeat("=", 100))
	f.Add(strings.Replace(good, "KTRDR_API_PORT=8003", "KTRDR_API_PORT=+8003", 1))
	f.Add(strings.Replace(good, "KTRDR_API_PORT=8003", "KTRDR_API_PORT=08003", 1))
	f.Add(strings.Replace(good, "SLOT_NUMBER=3", "SLOT_NUMBER=03", 1))
	path := filepath.Join(f.TempDir(), ".env.sandbox") // one file per worker, rewritten each time
	f.Fuzz(func(t *testing.T, content string) {
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		e, err := p.ReadEnv(path)
		if err != nil {
			return
		}
		// Whatever parses must be usable: an id, a slot, the API port, and
		// every port it read in range. Only the API port is required: the
		// other keys are those of the stack file the sandbox was made from
		// (up adds a key the file gained since).
		require.NotEmpty(t, e.InstanceID)
		require.Contains(t, e.Ports, p.APIPortKey)
		for k, port := range e.Ports {
			require.True(t, port >= 1 && port <= 65535, "%s=%d", k, port)
		}
		// Numbers are canonical: they read back exactly as they are written,
		// and no port key of the profile that the file holds is left unread.
		vals, err := envfile.Read(path)
		require.NoError(t, err)
		require.Equal(t, vals[KeySlot], strconv.Itoa(e.Slot))
		for k, port := range e.Ports {
			require.Equal(t, vals[k], strconv.Itoa(port), k)
		}
		for _, r := range p.Ports {
			if _, ok := vals[r.Key]; ok {
				require.Contains(t, e.Ports, r.Key)
			}
		}
		url, err := p.Resolver().Resolve("", 0, filepath.Dir(path))
		if err != nil {
			t.Fatalf("resolver refused a file ReadEnv accepted: %v", err)
		}
		require.Equal(t, "http://localhost:"+strconv.Itoa(e.Ports[p.APIPortKey]), url, "resolver and ReadEnv agree")
	})
}
