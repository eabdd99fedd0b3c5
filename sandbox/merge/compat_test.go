package merge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const dbHealthcheck = `    healthcheck:
      test: ["CMD", "pg_isready", "-U", "ktrdr", "-d", "ktrdr"]
      interval: 2s
      timeout: 3s
      retries: 30
`

const backendBuild = `  backend:
    build:
      context: ./backend
      dockerfile: Dockerfile.dev
      target: dev
      args:
        PYTHON: "3.12"
`

// toolsService adds a service behind a profile to both files.
const toolsService = `
  tools:
    image: ktrdr-tools:dev
    command: ["python", "-m", "tools.shell"]
    profiles: [tools]

volumes:
`

// mutation is one edit of the sandbox file used as the merge source.
type mutation struct {
	name     string
	base     [2]string // applied to the pre-merge file and the source alike
	old, new string    // then applied to the source only
	// the difference the report must name
	service, field   string
	wantOld, wantNew string
	accept           []string // what accepts every difference it makes
	broken           string   // accepted or not, the main stack would not start: the reason
}

// mutations change how the main stack runs in one field each; the first
// seven are the ones issue 13 found accepted.
var mutations = []mutation{
	{name: "issue 13: db image", old: "image: ${KTRDR_DB_IMAGE:-timescale/timescaledb:latest-pg16}", new: "image: postgres:9.6",
		service: "db", field: "image", wantOld: "timescale/timescaledb:latest-pg16", wantNew: "postgres:9.6"},
	{name: "issue 13: backend behind a profile", old: "  backend:\n", new: "  backend:\n    profiles: [full]\n",
		service: "backend", field: "profiles", wantOld: none, wantNew: "[full]",
		broken: `docker compose up would refuse the main stack: load ./docker-compose.yml: service "`},
	{name: "issue 13: POSTGRES_PASSWORD default", old: "POSTGRES_PASSWORD: ${KTRDR_DB_PASSWORD:-localdev}", new: "POSTGRES_PASSWORD: ${KTRDR_DB_PASSWORD:-changed}",
		service: "db", field: "environment", wantOld: "POSTGRES_PASSWORD=localdev", wantNew: "POSTGRES_PASSWORD=changed"},
	{name: "issue 13: db healthcheck removed", old: dbHealthcheck, new: "",
		service: "db", field: "healthcheck", wantOld: `test=["CMD","pg_isready","-U","ktrdr","-d","ktrdr"] interval=2s timeout=3s retries=30`, wantNew: none},
	{name: "issue 13: top-level name", old: "x-sandbox-labels:", new: "name: renamed\n\nx-sandbox-labels:",
		field: "name", wantOld: "ktrdr", wantNew: "renamed", accept: []string{"name", "volumes", "networks"}},
	{name: "issue 13: worker command", old: `"--port", "5003"]`, new: `"--port", "5003", "--workers", "2"]`,
		service: "backtest-worker-1", field: "command", wantOld: `"5003"]`, wantNew: `"--workers","2"]`},
	{name: "issue 13: env value DB_HOST", old: "  DB_HOST: db\n", new: "  DB_HOST: database\n",
		service: "backend", field: "environment", wantOld: "DB_HOST=db", wantNew: "DB_HOST=database", accept: []string{"*.environment"}},

	{name: "build added", old: "  backend:\n", new: backendBuild,
		service: "backend", field: "build", wantOld: none, wantNew: "context=./backend dockerfile=Dockerfile.dev target=dev args=[PYTHON=3.12]"},
	{name: "build context", base: [2]string{"  backend:\n", backendBuild}, old: "context: ./backend", new: "context: ./api",
		service: "backend", field: "build", wantOld: "context=./backend ", wantNew: "context=./api "},
	{name: "build dockerfile", base: [2]string{"  backend:\n", backendBuild}, old: "Dockerfile.dev", new: "Dockerfile",
		service: "backend", field: "build", wantOld: "dockerfile=Dockerfile.dev", wantNew: "dockerfile=Dockerfile "},
	{name: "build target", base: [2]string{"  backend:\n", backendBuild}, old: "target: dev", new: "target: prod",
		service: "backend", field: "build", wantOld: "target=dev", wantNew: "target=prod"},
	{name: "build args", base: [2]string{"  backend:\n", backendBuild}, old: `PYTHON: "3.12"`, new: `PYTHON: "3.9"`,
		service: "backend", field: "build", wantOld: "args=[PYTHON=3.12]", wantNew: "args=[PYTHON=3.9]"},
	{name: "entrypoint", old: "  backend:\n", new: "  backend:\n    entrypoint: [\"/bin/sh\", \"-c\"]\n",
		service: "backend", field: "entrypoint", wantOld: "(the image's)", wantNew: `["/bin/sh","-c"]`},
	{name: "env_file", old: "  backend:\n", new: "  backend:\n    env_file: [backend.env]\n",
		service: "backend", field: "env_file", wantOld: none, wantNew: "./backend.env"},
	{name: "depends_on condition", old: "condition: service_healthy", new: "condition: service_started",
		service: "backend", field: "depends_on", wantOld: "db (service_healthy)", wantNew: "db (service_started)"},
	{name: "port bound to localhost", old: `"${KTRDR_DB_PORT:-5432}:5432"`, new: `"127.0.0.1:${KTRDR_DB_PORT:-5432}:5432"`,
		service: "db", field: "ports", wantOld: "[5432:5432/tcp]", wantNew: "[127.0.0.1:5432:5432/tcp]"},
	{name: "mount read-only", old: "${KTRDR_STRATEGIES_DIR:-./strategies}:/app/strategies", new: "${KTRDR_STRATEGIES_DIR:-./strategies}:/app/strategies:ro",
		service: "backend", field: "volumes", wantOld: "bind ./strategies:/app/strategies", wantNew: "bind ./strategies:/app/strategies:ro", accept: []string{"*.volumes"}},
	{name: "service network alias", old: "  backend:\n", new: "  backend:\n    networks:\n      default:\n        aliases: [api]\n",
		service: "backend", field: "networks", wantOld: "default", wantNew: `default {"aliases":["api"]}`},
	{name: "restart", old: "  db:\n", new: "  db:\n    restart: unless-stopped\n",
		service: "db", field: "restart", wantOld: none, wantNew: "unless-stopped"},
	{name: "user", old: "  backend:\n", new: "  backend:\n    user: \"1000:1000\"\n",
		service: "backend", field: "user", wantOld: none, wantNew: "1000:1000"},
	{name: "working_dir", old: "  backend:\n", new: "  backend:\n    working_dir: /srv\n",
		service: "backend", field: "working_dir", wantOld: none, wantNew: "/srv"},
	{name: "extra_hosts", old: "  backend:\n", new: "  backend:\n    extra_hosts: [\"host.docker.internal:host-gateway\"]\n",
		service: "backend", field: "extra_hosts", wantOld: none, wantNew: "host.docker.internal=host-gateway"},
	{name: "a label of its own", old: "  db:\n    image: ${KTRDR_DB_IMAGE:-timescale/timescaledb:latest-pg16}\n    labels: *sandbox-labels\n",
		new:     "  db:\n    image: ${KTRDR_DB_IMAGE:-timescale/timescaledb:latest-pg16}\n    labels:\n      <<: *sandbox-labels\n      com.example.team: data\n",
		service: "db", field: "labels", wantOld: none, wantNew: "com.example.team=data"},
	{name: "another key (privileged)", old: "  backend:\n", new: "  backend:\n    privileged: true\n",
		service: "backend", field: "privileged", wantOld: none, wantNew: "true"},
	{name: "service added", old: "\nvolumes:\n", new: "\n  adminer:\n    image: adminer\n\nvolumes:\n",
		service: "adminer", field: "service", wantOld: none, wantNew: "defined"},
	{name: "top-level volume name", old: "  postgres_data:\n  prometheus_data:", new: "  postgres_data:\n    name: pgdata\n  prometheus_data:",
		field: "volumes", wantOld: "postgres_data (name ktrdr_postgres_data)", wantNew: "postgres_data (name pgdata)"},
	{name: "top-level volume external", old: "  postgres_data:\n  prometheus_data:", new: "  postgres_data:\n    external: true\n  prometheus_data:",
		field: "volumes", wantOld: "postgres_data (name ktrdr_postgres_data)", wantNew: "postgres_data (name postgres_data, external)"},
	{name: "a service behind a profile added", old: "\nvolumes:\n", new: "\n  debug:\n    image: busybox\n    profiles: [debug]\n\nvolumes:\n",
		service: "debug", field: "service", wantOld: none, wantNew: "defined (profiles [debug])"},

	// A service behind a profile, in both files, is compared field by
	// field like any other: it runs in the main checkout as soon as
	// someone enables its profile.
	{name: "profile-only service becomes privileged", base: [2]string{"\nvolumes:\n", toolsService}, old: "    profiles: [tools]\n", new: "    profiles: [tools]\n    privileged: true\n",
		service: "tools", field: "privileged", wantOld: none, wantNew: "true"},
	{name: "profile-only service mounts /", base: [2]string{"\nvolumes:\n", toolsService}, old: "    profiles: [tools]\n", new: "    profiles: [tools]\n    volumes: [\"/:/host\"]\n",
		service: "tools", field: "volumes", wantOld: none, wantNew: "bind /:/host"},
	{name: "profile-only service changes its image", base: [2]string{"\nvolumes:\n", toolsService}, old: "image: ktrdr-tools:dev", new: "image: evil/tools:latest",
		service: "tools", field: "image", wantOld: "ktrdr-tools:dev", wantNew: "evil/tools:latest"},
	{name: "profile-only service leaves its profile", base: [2]string{"\nvolumes:\n", toolsService}, old: "    profiles: [tools]\n", new: "",
		service: "tools", field: "profiles", wantOld: "[tools]", wantNew: none},
	{name: "top-level network", old: "\nvolumes:\n", new: "\nnetworks:\n  default:\n    name: shared-net\n\nvolumes:\n",
		field: "networks", wantOld: "default (name ktrdr_default)", wantNew: "default (name shared-net)"},
}

// compatRepo is a checkout like a fresh clone of this project: its
// docker-compose.yml is the merged file of the repository (with base
// applied), and it returns a merge source with base and the mutation.
func compatRepo(t *testing.T, m mutation) (dir, from string, pre []byte) {
	t.Helper()
	edit := func(s, old, new string) string {
		require.Contains(t, s, old, "the compose files changed: update this test")
		return strings.Replace(s, old, new, 1)
	}
	main := string(readT(t, "../../docker-compose.yml"))
	src := string(readT(t, "../../docker-compose.sandbox.yml"))
	if m.base[0] != "" {
		main, src = edit(main, m.base[0], m.base[1]), edit(src, m.base[0], m.base[1])
	}
	if m.old != "" {
		src = edit(src, m.old, m.new)
	}
	dir = newRepoWith(t, []byte(main))
	from = filepath.Join(t.TempDir(), "source.yml")
	require.NoError(t, os.WriteFile(from, []byte(src), 0o644))
	return dir, from, []byte(main)
}

// TestApplyRefusesEveryChangeToTheMainStack: each mutation is refused with
// a report that names service, field, old and new value, and leaves
// nothing behind; accepted by name it applies, verifies, and rolls back
// byte for byte.
func TestApplyRefusesEveryChangeToTheMainStack(t *testing.T) {
	t.Parallel()
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			key := m.field
			if m.service != "" {
				key = m.service + "." + m.field
			}

			dir, from, pre := compatRepo(t, m)
			o := opts(dir)
			o.From = from
			res, err := Apply(t.Context(), o)
			var ve *VerifyError
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, NothingWritten, ve.Outcome)
			it, ok := itemNamed(res.Report, ItemCompatible)
			require.True(t, ok)
			assert.False(t, it.OK)
			found := false
			for _, d := range res.Report.Unaccepted() {
				if d.Service == m.service && d.Field == m.field && strings.Contains(d.Old, m.wantOld) && strings.Contains(d.New, m.wantNew) {
					found = true
					assert.Contains(t, it.Reason, d.String())
					assert.Contains(t, err.Error(), key+": "+d.Old+" → "+d.New)
				}
			}
			assert.True(t, found, "no difference %s: %s → %s in\n%s", key, m.wantOld, m.wantNew, it.Reason)
			for _, other := range res.Report.Items {
				if !strings.HasPrefix(other.Name, ItemCompatible) {
					assert.True(t, other.OK, "only the compatibility item fails: %s", other)
				}
			}
			assertNothingLeft(t, dir, pre)

			// Accepted by name: applied, verified (the state knows what was
			// accepted), rolled back byte for byte.
			o.Accept = m.accept
			if o.Accept == nil {
				o.Accept = []string{key}
			}
			res, err = Apply(t.Context(), o)
			if m.broken != "" {
				require.ErrorAs(t, err, &ve)
				assert.Empty(t, res.Report.Unaccepted())
				assert.Contains(t, err.Error(), m.broken)
				assert.Contains(t, err.Error(), `depends on undefined service "backend"`)
				assertNothingLeft(t, dir, pre)
				return
			}
			require.NoError(t, err, "%v", res.Report.Items)
			assert.Empty(t, res.Report.Unaccepted())
			rep, err := Verify(t.Context(), opts(dir))
			require.NoError(t, err)
			assert.True(t, rep.OK(), "%v", rep.Items)
			rb, err := Rollback(t.Context(), opts(dir))
			require.NoError(t, err)
			assert.Equal(t, RestoredFromBackup, rb.Action)
			assert.Equal(t, pre, readT(t, filepath.Join(dir, "docker-compose.yml")))
		})
	}
}

// Changes that do not change how the main stack runs pass without -accept:
// the suite's own instance label, comments, the order of keys.
func TestApplyAcceptsWhatDoesNotChangeTheMainStack(t *testing.T) {
	t.Parallel()
	tests := []mutation{
		{name: "unchanged", old: "", new: ""},
		{name: "instance label default", old: "${INSTANCE_ID:-main}", new: "${INSTANCE_ID:-elsewhere}"},
		{name: "comment", old: "# One ktrdr stack", new: "# The ktrdr stack"},
		{name: "key order", old: "    image: ${KTRDR_JAEGER_IMAGE:-jaegertracing/all-in-one:1.53}\n    labels: *sandbox-labels\n",
			new: "    labels: *sandbox-labels\n    image: ${KTRDR_JAEGER_IMAGE:-jaegertracing/all-in-one:1.53}\n"},
	}
	for _, m := range tests {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			dir, from, _ := compatRepo(t, m)
			o := opts(dir)
			o.From = from
			res, err := Apply(t.Context(), o)
			require.NoError(t, err, "%v", res.Report.Items)
			assert.Empty(t, res.Report.Differences)
		})
	}
}

func TestAcceptMustMatchADifference(t *testing.T) {
	t.Parallel()
	dir, from, pre := compatRepo(t, mutations[0]) // db image
	o := opts(dir)
	o.From = from
	o.Accept = []string{"db.image", "dbb.image", "*.user"}
	res, err := Apply(t.Context(), o)
	var ve *VerifyError
	require.ErrorAs(t, err, &ve)
	it, _ := itemNamed(res.Report, ItemCompatible)
	assert.Contains(t, it.Reason, "-accept dbb.image: no such difference")
	assert.Contains(t, it.Reason, "-accept *.user: no such difference")
	assert.NotContains(t, it.Reason, "-accept db.image")
	assertNothingLeft(t, dir, pre)
}

func TestParseAccept(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"", nil, ""},
		{"db.image", []string{"db.image"}, ""},
		{" db.image , *.environment,name,,db.image ", []string{"db.image", "*.environment", "name"}, ""},
		{"my.svc.working_dir", []string{"my.svc.working_dir"}, ""},
		{"volumes,networks,secrets,configs", []string{"volumes", "networks", "secrets", "configs"}, ""},
		{"image", nil, `accept "image": want <service>.<field>`},
		{"db.", nil, `accept "db.": want`},
		{".image", nil, `accept ".image": want`},
		{"db.Image", nil, `accept "db.Image": want`},
		{"d b.image", nil, `accept "d b.image": want`},
	}
	for _, tt := range tests {
		got, err := ParseAccept(tt.in)
		if tt.wantErr != "" {
			assert.ErrorContains(t, err, tt.wantErr, tt.in)
			continue
		}
		assert.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
}
