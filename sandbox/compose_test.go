package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lcStackDir makes a sandbox root with the compose file, an env file and,
// when override is set, the optional override file.
func lcStackDir(t *testing.T, override bool) string {
	t.Helper()
	root := t.TempDir()
	p := KTRDR()
	require.NoError(t, os.WriteFile(filepath.Join(root, p.SandboxCompose), []byte("services: {}\n"), 0o644))
	require.NoError(t, p.WriteEnv(filepath.Join(root, p.EnvFile), p.NewEnv("feat-a", 1, "", lcNow(), false)))
	if override {
		require.NoError(t, os.WriteFile(filepath.Join(root, "docker-compose.sandbox.override.yml"), []byte("services: {}\n"), 0o644))
	}
	return root
}

// lcFlagValues returns every value that follows flag in args.
func lcFlagValues(args []string, flag string) []string {
	var vals []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			vals = append(vals, args[i+1])
		}
	}
	return vals
}

func TestComposeCommandsPinProjectEnvFileAndAbsoluteFiles(t *testing.T) {
	ops := []struct {
		name string
		run  func(ctx context.Context, c *driver.Compose, s driver.Stack) error
		want []string // the compose subcommand and its arguments, at the end
	}{
		{"up", func(ctx context.Context, c *driver.Compose, s driver.Stack) error { return c.Up(ctx, s, false, nil) },
			[]string{"up", "-d", "--remove-orphans"}},
		{"up build", func(ctx context.Context, c *driver.Compose, s driver.Stack) error { return c.Up(ctx, s, true, nil) },
			[]string{"up", "-d", "--remove-orphans", "--build"}},
		{"down", func(ctx context.Context, c *driver.Compose, s driver.Stack) error { return c.Down(ctx, s, false, nil) },
			[]string{"down", "--remove-orphans", "--timeout", "10"}},
		{"down volumes", func(ctx context.Context, c *driver.Compose, s driver.Stack) error { return c.Down(ctx, s, true, nil) },
			[]string{"down", "--remove-orphans", "--timeout", "10", "--volumes"}},
		{"logs", func(ctx context.Context, c *driver.Compose, s driver.Stack) error {
			return c.Logs(ctx, s, "backend", false, 50, nil)
		}, []string{"logs", "--no-color", "--tail", "50", "--", "backend"}},
		{"log tail", func(ctx context.Context, c *driver.Compose, s driver.Stack) error {
			_, err := c.LogTail(ctx, s, "db", 20)
			return err
		}, []string{"logs", "--no-color", "--no-log-prefix", "--tail", "20", "db"}},
	}
	clis := []struct {
		name    string
		command []string
	}{
		{"docker compose", []string{"docker", "compose"}},
		{"docker-compose", []string{"docker-compose"}},
	}
	for _, override := range []bool{false, true} {
		root := lcStackDir(t, override)
		p := KTRDR()
		stack := p.StackFor("ktrdr--feat-a", root)
		wantFiles := []string{filepath.Join(root, "docker-compose.sandbox.yml")}
		if override {
			wantFiles = append(wantFiles, filepath.Join(root, "docker-compose.sandbox.override.yml"))
		}
		for _, cli := range clis {
			for _, op := range ops {
				t.Run(cli.name+"/"+op.name+map[bool]string{true: "/override"}[override], func(t *testing.T) {
					f := &fakeRunner{}
					c := &driver.Compose{Runner: f, Command: cli.command, Version: "2.40.3"}
					require.NoError(t, op.run(t.Context(), c, stack))
					require.Len(t, f.calls, 1)
					cmd := f.calls[0]

					assert.Equal(t, cli.command[0], cmd.Name, "the program is compose itself, not a shell")
					assert.NotContains(t, []string{"sh", "bash", "/bin/sh"}, cmd.Name)
					assert.NotContains(t, cmd.Args, "-c")
					assert.Equal(t, cli.command[1:], cmd.Args[:len(cli.command)-1])
					assert.Equal(t, []string{"ktrdr--feat-a"}, lcFlagValues(cmd.Args, "-p"))
					assert.Equal(t, []string{filepath.Join(root, ".env.sandbox")}, lcFlagValues(cmd.Args, "--env-file"))
					assert.Equal(t, []string{root}, lcFlagValues(cmd.Args, "--project-directory"))
					files := lcFlagValues(cmd.Args, "-f")
					assert.Equal(t, wantFiles, files)
					for _, f := range append(files, lcFlagValues(cmd.Args, "--env-file")...) {
						assert.True(t, filepath.IsAbs(f), "%s is not absolute", f)
					}
					assert.Equal(t, op.want, cmd.Args[len(cmd.Args)-len(op.want):])
					assert.Equal(t, root, cmd.Dir)
					assert.NotNil(t, cmd.Env, "compose must not inherit the caller's environment unfiltered")
				})
			}
		}
	}
}

func TestComposeRefusesIncompleteOrRelativeStacks(t *testing.T) {
	root := lcStackDir(t, false)
	good := KTRDR().StackFor("ktrdr--feat-a", root)
	tests := []struct {
		name  string
		edit  func(s *driver.Stack)
		inErr string
	}{
		{"relative env file", func(s *driver.Stack) { s.EnvFile = ".env.sandbox" }, "not absolute"},
		{"relative compose file", func(s *driver.Stack) { s.Files = []string{"docker-compose.sandbox.yml"} }, "not absolute"},
		{"second file relative", func(s *driver.Stack) { s.Files = append(s.Files, "x.override.yml") }, "not absolute"},
		{"no project", func(s *driver.Stack) { s.Project = "" }, "required"},
		{"no env file", func(s *driver.Stack) { s.EnvFile = "" }, "required"},
		{"no files", func(s *driver.Stack) { s.Files = nil }, "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			s.Files = slices.Clone(good.Files)
			tt.edit(&s)
			f := &fakeRunner{}
			c := &driver.Compose{Runner: f, Command: []string{"docker", "compose"}}
			err := c.Down(t.Context(), s, true, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.inErr)
			assert.Empty(t, f.calls, "nothing may run with an incomplete stack")
		})
	}
}

func TestComposeEnvDropsWhatTheEnvFileAndKTRDRDecide(t *testing.T) {
	root := lcStackDir(t, false)
	envFile := filepath.Join(root, ".env.sandbox")
	// Variables the env file defines, in the forms compose accepts.
	extra := "export FROM_FILE_EXPORTED=1\n  FROM_FILE_INDENTED=2\n# COMMENTED=3\n"
	f, err := os.OpenFile(envFile, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(extra)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	for k, v := range map[string]string{
		"KTRDR_API_PORT":       "9999",
		"KTRDR_SOMETHING_ELSE": "x",
		"COMPOSE_PROJECT_NAME": "evil",
		"COMPOSE_FILE":         "/evil.yml",
		"INSTANCE_ID":          "ktrdr--evil",
		"SLOT_NUMBER":          "7",
		"FROM_FILE_EXPORTED":   "evil",
		"FROM_FILE_INDENTED":   "evil",
		"COMMENTED":            "kept",
		"PATH":                 "/usr/local/bin:/usr/bin:/bin",
		"HOME":                 "/home/someone",
		"DOCKER_HOST":          "unix:///run/user/1000/docker.sock",
	} {
		t.Setenv(k, v)
	}
	fr := &fakeRunner{}
	c := &driver.Compose{Runner: fr, Command: []string{"docker", "compose"}, Scrub: KTRDR().EnvPrefix}
	require.NoError(t, c.Up(t.Context(), KTRDR().StackFor("ktrdr--feat-a", root), false, nil))
	require.Len(t, fr.calls, 1)
	env := map[string]string{}
	for _, kv := range fr.calls[0].Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for _, k := range []string{"KTRDR_API_PORT", "KTRDR_SOMETHING_ELSE", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE",
		"INSTANCE_ID", "SLOT_NUMBER", "FROM_FILE_EXPORTED", "FROM_FILE_INDENTED"} {
		assert.NotContains(t, env, k)
	}
	assert.Equal(t, "/usr/local/bin:/usr/bin:/bin", env["PATH"])
	assert.Equal(t, "/home/someone", env["HOME"])
	assert.Equal(t, "unix:///run/user/1000/docker.sock", env["DOCKER_HOST"])
	assert.Equal(t, "kept", env["COMMENTED"], "a commented-out line decides nothing")
}

func TestDetectCompose(t *testing.T) {
	notFound := errors.New(`exec: "docker": executable file not found in $PATH`)
	unknownCmd := &driver.ExitError{Cmd: "docker compose version --short", Code: 1, Stderr: "docker: 'compose' is not a docker command."}
	tests := []struct {
		name      string
		answers   map[string]any // "name args" → output string or error
		wantCmd   []string
		wantVer   string
		wantInErr []string
	}{
		{"plugin bare version", map[string]any{"docker compose version --short": "2.40.3\n"},
			[]string{"docker", "compose"}, "2.40.3", nil},
		{"plugin v-prefixed version", map[string]any{"docker compose version --short": "v2.40.3\n"},
			[]string{"docker", "compose"}, "2.40.3", nil},
		{"standalone v2", map[string]any{"docker compose version --short": unknownCmd, "docker-compose version --short": "2.29.7\n"},
			[]string{"docker-compose"}, "2.29.7", nil},
		{"plugin missing, standalone v1", map[string]any{"docker compose version --short": unknownCmd, "docker-compose version --short": "1.29.2\n"},
			nil, "", []string{"docker compose", "docker-compose", "1.29.2"}},
		{"plugin v1 too", map[string]any{"docker compose version --short": "1.29.2", "docker-compose version --short": notFound},
			nil, "", []string{"docker compose", "docker-compose", "1.29.2", "not found"}},
		{"nothing installed", map[string]any{"docker compose version --short": notFound, "docker-compose version --short": notFound},
			nil, "", []string{"docker compose", "docker-compose"}},
		{"garbage version", map[string]any{"docker compose version --short": "weird", "docker-compose version --short": ""},
			nil, "", []string{"weird"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRunner{handle: func(c driver.Cmd) ([]byte, error) {
				key := strings.Join(append([]string{c.Name}, c.Args...), " ")
				switch a := tt.answers[key].(type) {
				case string:
					return []byte(a), nil
				case error:
					return nil, a
				}
				return nil, errors.New("unexpected command " + key)
			}}
			c, err := driver.DetectCompose(t.Context(), f)
			if tt.wantInErr != nil {
				require.Error(t, err)
				assert.ErrorIs(t, err, driver.ErrNoCompose)
				for _, s := range tt.wantInErr {
					assert.Contains(t, err.Error(), s)
				}
				assert.Nil(t, c)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantCmd, c.Command)
			assert.Equal(t, tt.wantVer, c.Version)
			assert.Same(t, f, c.Runner.(*fakeRunner))
		})
	}
}

// lcPSLine is one `docker ps --format '{{json .}}'` line as docker prints it.
func lcPSLine(project, service, instance, state, status string) string {
	labels := []string{
		"com.docker.compose.config-hash=3f1c0e0b5d",
		"com.docker.compose.container-number=1",
		"com.docker.compose.oneoff=False",
		"com.docker.compose.project=" + project,
		"com.docker.compose.project.config_files=/home/u/dev/" + project + "/docker-compose.sandbox.yml,/home/u/dev/" + project + "/docker-compose.sandbox.override.yml",
		"com.docker.compose.project.working_dir=/home/u/dev/" + project,
		"com.docker.compose.service=" + service,
		"com.docker.compose.version=2.40.3",
	}
	if instance != "" {
		labels = append(labels, KTRDR().InstanceLabel+"="+instance)
	}
	row := map[string]string{
		"Command": `"docker-entrypoint.sh postgres"`, "CreatedAt": "2026-01-10 10:00:00 +0000 UTC",
		"ID": lcContainerID(project, service), "Image": "ktrdr-standin:dev", "Labels": strings.Join(labels, ","),
		"LocalVolumes": "1", "Mounts": project + "_postgres_data", "Names": project + "-" + service + "-1",
		"Networks": project + "_default", "Ports": "0.0.0.0:5433->5432/tcp", "RunningFor": "3 minutes ago",
		"Size": "0B", "State": state, "Status": status,
	}
	b, _ := json.Marshal(row)
	return string(b)
}

// lcContainerID is the full container id lcPSLine gives a service of a
// project: 64 hex digits, as docker ps --no-trunc prints it.
func lcContainerID(project, service string) string {
	sum := sha256.Sum256([]byte(project + "/" + service))
	return hex.EncodeToString(sum[:])
}

func TestParseDockerPS(t *testing.T) {
	// A line exactly as docker 27 prints it, commas inside a label value included.
	raw := `{"Command":"\"/go/bin/standin\"","CreatedAt":"2026-01-10 10:00:00 +0000 UTC","ID":"0123456789ab","Image":"ktrdr-standin:dev","Labels":"com.docker.compose.project=ktrdr--raw,com.docker.compose.project.config_files=/a.yml,/b.yml,com.docker.compose.service=backend,org.ktrdr.sandbox.instance=ktrdr--raw","LocalVolumes":"0","Mounts":"","Names":"ktrdr--raw-backend-1","Networks":"ktrdr--raw_default","Ports":"0.0.0.0:8001->8000/tcp, [::]:8001->8000/tcp","RunningFor":"3 minutes ago","Size":"0B","State":"running","Status":"Up 3 minutes (healthy)"}`
	tests := []struct {
		name    string
		lines   []string
		want    map[string]map[string]driver.ServiceState // project → service → state (Status omitted: compared separately)
		wantErr bool
	}{
		{"empty output", nil, map[string]map[string]driver.ServiceState{}, false},
		{"raw docker line", []string{raw}, map[string]map[string]driver.ServiceState{
			"ktrdr--raw": {"backend": {Service: "backend", State: "running", Health: "healthy", Instance: "ktrdr--raw"}}}, false},
		{"health and exit states", []string{
			lcPSLine("ktrdr--a", "db", "ktrdr--a", "running", "Up 3 minutes (healthy)"),
			lcPSLine("ktrdr--a", "backend", "ktrdr--a", "running", "Up 10 seconds (health: starting)"),
			lcPSLine("ktrdr--a", "jaeger", "ktrdr--a", "running", "Up 2 hours (unhealthy)"),
			lcPSLine("ktrdr--a", "grafana", "ktrdr--a", "running", "Up 3 minutes"),
			lcPSLine("ktrdr--a", "backtest-worker-1", "ktrdr--a", "exited", "Exited (3) 2 seconds ago"),
			lcPSLine("ktrdr--a", "training-worker-1", "ktrdr--a", "restarting", "Restarting (1) 1 second ago"),
		}, map[string]map[string]driver.ServiceState{"ktrdr--a": {
			"db":                {Service: "db", State: "running", Health: "healthy", Instance: "ktrdr--a"},
			"backend":           {Service: "backend", State: "running", Health: "starting", Instance: "ktrdr--a"},
			"jaeger":            {Service: "jaeger", State: "running", Health: "unhealthy", Instance: "ktrdr--a"},
			"grafana":           {Service: "grafana", State: "running", Instance: "ktrdr--a"},
			"backtest-worker-1": {Service: "backtest-worker-1", State: "exited", Instance: "ktrdr--a"},
			"training-worker-1": {Service: "training-worker-1", State: "restarting", Instance: "ktrdr--a"},
		}}, false},
		{"two projects and an unlabelled main stack", []string{
			lcPSLine("ktrdr--a", "db", "ktrdr--a", "running", "Up 1 minute"),
			"",
			"   ",
			lcPSLine("ktrdr", "db", "", "running", "Up 5 days"),
			lcPSLine("ktrdr--b", "db", "ktrdr--b", "created", "Created"),
		}, map[string]map[string]driver.ServiceState{
			"ktrdr--a": {"db": {Service: "db", State: "running", Instance: "ktrdr--a"}},
			"ktrdr":    {"db": {Service: "db", State: "running"}},
			"ktrdr--b": {"db": {Service: "db", State: "created", Instance: "ktrdr--b"}},
		}, false},
		{"a container without a project label is not a stack", []string{
			`{"Labels":"maintainer=someone,com.docker.compose.service=db","State":"running","Status":"Up 1 minute"}`,
			`{"Labels":"","State":"running","Status":"Up 1 minute"}`,
		}, map[string]map[string]driver.ServiceState{}, false},
		{"not JSON", []string{"CONTAINER ID   IMAGE   COMMAND"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := driver.ParseDockerPS([]byte(strings.Join(tt.lines, "\n")+"\n"), KTRDR().InstanceLabel)
			if tt.wantErr {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "parse docker ps line")
				return
			}
			require.NoError(t, err)
			simplified := map[string]map[string]driver.ServiceState{}
			for project, st := range got {
				assert.Equal(t, project, st.Project)
				simplified[project] = map[string]driver.ServiceState{}
				for svc, s := range st.Services {
					assert.NotEmpty(t, s.Status)
					s.Status = ""
					simplified[project][svc] = s
				}
			}
			assert.Equal(t, tt.want, simplified)
		})
	}
	t.Run("status kept verbatim and Running counts", func(t *testing.T) {
		got, err := driver.ParseDockerPS([]byte(lcPSLine("ktrdr--a", "db", "ktrdr--a", "exited", "Exited (3) 2 seconds ago")+"\n"+
			lcPSLine("ktrdr--a", "backend", "ktrdr--a", "running", "Up 3 minutes (healthy)")), KTRDR().InstanceLabel)
		require.NoError(t, err)
		require.Contains(t, got, "ktrdr--a")
		assert.Equal(t, "Exited (3) 2 seconds ago", got["ktrdr--a"].Services["db"].Status)
		assert.Equal(t, 1, got["ktrdr--a"].Running())
		assert.Equal(t, []string{lcContainerID("ktrdr--a", "backend")}, got["ktrdr--a"].RunningIDs, "the running container's full id, to join docker stats with")
		var none *driver.StackState
		assert.Equal(t, 0, none.Running())
	})
}

func TestParseLabels(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"a=1", map[string]string{"a": "1"}},
		{"a=1,b=", map[string]string{"a": "1", "b": ""}},
		{"com.docker.compose.project=ktrdr--a,com.docker.compose.project.config_files=/a.yml,/b.yml,com.docker.compose.service=db",
			map[string]string{"com.docker.compose.project": "ktrdr--a", "com.docker.compose.project.config_files": "/a.yml,/b.yml",
				"com.docker.compose.service": "db"}},
		{"com.docker.compose.project.config_files=/a.yml,/b.yml,/c.yml", map[string]string{"com.docker.compose.project.config_files": "/a.yml,/b.yml,/c.yml"}},
		{"desc=hello, world=yes,x=1", map[string]string{"desc": "hello, world=yes", "x": "1"}},
		{"url=http://h/?a=b,c=d", map[string]string{"url": "http://h/?a=b", "c": "d"}},
		{"orphan,a=1", map[string]string{"a": "1"}},
		{"a=x=y", map[string]string{"a": "x=y"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, driver.ParseLabels(tt.in))
		})
	}
}

func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{"", "a=1", "com.docker.compose.project=ktrdr--a,com.docker.compose.project.config_files=/a.yml,/b.yml",
		",,,", "=", "a b=c,d", "x,com.docker.compose.project=", "desc=hello, world=yes"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := driver.ParseLabels(s)
		for k, v := range m {
			// Every pair is a contiguous piece of the input: nothing is invented.
			if !strings.Contains(s, k+"="+v) {
				t.Fatalf("parseLabels(%q) = %q: pair %q=%q is not in the input", s, m, k, v)
			}
		}
		if _, ok := m["com.docker.compose.project"]; ok && !strings.Contains(s, "com.docker.compose.project=") {
			t.Fatalf("parseLabels(%q) has a project key the input does not", s)
		}
	})
}

func FuzzParseDockerPS(f *testing.F) {
	f.Add([]byte(lcPSLine("ktrdr--a", "db", "ktrdr--a", "running", "Up 3 minutes (healthy)") + "\n" +
		lcPSLine("ktrdr--a", "backend", "ktrdr--a", "exited", "Exited (3) 2 seconds ago")))
	f.Add([]byte(`{"Labels":"com.docker.compose.project=p,com.docker.compose.project.config_files=/a.yml,/b.yml","State":"restarting","Status":"Restarting (1) 1 second ago"}`))
	f.Add([]byte(`{"Labels":"com.docker.compose.service=db"}`))
	f.Add([]byte("not json\n"))
	f.Add([]byte(`{"Labels":null}`))
	f.Add([]byte(`{"Labels":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := driver.ParseDockerPS(data, KTRDR().InstanceLabel)
		if err != nil {
			return
		}
		// Every project comes from a line whose labels name it.
		var labels []string
		for _, line := range strings.Split(string(data), "\n") {
			var row struct{ Labels string }
			if json.Unmarshal([]byte(strings.TrimSpace(line)), &row) == nil {
				labels = append(labels, row.Labels)
			}
		}
		for project, st := range got {
			if project == "" || st == nil || st.Services == nil || st.Project != project {
				t.Fatalf("bad stack %q: %+v", project, st)
			}
			found := slices.ContainsFunc(labels, func(l string) bool {
				return strings.Contains(l, "com.docker.compose.project="+project)
			})
			if !found {
				t.Fatalf("project %q is in no line's labels (%q)", project, labels)
			}
		}
	})
}
