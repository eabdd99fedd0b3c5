package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ktrdr/sandboxkit/sandbox/driver"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pfProfile returns the ktrdr profile moved into a high port range where
// every port of slot 1 is free right now: rule i publishes B+16i+N in slot N.
func pfProfile(t testing.TB) *Profile {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 40000 + 200*rand.IntN(100) // 40000–59800
		q := ktrdrProfile
		q.Ports = make([]PortRule, len(ktrdrProfile.Ports))
		for i, r := range ktrdrProfile.Ports {
			r.Slot0, r.Base, r.Step = base+16*i, base+16*i, 1
			q.Ports[i] = r
		}
		q.MinSlot, q.MaxSlot = 1, 3
		p, err := NewProfile(q)
		require.NoError(t, err)
		if ok, _ := PortsFree(p, 1); ok {
			return p
		}
	}
	t.Fatal("no free high port range found for the test profile")
	return nil
}

// pfPort returns the slot-1 port of key in p.
func pfPort(t testing.TB, p *Profile, key string) int {
	t.Helper()
	r, ok := p.Rule(key)
	require.True(t, ok, key)
	return r.Port(1)
}

// pfListen holds a TCP listener on addr for the rest of the test.
func pfListen(t testing.TB, network, addr string) {
	t.Helper()
	l, err := net.Listen(network, addr)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
}

// pfDockerLine is one line of `docker ps --format '{{json .}}'`.
func pfDockerLine(name, project, service, ports string) string {
	labels := "com.docker.compose.config-hash=abc,com.docker.compose.project.config_files=/x/a.yml,/x/b.yml"
	if project != "" {
		labels += ",com.docker.compose.project=" + project + ",com.docker.compose.service=" + service
	}
	b, _ := json.Marshal(map[string]string{
		"Command": `"uvicorn app:main"`, "ID": "0123abcd", "Image": "ktrdr-standin:dev", "Labels": labels,
		"Names": name, "Ports": ports, "State": "running", "Status": "Up 2 minutes",
	})
	return string(b)
}

// pfDocker answers `docker ps` with lines and fails every other command.
func pfDocker(lines ...string) *fakeRunner {
	return &fakeRunner{handle: func(c driver.Cmd) ([]byte, error) {
		if c.Name == "docker" && len(c.Args) > 0 && c.Args[0] == "ps" {
			return []byte(strings.Join(lines, "\n") + "\n"), nil
		}
		return nil, fmt.Errorf("unexpected command %s", c)
	}}
}

func pfInUse(t *testing.T, err error) *PortInUseError {
	t.Helper()
	var pe *PortInUseError
	require.ErrorAs(t, err, &pe)
	return pe
}

func TestParseDockerPorts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []publishedPort
	}{
		{"empty", "", nil},
		{"compose container, IPv4 and old IPv6 form",
			pfDockerLine("ktrdr--feat-b-backend-1", "ktrdr--feat-b", "backend", "0.0.0.0:8001->8000/tcp, :::8001->8000/tcp"),
			[]publishedPort{
				{8001, 8001, "ktrdr--feat-b-backend-1", "ktrdr--feat-b", "backend"},
				{8001, 8001, "ktrdr--feat-b-backend-1", "ktrdr--feat-b", "backend"},
			}},
		{"new IPv6 form, loopback, range, exposed-only and udp",
			pfDockerLine("web", "", "", "[::]:9000->80/tcp, 127.0.0.1:5000-5002->5000-5002/tcp, 5432/tcp, 0.0.0.0:53->53/udp"),
			[]publishedPort{{9000, 9000, "web", "", ""}, {5000, 5002, "web", "", ""}}},
		{"no ports", pfDockerLine("idle", "p", "s", ""), nil},
		{"garbage lines are skipped",
			"not json\n{\"Ports\": 5}\n\n" + pfDockerLine("a", "p", "s", "0.0.0.0:70000->1/tcp, 0.0.0.0:x->1/tcp, 0.0.0.0:9-3->1/tcp, 1.2.3.4:4444->4444") + "\n",
			[]publishedPort{{4444, 4444, "a", "p", "s"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, parseDockerPorts([]byte(tt.in)))
		})
	}
}

func TestParseDockerLabelsKeepsCommasInValues(t *testing.T) {
	got := driver.ParseLabels("a=1,com.docker.compose.project.config_files=/x/a.yml,/x/b.yml,com.docker.compose.project=ktrdr--x")
	assert.Equal(t, map[string]string{
		"a": "1", "com.docker.compose.project.config_files": "/x/a.yml,/x/b.yml", "com.docker.compose.project": "ktrdr--x",
	}, got)
}

const pfProcNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F41 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 999 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 100 0 0 10 0
`

const pfProcNetTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F41 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5151 1 0000000000000000 100 0 0 10 0
`

func TestParseProcNetTCP(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[int][]uint64
	}{
		{"empty", "", map[int][]uint64{}},
		{"tcp: listeners only, inode 0 skipped", pfProcNetTCP, map[int][]uint64{8001: {4242}, 5432: {777}}},
		{"tcp6", pfProcNetTCP6, map[int][]uint64{8001: {5151}}},
		{"garbage", "0: zz:zz 0 0A a b c d e f\n1: 0100007F:GGGG 0:0 0A 0 0 0 0 0 12\n1: 0100007F 0:0 0A 0 0 0 0 0 12\n", map[int][]uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, parseProcNetTCP([]byte(tt.in)))
		})
	}
}

func TestPortHolderString(t *testing.T) {
	tests := []struct {
		h    PortHolder
		want string
	}{
		{PortHolder{Project: "ktrdr--feat-b", Container: "ktrdr--feat-b-backend-1", ComposeService: "backend"},
			"container ktrdr--feat-b-backend-1 (compose project ktrdr--feat-b, service backend)"},
		{PortHolder{Container: "web"}, "container web"},
		{PortHolder{PID: 12345, Command: "python3 -m http.server 8001"}, "process 12345 (python3 -m http.server 8001)"},
		{PortHolder{}, "an unknown process (not visible to this user)"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.h.String())
	}
}

func TestPortInUseErrorListsEachConflictOnItsOwnLine(t *testing.T) {
	e := &PortInUseError{Slot: 2, Conflicts: []PortConflict{
		{Port: 8002, Key: "KTRDR_API_PORT", Service: "backend", Label: "API",
			Holder: PortHolder{Project: "ktrdr--feat-b", Container: "ktrdr--feat-b-backend-1", ComposeService: "backend"}},
		{Port: 5434, Key: "KTRDR_DB_PORT", Service: "db", Label: "database", Holder: PortHolder{PID: 7, Command: "postgres"}},
	}}
	assert.Equal(t, `slot 2: 2 ports are in use:
  port 8002 (KTRDR_API_PORT, backend API) is held by container ktrdr--feat-b-backend-1 (compose project ktrdr--feat-b, service backend)
  port 5434 (KTRDR_DB_PORT, db database) is held by process 7 (postgres)`, e.Error())
	assert.Equal(t, "port 8002 (KTRDR_API_PORT, backend API) is held by container ktrdr--feat-b-backend-1 (compose project ktrdr--feat-b, service backend) (and 1 more)", e.Summary())
}

func TestPreflightFreePortsAsksDockerNothing(t *testing.T) {
	p := pfProfile(t)
	r := pfDocker()
	require.NoError(t, Preflight(t.Context(), r, p, 1, "ktrdr--x"))
	assert.Empty(t, r.commands())
}

func TestPreflightNamesListeningProcess(t *testing.T) {
	p := pfProfile(t)
	api := pfPort(t, p, "KTRDR_API_PORT")
	pfListen(t, "tcp4", "127.0.0.1:"+strconv.Itoa(api))
	exe := filepath.Base(os.Args[0])

	for name, r := range map[string]*fakeRunner{
		"docker answers, no containers": pfDocker(),
		"docker fails": {handle: func(driver.Cmd) ([]byte, error) {
			return nil, &driver.ExitError{Cmd: "docker ps", Code: 1, Stderr: "Cannot connect to the Docker daemon"}
		}},
		"docker missing": {handle: func(driver.Cmd) ([]byte, error) { return nil, errors.New(`exec: "docker": not found`) }},
	} {
		t.Run(name, func(t *testing.T) {
			pe := pfInUse(t, Preflight(t.Context(), r, p, 1, "ktrdr--x"))
			require.Len(t, pe.Conflicts, 1)
			c := pe.Conflicts[0]
			assert.Equal(t, 1, pe.Slot)
			assert.Equal(t, api, c.Port)
			assert.Equal(t, "KTRDR_API_PORT", c.Key)
			assert.Equal(t, "backend", c.Service)
			assert.Equal(t, "API", c.Label)
			assert.Equal(t, os.Getpid(), c.Holder.PID)
			assert.Contains(t, c.Holder.Command, exe)
			assert.Contains(t, pe.Error(), fmt.Sprintf("port %d (KTRDR_API_PORT, backend API) is held by process %d (", api, os.Getpid()))
			assert.Len(t, r.commands(), 1)
		})
	}
	t.Run("no runner", func(t *testing.T) {
		pe := pfInUse(t, Preflight(t.Context(), nil, p, 1, "ktrdr--x"))
		assert.Equal(t, os.Getpid(), pe.Conflicts[0].Holder.PID)
	})
}

func TestPreflightOwnProjectIsNotAConflict(t *testing.T) {
	p := pfProfile(t)
	api, db := pfPort(t, p, "KTRDR_API_PORT"), pfPort(t, p, "KTRDR_DB_PORT")
	pfListen(t, "tcp4", "0.0.0.0:"+strconv.Itoa(api))
	pfListen(t, "tcp4", "127.0.0.1:"+strconv.Itoa(db))
	r := pfDocker(
		pfDockerLine("ktrdr--mine-backend-1", "ktrdr--mine", "backend", fmt.Sprintf("0.0.0.0:%d->8000/tcp, :::%d->8000/tcp", api, api)),
		pfDockerLine("ktrdr--mine-db-1", "ktrdr--mine", "db", fmt.Sprintf("0.0.0.0:%d->5432/tcp, [::]:%d->5432/tcp", db, db)),
		pfDockerLine("ktrdr--other-backend-1", "ktrdr--other", "backend", "0.0.0.0:8000->8000/tcp"),
	)
	require.NoError(t, Preflight(t.Context(), r, p, 1, "ktrdr--mine"))
	assert.Equal(t, []string{"docker ps --no-trunc --format " + psPortsFormat}, r.commands())
}

func TestPreflightOtherProjectIsAConflict(t *testing.T) {
	p := pfProfile(t)
	api, db, w4 := pfPort(t, p, "KTRDR_API_PORT"), pfPort(t, p, "KTRDR_DB_PORT"), pfPort(t, p, "KTRDR_WORKER_PORT_4")
	for _, port := range []int{api, db, w4} {
		pfListen(t, "tcp4", "127.0.0.1:"+strconv.Itoa(port))
	}
	r := pfDocker(
		pfDockerLine("ktrdr--feat-b-backend-1", "ktrdr--feat-b", "backend", fmt.Sprintf("0.0.0.0:%d->8000/tcp, :::%d->8000/tcp", api, api)),
		pfDockerLine("ktrdr--mine-db-1", "ktrdr--mine", "db", fmt.Sprintf("0.0.0.0:%d->5432/tcp", db)),
	)
	pe := pfInUse(t, Preflight(t.Context(), r, p, 1, "ktrdr--mine"))
	require.Len(t, pe.Conflicts, 2, pe.Error())
	assert.Equal(t, PortConflict{Port: api, Key: "KTRDR_API_PORT", Service: "backend", Label: "API",
		Holder: PortHolder{Project: "ktrdr--feat-b", Container: "ktrdr--feat-b-backend-1", ComposeService: "backend"}}, pe.Conflicts[0])
	assert.Equal(t, w4, pe.Conflicts[1].Port)
	assert.Equal(t, os.Getpid(), pe.Conflicts[1].Holder.PID)
	assert.Contains(t, pe.Error(), "is held by container ktrdr--feat-b-backend-1 (compose project ktrdr--feat-b, service backend)")
	assert.Len(t, r.commands(), 1, "one docker call for every taken port")

	// Without an own project, every holder is a conflict.
	pe = pfInUse(t, Preflight(t.Context(), r, p, 1, ""))
	assert.Len(t, pe.Conflicts, 3)
}

func TestPreflightSeesIPv6Listener(t *testing.T) {
	p := pfProfile(t)
	api := pfPort(t, p, "KTRDR_API_PORT")
	l, err := net.Listen("tcp6", "[::1]:"+strconv.Itoa(api))
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer l.Close()
	pe := pfInUse(t, Preflight(t.Context(), pfDocker(), p, 1, ""))
	require.Len(t, pe.Conflicts, 1)
	assert.Equal(t, os.Getpid(), pe.Conflicts[0].Holder.PID)
}

func TestPortsFreeListsTakenPortsInProfileOrder(t *testing.T) {
	p := pfProfile(t)
	api, w1 := pfPort(t, p, "KTRDR_API_PORT"), pfPort(t, p, "KTRDR_WORKER_PORT_1")
	pfListen(t, "tcp4", "127.0.0.1:"+strconv.Itoa(w1))
	pfListen(t, "tcp", ":"+strconv.Itoa(api))
	ok, taken := PortsFree(p, 1)
	assert.False(t, ok)
	assert.Equal(t, []int{api, w1}, taken)
}

func TestPreflightCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, Preflight(ctx, pfDocker(), pfProfile(t), 1, ""), context.Canceled)
}

func FuzzParseDockerPorts(f *testing.F) {
	f.Add(pfDockerLine("ktrdr--b-backend-1", "ktrdr--b", "backend", "0.0.0.0:8001->8000/tcp, :::8001->8000/tcp"))
	f.Add(pfDockerLine("w", "", "", "[::]:9000->80/tcp, 127.0.0.1:5000-5002->5000-5002/tcp, 5432/tcp, 0.0.0.0:53->53/udp"))
	f.Add(`{"Names":"a,b","Ports":":->/tcp, :-1->, 1-:2","Labels":",=,a"}`)
	f.Add("not json\n{}\n")
	f.Fuzz(func(t *testing.T, s string) {
		for _, pp := range parseDockerPorts([]byte(s)) {
			if pp.HostFrom < 1 || pp.HostTo > 65535 || pp.HostFrom > pp.HostTo {
				t.Fatalf("bad range %+v", pp)
			}
		}
	})
}

func FuzzParseProcNetTCP(f *testing.F) {
	f.Add(pfProcNetTCP)
	f.Add(pfProcNetTCP6)
	f.Add("0: :FFFFFFFF 0 0A 0 0 0 0 0 18446744073709551615\n")
	f.Fuzz(func(t *testing.T, s string) {
		for port, inodes := range parseProcNetTCP([]byte(s)) {
			if port < 1 || port > 65535 || len(inodes) == 0 {
				t.Fatalf("bad entry %d: %v", port, inodes)
			}
		}
	})
}

func BenchmarkPreflight(b *testing.B) {
	p := pfProfile(b)
	r := pfDocker()
	ctx := context.Background()
	for b.Loop() {
		if err := Preflight(ctx, r, p, 1, "ktrdr--x"); err != nil {
			b.Fatal(err)
		}
	}
}
