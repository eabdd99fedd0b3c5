package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/ktrdr/sandboxkit/sandbox/apiurl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEndpointHost(t *testing.T) {
	tests := []struct {
		endpoint, host string
		bad            bool
	}{
		{"unix:///var/run/docker.sock", "", false},
		{"npipe:////./pipe/docker_engine", "", false},
		{"tcp://10.251.0.2:2375", "10.251.0.2", false},
		{"ssh://root@10.251.0.2", "10.251.0.2", false},
		{"ssh://me@big.example.com:2222", "big.example.com", false},
		{"tcp://[fd00::2]:2375", "fd00::2", false},
		{"tcp://127.0.0.1:2375", "", false},
		{"tcp://localhost:2375", "", false},
		{"tcp://:2375", "", true},
		{"ftp://x", "", true},
		{"%zz", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			h, err := endpointHost(tt.endpoint)
			if tt.bad {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.host, h)
		})
	}
}

func FuzzEndpointHost(f *testing.F) {
	for _, s := range []string{"unix:///var/run/docker.sock", "tcp://10.0.0.1:2375", "ssh://u@h", "tcp://[::1]:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, endpoint string) {
		h, err := endpointHost(endpoint)
		if err == nil && h != "" {
			// A host it returns must be usable in a URL and in the env file.
			if !apiurl.ValidHost(h) && net.ParseIP(h) == nil {
				t.Fatalf("endpoint %q gave host %q, which is not a host", endpoint, h)
			}
		}
	})
}

func TestValidHost(t *testing.T) {
	for h, ok := range map[string]bool{
		"10.251.0.2": true, "big": true, "big.example.com": true, "fd00::2": true, "a-b.c": true,
		"": false, "-big": false, "big-": false, "a..b": false, "big:2375": false, "big/x": false, "b ig": false,
		"http://big": false, strings.Repeat("a", 64) + ".com": false,
	} {
		assert.Equal(t, ok, apiurl.ValidHost(h), h)
	}
}

func FuzzValidHost(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "big.example.com", "::1", "", "a..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if !apiurl.ValidHost(h) {
			return
		}
		// A valid host makes a URL whose host is exactly it.
		u := "http://" + net.JoinHostPort(h, "8001")
		host, port, err := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
		if err != nil || host != h || port != "8001" {
			t.Fatalf("host %q: URL %q splits into %q %q (%v)", h, u, host, port, err)
		}
	})
}

func TestContextRunnerAddsTheContext(t *testing.T) {
	f := &fakeRunner{}
	r := driver.ContextRunner{Runner: f, Context: "big"}
	ctx := context.Background()
	r.Run(ctx, driver.Cmd{Name: "docker", Args: []string{"ps"}})
	r.Run(ctx, driver.Cmd{Name: "docker", Args: []string{"--context", "other", "load"}})
	r.Run(ctx, driver.Cmd{Name: "git", Args: []string{"status"}})
	r.Run(ctx, driver.Cmd{Name: "docker-compose", Args: []string{"-p", "x", "up"}, Env: []string{"A=1"}})
	assert.Equal(t, []string{"docker --context big ps", "docker --context other load", "git status", "docker-compose -p x up"}, f.commands())
	assert.Equal(t, []string{"A=1", "DOCKER_CONTEXT=big"}, f.calls[3].Env)
}

func TestResolveEngine(t *testing.T) {
	f := &fakeRunner{handle: func(c driver.Cmd) ([]byte, error) {
		switch {
		case slices.Contains(c.Args, "inspect") && slices.Contains(c.Args, "big"):
			return []byte("ssh://me@10.1.2.3\n"), nil
		case slices.Contains(c.Args, "inspect") && slices.Contains(c.Args, "dead"):
			return []byte("tcp://10.1.2.4:2375\n"), nil
		case slices.Contains(c.Args, "inspect") && slices.Contains(c.Args, "broken"):
			return nil, errors.New("exec: docker: executable file not found in $PATH")
		case slices.Contains(c.Args, "inspect"):
			return nil, &driver.ExitError{Cmd: "docker context inspect", Code: 1, Stderr: "context \"nope\": context not found: open meta.json"}
		case slices.Contains(c.Args, "dead"):
			return nil, &driver.ExitError{Cmd: "docker version", Code: 1, Stderr: "Cannot connect"}
		}
		return []byte("20.10.24\n"), nil
	}}
	e, err := ResolveEngine(t.Context(), f, "big")
	require.NoError(t, err)
	assert.Equal(t, Engine{Context: "big", Host: "10.1.2.3"}, e)
	assert.True(t, e.Remote())
	assert.Equal(t, "10.1.2.3", e.ProbeHost())

	local, err := ResolveEngine(t.Context(), f, "")
	require.NoError(t, err)
	assert.Equal(t, "localhost", local.URLHost())
	assert.Equal(t, "127.0.0.1", local.ProbeHost())

	for name, reason := range map[string]string{"nope": "does not exist", "dead": "does not answer", "-x": "not a context name", "broken": "cannot be read"} {
		_, err := ResolveEngine(t.Context(), f, name)
		var ce *ContextError
		require.ErrorAs(t, err, &ce, name)
		assert.Contains(t, ce.Reason, reason)
	}
}

func TestRemotePreflight(t *testing.T) {
	// Something answers on one port of the "remote" host (here: loopback).
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	p := pfProfile(t)
	ports := p.PortsFor(1)
	apiKey, dbKey := "KTRDR_API_PORT", "KTRDR_DB_PORT"
	ports[apiKey] = busy
	ps := `{"Names":"other-db-1","Ports":"0.0.0.0:` + strconv.Itoa(ports[dbKey]) + `->5432/tcp","Labels":"com.docker.compose.project=other,com.docker.compose.service=db"}` + "\n"
	f := &fakeRunner{handle: func(c driver.Cmd) ([]byte, error) { return []byte(ps), nil }}

	err = RemotePreflight(t.Context(), f, "127.0.0.1", p, 1, ports, "ktrdr--mine")
	var pe *PortInUseError
	require.ErrorAs(t, err, &pe)
	require.Len(t, pe.Conflicts, 2)
	byKey := map[string]PortConflict{}
	for _, c := range pe.Conflicts {
		byKey[c.Key] = c
	}
	assert.Equal(t, "other", byKey[dbKey].Holder.Project, "a container of the engine")
	assert.Contains(t, byKey[apiKey].Holder.String(), "something on 127.0.0.1")

	// Its own containers are not a conflict; a failing engine is an error, not a pass.
	ps = strings.ReplaceAll(ps, "project=other", "project=ktrdr--mine")
	l.Close()
	assert.NoError(t, RemotePreflight(t.Context(), f, "127.0.0.1", p, 1, ports, "ktrdr--mine"))
	f.handle = func(driver.Cmd) ([]byte, error) { return nil, errors.New("engine gone") }
	assert.ErrorContains(t, RemotePreflight(t.Context(), f, "127.0.0.1", p, 1, ports, "ktrdr--mine"), "engine gone")
}

func TestWriteTarFollowsALinkedRootAndKeepsLinksInside(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	require.NoError(t, os.MkdirAll(filepath.Join(real, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(real, "sub", "a.csv"), []byte("1\n"), 0o644))
	require.NoError(t, os.Symlink("sub/a.csv", filepath.Join(real, "link")))
	require.NoError(t, os.Symlink(real, filepath.Join(dir, "data")))

	var buf bytes.Buffer
	require.NoError(t, writeTar(&buf, filepath.Join(dir, "data")))
	tr := tar.NewReader(&buf)
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		body, _ := io.ReadAll(tr)
		got[h.Name] = string(body) + h.Linkname
	}
	assert.Equal(t, map[string]string{"link": "sub/a.csv", "sub/": "", "sub/a.csv": "1\n"}, got)
}

func TestOverrideReplacesBindMountsWithSyncedVolumes(t *testing.T) {
	sp, sf := loadShape(t, filepath.Join("..", "docker-compose.sandbox.yml"))
	plan, err := syncPlan(sf, "ktrdr--x", true)
	require.NoError(t, err)
	require.Len(t, plan, 3, "data, models, strategies")
	synced := map[string]string{}
	for _, sv := range plan {
		assert.True(t, strings.HasPrefix(sv.Name, "ktrdr--x-sync-"), sv.Name)
		synced[sv.Source] = sv.Name
	}
	data, err := overrideDoc(sp, sf, "ktrdr--x", true, synced, nil)
	require.NoError(t, err)
	s := string(data)
	assert.Contains(t, s, `"external": true`)
	assert.Contains(t, s, `"target": "/app/data"`)
	assert.Contains(t, s, `"type": "volume"`)
	for _, sv := range plan {
		assert.Contains(t, s, `"name": "`+sv.Name+`"`)
	}
}

// Loading the local stand-in image into another engine that held an older
// build of it removes that build there when no container uses it.
func TestRemoteStandinLoadRemovesTheReplacedBuild(t *testing.T) {
	const local, old = "sha256:10ca1", "sha256:01d"
	remote := old
	f := &fakeRunner{handle: func(c driver.Cmd) ([]byte, error) {
		args, onRemote := c.Args, len(c.Args) > 1 && c.Args[0] == "--context"
		if onRemote {
			require.Equal(t, "big", args[1])
			args = args[2:]
		}
		switch {
		case args[0] == "version":
			return []byte(runtime.GOARCH + "\n"), nil
		case args[0] == "image" && args[1] == "inspect" && args[3] == "{{.Id}}" && onRemote:
			return []byte(remote + "\n"), nil
		case args[0] == "image" && args[1] == "inspect" && args[3] == "{{.Id}}":
			return []byte(local + "\n"), nil
		case args[0] == "save":
			_, err := c.Stdout.Write([]byte("image tar"))
			return nil, err
		case args[0] == "load":
			_, err := io.ReadAll(c.Stdin)
			remote = local
			return nil, err
		case args[0] == "image" && args[1] == "inspect" && args[4] == old && onRemote:
			return []byte(`{"Id":"` + old + `","RepoTags":[],"Config":{"Labels":{"sandbox.standin":"1"}}}`), nil
		case args[0] == "ps" && onRemote:
			return nil, nil
		case args[0] == "image" && args[1] == "rm" && onRemote:
			return nil, nil
		}
		return nil, errors.New("unexpected " + strings.Join(c.Args, " "))
	}}
	var log bytes.Buffer
	m := &Manager{Profile: KTRDR(), Home: t.TempDir(), Runner: f, Log: &log}
	require.NoError(t, m.on(Engine{Context: "big", Host: "10.1.2.3"}).ensureStandinImage(t.Context(), t.TempDir(), false))
	cmds := f.commands()
	assert.Contains(t, cmds, "docker --context big load --quiet")
	assert.Contains(t, cmds, "docker --context big ps -a -q --no-trunc --filter ancestor="+old)
	assert.Equal(t, "docker --context big image rm "+old, cmds[len(cmds)-1])
	assert.Contains(t, log.String(), "removed image "+old)
}

// Stand-in mode's database image goes to another engine of this machine's
// architecture as the stand-in does (loaded when it lacks this build); an
// engine of another architecture cannot run the host's PostgreSQL, which
// the error says, unless it holds the image already.
func TestRemoteDBImage(t *testing.T) {
	tests := []struct {
		name     string
		arch     string
		remote   string // the image's id on the engine ("": it lacks it)
		wantErr  string
		wantLoad bool
	}{
		{name: "same architecture, image missing there: loaded", arch: runtime.GOARCH, wantLoad: true},
		{name: "same architecture, same build there: nothing to do", arch: runtime.GOARCH, remote: "sha256:10ca1"},
		{name: "another architecture: refused", arch: "s390x", wantErr: "built from this machine's PostgreSQL, which is " + runtime.GOARCH},
		{name: "another architecture holding one: kept", arch: "s390x", remote: "sha256:e15e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			remote := tt.remote
			f := &fakeRunner{handle: func(c driver.Cmd) ([]byte, error) {
				args, onRemote := c.Args, len(c.Args) > 1 && c.Args[0] == "--context"
				if onRemote {
					args = args[2:]
				}
				switch {
				case args[0] == "version":
					return []byte(tt.arch + "\n"), nil
				case args[0] == "image" && args[1] == "inspect" && onRemote:
					if remote == "" {
						return nil, &driver.ExitError{Cmd: "docker image inspect", Code: 1, Stderr: "Error: No such image: ktrdr-postgres:dev"}
					}
					return []byte(remote + "\n"), nil
				case args[0] == "image" && args[1] == "inspect":
					return []byte("sha256:10ca1\n"), nil
				case args[0] == "save":
					_, err := c.Stdout.Write([]byte("image tar"))
					return nil, err
				case args[0] == "load":
					_, err := io.ReadAll(c.Stdin)
					remote = "sha256:10ca1"
					return nil, err
				}
				return nil, errors.New("unexpected " + strings.Join(c.Args, " "))
			}}
			m := &Manager{Profile: KTRDR(), Home: t.TempDir(), Runner: f, Log: io.Discard}
			err := m.on(Engine{Context: "big", Host: "10.1.2.3"}).ensureDBImage(t.Context(), t.TempDir(), false)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.ErrorContains(t, err, tt.wantErr)
				assert.ErrorContains(t, err, "ktrdr-postgres:dev")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantLoad, slices.Contains(f.commands(), "docker --context big load --quiet"), "%q", f.commands())
		})
	}
}
