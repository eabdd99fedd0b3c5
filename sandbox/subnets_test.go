package sandbox

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// prefixStrings makes subnets readable in a test's diff.
func prefixStrings(m map[string]netip.Prefix) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v.String()
	}
	return out
}

func TestSubnetPoolJSON(t *testing.T) {
	tests := []struct {
		in   string
		want SubnetPool
		err  string
	}{
		{`"10.50.0.0/16"`, SubnetPool{pfx("10.50.0.0/16")}, ""},
		{`["10.50.0.0/16", " 10.51.0.0/16"]`, SubnetPool{pfx("10.50.0.0/16"), pfx("10.51.0.0/16")}, ""},
		{`null`, nil, ""},
		{`"10.50.0.0"`, nil, `"10.50.0.0" is not a CIDR`},
		{`16`, nil, "neither a CIDR string nor a list"},
		{`[16]`, nil, "neither a CIDR string nor a list"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var p SubnetPool
			err := json.Unmarshal([]byte(tt.in), &p)
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, p)
		})
	}
}

func TestSubnetSettingsValidate(t *testing.T) {
	tests := []struct {
		name string
		s    SubnetSettings
		err  string
	}{
		{"defaults", SubnetSettings{}, ""},
		{"a list and a prefix", SubnetSettings{Pool: SubnetPool{pfx("10.50.0.0/16"), pfx("192.168.200.0/24")}, Prefix: 28}, ""},
		{"empty list", SubnetSettings{Pool: SubnetPool{}}, "subnet_pool is empty"},
		{"host bits", SubnetSettings{Pool: SubnetPool{pfx("10.50.1.0/16")}}, "write it as 10.50.0.0/16"},
		{"IPv6", SubnetSettings{Pool: SubnetPool{pfx("fd00::/64")}}, "only IPv4"},
		{"smaller than a subnet", SubnetSettings{Pool: SubnetPool{pfx("10.50.0.0/28")}}, "smaller than one subnet (/27"},
		{"loopback", SubnetSettings{Pool: SubnetPool{pfx("127.0.0.0/16")}}, "no bridge network can use"},
		{"everything", SubnetSettings{Pool: SubnetPool{pfx("0.0.0.0/0")}}, "no bridge network can use"},
		{"overlapping entries", SubnetSettings{Pool: SubnetPool{pfx("10.50.0.0/16"), pfx("10.50.4.0/24")}}, "overlaps 10.50.0.0/16 of the same pool"},
		{"prefix too small", SubnetSettings{Prefix: 30}, "a /16 to a /29"},
		{"prefix too large", SubnetSettings{Prefix: 8}, "a /16 to a /29"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if tt.err == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tt.err)
			}
		})
	}
}

func TestLoadManagerSubnetSettings(t *testing.T) {
	write := func(t *testing.T, content string) string {
		home := t.TempDir()
		path := KTRDR().ConfigPath(home)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		return home
	}
	m, err := LoadManager(t.TempDir())
	require.NoError(t, err)
	assert.Equal(t, DefaultSubnetPool(), m.Subnets.pool())
	assert.Equal(t, 27, m.Subnets.prefix())

	m, err = LoadManager(write(t, `{"max_slot": 35, "subnet_pool": "10.50.0.0/20", "subnet_prefix": 28}`))
	require.NoError(t, err)
	assert.Equal(t, SubnetPool{pfx("10.50.0.0/20")}, m.Subnets.pool())
	assert.Equal(t, 28, m.Subnets.prefix())
	assert.Equal(t, m.Subnets, m.on(Engine{Context: "big", Host: "big"}).Subnets, "another engine, the same pool")

	_, err = LoadManager(write(t, `{"subnet_pool": "10.50.0.1/20"}`))
	assert.ErrorContains(t, err, "config.json: subnet_pool 10.50.0.1/20 has host bits set")
}

// routeLine is one /proc/net/route line for dst/bits on iface, written the
// way this host's kernel writes it.
func routeLine(iface, prefix string) string {
	p := pfx(prefix)
	word := func(b [4]byte) string {
		var out [4]byte
		binary.BigEndian.PutUint32(out[:], binary.NativeEndian.Uint32(b[:]))
		return strings.ToUpper(hex.EncodeToString(out[:]))
	}
	var mask [4]byte
	binary.BigEndian.PutUint32(mask[:], ^uint32(0)<<(32-p.Bits()))
	if p.Bits() == 0 {
		mask = [4]byte{}
	}
	return fmt.Sprintf("%s\t%s\t00000000\t0001\t0\t0\t0\t%s\t0\t0\t0", iface, word(p.Addr().As4()), word(mask))
}

const routeHeader = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"

func TestParseRoutes(t *testing.T) {
	t.Run("this machine's table", func(t *testing.T) {
		if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
			t.Skip("the sample was written by a little-endian kernel")
		}
		data := routeHeader +
			"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
			"docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n" +
			"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
		routes, err := parseRoutes([]byte(data))
		require.NoError(t, err)
		assert.Equal(t, []hostRoute{{"docker0", pfx("172.17.0.0/16")}, {"eth0", pfx("192.0.2.0/24")}}, routes, "the default route is left out")
	})
	t.Run("written as this host writes it", func(t *testing.T) {
		data := routeHeader + routeLine("wg0", "10.8.0.0/24") + "\n" + routeLine("eth0", "0.0.0.0/0") + "\n" + routeLine("tun0", "100.64.0.1/32") + "\n"
		routes, err := parseRoutes([]byte(data))
		require.NoError(t, err)
		assert.Equal(t, []hostRoute{{"wg0", pfx("10.8.0.0/24")}, {"tun0", pfx("100.64.0.1/32")}}, routes)
	})
	t.Run("empty", func(t *testing.T) {
		routes, err := parseRoutes(nil)
		require.NoError(t, err)
		assert.Empty(t, routes)
	})
	for name, line := range map[string]string{
		"short line":     "eth0\t000200C0\t00000000",
		"not hex":        "eth0\tXX0200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
		"gappy mask":     "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FF00FF\t0\t0\t0",
		"short hex word": "eth0\t0200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseRoutes([]byte(routeHeader + line + "\n"))
			assert.ErrorContains(t, err, "/proc/net/route")
		})
	}
}

// inspectJSON is what docker 20.10's `docker network inspect` prints for
// the default bridge, a compose network of project p with subnet s, and
// the null network.
func inspectJSON(nets ...engineNetwork) string {
	var parts []string
	for _, n := range nets {
		var cfg []string
		for _, s := range n.Subnets {
			cfg = append(cfg, fmt.Sprintf(`{"Subnet": %q, "Gateway": %q}`, s, s.Addr().Next()))
		}
		labels := "{}"
		if n.Project != "" {
			labels = fmt.Sprintf(`{"com.docker.compose.network": %q, "com.docker.compose.project": %q, "com.docker.compose.version": "2.40.3"}`, n.Key, n.Project)
		}
		parts = append(parts, fmt.Sprintf(`{"Name": %q, "Id": %q, "Scope": "local", "Driver": "bridge", "EnableIPv6": false,
  "IPAM": {"Driver": "default", "Options": null, "Config": [%s]}, "Internal": false, "Containers": {}, "Options": {}, "Labels": %s}`,
			n.Name, n.ID, strings.Join(cfg, ", "), labels))
	}
	return "[\n" + strings.Join(parts, ",\n") + "\n]\n"
}

func TestParseNetworkInspect(t *testing.T) {
	data := `[
    {
        "Name": "bridge",
        "Id": "886b8be5c05880676181d947dce56a6892bcb294d14f5eaf8ea607e4fd63ab2b",
        "Scope": "local",
        "Driver": "bridge",
        "IPAM": {"Driver": "default", "Options": null, "Config": [{"Subnet": "172.17.0.0/16"}]},
        "Labels": {}
    },
    {
        "Name": "none",
        "Id": "de3b9481e7ab",
        "Driver": "null",
        "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Labels": {}
    },
    {
        "Name": "ktrdr--a_default",
        "Id": "0123",
        "IPAM": {"Driver": "default", "Options": null, "Config": [{"Subnet": "172.16.0.0/27", "Gateway": "172.16.0.1"}, {"Subnet": "fd00:1::/64"}]},
        "Labels": {"com.docker.compose.network": "default", "com.docker.compose.project": "ktrdr--a"}
    }
]`
	nets, err := parseNetworkInspect([]byte(data))
	require.NoError(t, err)
	assert.Equal(t, []engineNetwork{
		{Name: "bridge", ID: "886b8be5c05880676181d947dce56a6892bcb294d14f5eaf8ea607e4fd63ab2b", Subnets: []netip.Prefix{pfx("172.17.0.0/16")}},
		{Name: "none", ID: "de3b9481e7ab"},
		{Name: "ktrdr--a_default", ID: "0123", Project: "ktrdr--a", Key: "default", Subnets: []netip.Prefix{pfx("172.16.0.0/27")}},
	}, nets, "IPv6 subnets are left out")

	nets, err = parseNetworkInspect([]byte(inspectJSON(engineNetwork{Name: "x", Subnets: []netip.Prefix{pfx("10.1.0.0/24")}})))
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{pfx("10.1.0.0/24")}, nets[0].Subnets)

	_, err = parseNetworkInspect([]byte(`[{"Name": "odd", "IPAM": {"Config": [{"Subnet": "10.1.0.0"}]}}]`))
	assert.ErrorContains(t, err, `network odd has subnet "10.1.0.0", which is not a CIDR`)
	_, err = parseNetworkInspect([]byte(`Error: oops`))
	assert.Error(t, err)
	nets, err = parseNetworkInspect(nil)
	assert.NoError(t, err)
	assert.Empty(t, nets)
}

func TestSubnetBits(t *testing.T) {
	for _, tt := range []struct{ containers, least, want int }{
		{0, 27, 27}, {1, 27, 27}, {9, 27, 27}, {14, 27, 27}, {15, 27, 26}, {30, 27, 26}, {31, 27, 25},
		{1, 29, 28}, {5, 28, 28}, {6, 28, 27}, {4, 24, 24}, {100000, 27, 16},
	} {
		assert.Equal(t, tt.want, subnetBits(tt.containers, tt.least), "%d containers, at least /%d", tt.containers, tt.least)
	}
}

func TestAllocateSubnets(t *testing.T) {
	pool := SubnetPool{pfx("172.16.0.0/24"), pfx("10.9.0.0/26")}
	held := func(ps ...string) []heldSubnet {
		var out []heldSubnet
		for _, p := range ps {
			out = append(out, heldSubnet{Prefix: pfx(p)})
		}
		return out
	}
	needs := []subnetNeed{{"back", 27}, {"default", 26}}
	tests := []struct {
		name    string
		held    []heldSubnet
		kept    map[string]netip.Prefix
		want    map[string]string
		missing []string
	}{
		{"empty engine", nil, nil, map[string]string{"back": "172.16.0.0/27", "default": "172.16.0.64/26"}, nil},
		{"skips what is held, also a larger or smaller block", held("172.16.0.0/26", "172.16.0.70/32"), nil,
			map[string]string{"back": "172.16.0.96/27", "default": "172.16.0.128/26"}, nil},
		{"a route over the whole first pool: the second one", held("172.16.0.0/16"), nil,
			map[string]string{"back": "10.9.0.0/27"}, []string{"default"}},
		{"kept where still valid", nil, map[string]netip.Prefix{"back": pfx("172.16.0.224/27"), "default": pfx("10.9.0.0/26")},
			map[string]string{"back": "172.16.0.224/27", "default": "10.9.0.0/26"}, nil},
		{"a kept subnet now held is given anew", held("172.16.0.224/28"), map[string]netip.Prefix{"back": pfx("172.16.0.224/27")},
			map[string]string{"back": "172.16.0.0/27", "default": "172.16.0.64/26"}, nil},
		{"a kept subnet outside the pool (the pool changed), too small, or not a network is given anew", nil,
			map[string]netip.Prefix{"back": pfx("10.200.0.0/27"), "default": pfx("172.16.0.0/27"), "x": netip.PrefixFrom(netip.MustParseAddr("172.16.0.1"), 27)},
			map[string]string{"back": "172.16.0.0/27", "default": "172.16.0.64/26"}, nil},
		{"exhausted", held("172.16.0.0/24", "10.9.0.0/27"), nil, map[string]string{"back": "10.9.0.32/27"}, []string{"default"}},
		{"nothing free at all", held("172.16.0.0/24", "10.9.0.0/26"), nil, map[string]string{}, []string{"back", "default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, missing := allocateSubnets(pool, tt.held, needs, tt.kept)
			assert.Equal(t, tt.want, prefixStrings(got))
			var keys []string
			for _, n := range missing {
				keys = append(keys, n.Key)
			}
			assert.Equal(t, tt.missing, keys)
			for k, s := range got {
				for _, h := range tt.held {
					assert.False(t, s.Overlaps(h.Prefix), "%s %s overlaps held %s", k, s, h.Prefix)
				}
			}
		})
	}
}

// Picking from a large pool stays fast however much of it is held.
func TestFirstFreeJumpsOverHeldSpace(t *testing.T) {
	var taken []netip.Prefix
	for i := range 4000 {
		taken = append(taken, netip.PrefixFrom(numAddr(addrNum(netip.MustParseAddr("10.0.0.0"))+uint32(i)*256), 24))
	}
	start := time.Now()
	got, ok := firstFree(SubnetPool{pfx("10.0.0.0/8")}, taken, 27)
	require.True(t, ok)
	assert.Equal(t, pfx("10.15.160.0/27"), got)
	t.Logf("found after 4000 held /24s in %s", time.Since(start))
}

// writeStack writes a compose file and loads it as a sandbox's stack.
func writeStack(t *testing.T, content string, env map[string]string) *StackFile {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "docker-compose.sandbox.yml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	sf, err := LoadStackFile(t.Context(), path, env)
	require.NoError(t, err)
	return sf
}

func TestStackNetworks(t *testing.T) {
	t.Run("the implicit default network", func(t *testing.T) {
		sf := writeStack(t, `
services:
  a: {image: x}
  b: {image: x, scale: 3}
  c: {image: x, deploy: {replicas: 2}}
  h: {image: x, network_mode: host}
  p: {image: x, profiles: [debug], networks: [side]}
networks:
  side: {}
`, nil)
		assert.Equal(t, []StackNetwork{{Key: "default", Name: "ktrdr--x_default", Containers: 6, Pooled: true}}, sf.Networks("ktrdr--x"),
			"replicas counted; a host-network service joins none; a profile's network is not made")
	})
	t.Run("declared networks", func(t *testing.T) {
		sf := writeStack(t, `
services:
  api: {image: x, networks: [default, back, obs, shared, own, fixed, mac]}
  db:
    image: x
    networks:
      back: {}
      static: {ipv4_address: 10.77.0.5}
  worker: {image: x, networks: {back: {aliases: [w]}}}
networks:
  back: {}
  obs: {external: true}
  shared: {name: ktrdr-shared}
  own: {name: "${COMPOSE_PROJECT_NAME}-own"}
  fixed: {ipam: {config: [{subnet: 10.66.0.0/24}]}}
  static: {}
  mac: {driver: macvlan}
`, map[string]string{"COMPOSE_PROJECT_NAME": "ktrdr--x"})
		assert.Equal(t, []StackNetwork{
			{Key: "back", Name: "ktrdr--x_back", Containers: 3, Pooled: true},
			{Key: "default", Name: "ktrdr--x_default", Containers: 1, Pooled: true},
			{Key: "fixed", Name: "ktrdr--x_fixed", Containers: 1, Why: "the file sets its ipam", Fixed: []netip.Prefix{pfx("10.66.0.0/24")}},
			{Key: "mac", Name: "ktrdr--x_mac", Containers: 1, Why: "its driver is macvlan"},
			{Key: "own", Name: "ktrdr--x-own", Containers: 1, Pooled: true},
			{Key: "shared", Name: "ktrdr-shared", Containers: 1, Why: "the file names it ktrdr-shared: one network for every sandbox"},
			{Key: "static", Name: "ktrdr--x_static", Containers: 1, Why: "service db has a static address on it"},
		}, sf.Networks("ktrdr--x"), "external networks are not made")
	})
}

// subnetFixture is a manager on a temporary HOME whose docker answers
// `network ls` and `network inspect` with nets, and a route table holding
// routes.
type subnetFixture struct {
	m *Manager
	r *fakeRunner
}

func newSubnetFixture(t *testing.T, home string, nets []engineNetwork, routes ...string) *subnetFixture {
	t.Helper()
	table := routeHeader + routeLine("eth0", "0.0.0.0/0") + "\n"
	for _, r := range routes {
		table += routeLine("eth0", r) + "\n"
	}
	path := filepath.Join(t.TempDir(), "route")
	require.NoError(t, os.WriteFile(path, []byte(table), 0o644))
	old := hostRoutesFile
	hostRoutesFile = path
	t.Cleanup(func() { hostRoutesFile = old })
	r := &fakeRunner{handle: networksHandler(nets, nil)}
	return &subnetFixture{m: &Manager{Profile: KTRDR(), Home: home, Runner: r, Now: time.Now}, r: r}
}

// networksHandler answers docker's network ls and inspect with nets.
func networksHandler(nets []engineNetwork, pause func()) func(c driver.Cmd) ([]byte, error) {
	return func(c driver.Cmd) ([]byte, error) {
		args := c.Args
		if len(args) > 1 && args[0] == "--context" {
			args = args[2:]
		}
		switch {
		case len(args) >= 2 && args[0] == "network" && args[1] == "ls":
			if pause != nil {
				pause()
			}
			var ids []string
			for _, n := range nets {
				ids = append(ids, n.ID)
			}
			return []byte(strings.Join(ids, "\n") + "\n"), nil
		case len(args) >= 2 && args[0] == "network" && args[1] == "inspect":
			return []byte(inspectJSON(nets...)), nil
		}
		return nil, fmt.Errorf("unexpected command %v", c.Args)
	}
}

const twoNetworks = `
services:
  backend: {image: x, networks: [default, back]}
  db: {image: x, networks: [back]}
networks:
  back: {}
`

func TestReserveSubnets(t *testing.T) {
	sf := writeStack(t, twoNetworks, nil)
	home := t.TempDir()
	other := &Manager{Profile: KTRDR(), Home: home}
	require.NoError(t, other.writeSubnetRecord("ktrdr--other", map[string]netip.Prefix{"default": pfx("172.16.0.64/26")}))
	f := newSubnetFixture(t, home, []engineNetwork{
		{Name: "bridge", ID: "b1", Subnets: []netip.Prefix{pfx("172.17.0.0/16")}},
		{Name: "elsewhere", ID: "e1", Subnets: []netip.Prefix{pfx("172.16.0.0/27")}},
	}, "172.16.0.32/27")

	got, err := f.m.reserveSubnets(t.Context(), sf, "ktrdr--x")
	require.NoError(t, err)
	want := map[string]netip.Prefix{"back": pfx("172.16.0.128/27"), "default": pfx("172.16.0.160/27")}
	assert.Equal(t, want, got, "past an engine network, a host route and another sandbox's record")
	assert.Equal(t, []string{"docker network ls -q", "docker network inspect b1 e1"}, f.r.commands(), "one listing of every network")
	rec := fileText(t, filepath.Join(home, ".ktrdr", "sandbox", "instances", "ktrdr--x", SubnetsFile))
	assert.JSONEq(t, `{"version": 1, "engine": "local", "networks": {"back": "172.16.0.128/27", "default": "172.16.0.160/27"}}`, rec)

	t.Run("kept across down and up", func(t *testing.T) {
		require.NoError(t, other.writeSubnetRecord("ktrdr--y", nil)) // another sandbox came meanwhile
		again, err := f.m.reserveSubnets(t.Context(), sf, "ktrdr--x")
		require.NoError(t, err)
		assert.Equal(t, want, again)
	})
	t.Run("another sandbox avoids them", func(t *testing.T) {
		y, err := f.m.reserveSubnets(t.Context(), writeStack(t, "services: {a: {image: x}}", nil), "ktrdr--y")
		require.NoError(t, err)
		assert.Equal(t, map[string]netip.Prefix{"default": pfx("172.16.0.192/27")}, y)
	})
	t.Run("a stack without networks of its own takes no lock and asks nothing", func(t *testing.T) {
		f.r.calls = nil
		none, err := f.m.reserveSubnets(t.Context(), writeStack(t, "services: {a: {image: x, network_mode: host}}", nil), "ktrdr--z")
		require.NoError(t, err)
		assert.Empty(t, none)
		assert.Empty(t, f.r.commands())
		assert.NoFileExists(t, filepath.Join(home, ".ktrdr", "sandbox", "instances", "ktrdr--z", SubnetsFile))
	})
}

func TestReserveSubnetsKeepsWhatExists(t *testing.T) {
	sf := writeStack(t, twoNetworks, nil)
	home := t.TempDir()
	m0 := &Manager{Profile: KTRDR(), Home: home}
	require.NoError(t, m0.writeSubnetRecord("ktrdr--x", map[string]netip.Prefix{"default": pfx("172.16.0.0/27"), "back": pfx("172.16.0.32/27")}))
	f := newSubnetFixture(t, home, []engineNetwork{
		// made by this suite with the recorded subnet: repeated, so compose sees its configuration unchanged
		{Name: "ktrdr--x_default", ID: "d1", Project: "ktrdr--x", Key: "default", Subnets: []netip.Prefix{pfx("172.16.0.0/27")}},
		// made before the suite gave subnets: it keeps Docker's, and the override says nothing of it
		{Name: "ktrdr--x_back", ID: "b1", Project: "ktrdr--x", Key: "back", Subnets: []netip.Prefix{pfx("172.18.0.0/16")}},
	})
	got, err := f.m.reserveSubnets(t.Context(), sf, "ktrdr--x")
	require.NoError(t, err)
	assert.Equal(t, map[string]netip.Prefix{"default": pfx("172.16.0.0/27")}, got)
	rec := fileText(t, filepath.Join(home, ".ktrdr", "sandbox", "instances", "ktrdr--x", SubnetsFile))
	assert.JSONEq(t, `{"version": 1, "engine": "local", "networks": {"back": "172.16.0.32/27", "default": "172.16.0.0/27"}}`, rec, "the record stands")

	t.Run("a network of that name that is not the project's is left alone", func(t *testing.T) {
		f := newSubnetFixture(t, t.TempDir(), []engineNetwork{
			{Name: "ktrdr--x_back", ID: "b1", Project: "someone-else", Key: "back", Subnets: []netip.Prefix{pfx("172.16.0.0/27")}},
		})
		got, err := f.m.reserveSubnets(t.Context(), sf, "ktrdr--x")
		require.NoError(t, err)
		assert.Equal(t, map[string]netip.Prefix{"default": pfx("172.16.0.32/27")}, got)
	})
}

func TestReserveSubnetsFileSetsItsOwn(t *testing.T) {
	const file = `
services:
  api: {image: x, networks: [default, fixed]}
  db:
    image: x
    networks:
      fixed: {ipv4_address: 172.16.0.10}
networks:
  fixed: {ipam: {config: [{subnet: 172.16.0.0/24}]}}
`
	sf := writeStack(t, file, nil)
	f := newSubnetFixture(t, t.TempDir(), nil)
	got, err := f.m.reserveSubnets(t.Context(), sf, "ktrdr--a")
	require.NoError(t, err)
	assert.Equal(t, map[string]netip.Prefix{"default": pfx("172.16.1.0/27")}, got, "the file's subnet stands, and no pool subnet overlaps it")

	t.Run("its subnet already in use: refused before anything starts", func(t *testing.T) {
		f := newSubnetFixture(t, t.TempDir(), []engineNetwork{
			{Name: "ktrdr--a_fixed", ID: "f1", Project: "ktrdr--a", Key: "fixed", Subnets: []netip.Prefix{pfx("172.16.0.0/24")}},
		})
		_, err := f.m.reserveSubnets(t.Context(), sf, "ktrdr--b")
		var ce *SubnetConflictError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "fixed", ce.Network)
		assert.Contains(t, err.Error(), "network fixed of ktrdr--b sets subnet 172.16.0.0/24, which Docker network ktrdr--a_fixed (compose project ktrdr--a) already uses; nothing was started")
	})
	t.Run("its own network, running: no conflict", func(t *testing.T) {
		f := newSubnetFixture(t, t.TempDir(), []engineNetwork{
			{Name: "ktrdr--a_fixed", ID: "f1", Project: "ktrdr--a", Key: "fixed", Subnets: []netip.Prefix{pfx("172.16.0.0/24")}},
		})
		_, err := f.m.reserveSubnets(t.Context(), sf, "ktrdr--a")
		assert.NoError(t, err)
	})
}

func TestReserveSubnetsExhausted(t *testing.T) {
	sf := writeStack(t, twoNetworks, nil)
	home := t.TempDir()
	m0 := &Manager{Profile: KTRDR(), Home: home}
	require.NoError(t, m0.writeSubnetRecord("ktrdr--other", map[string]netip.Prefix{"default": pfx("10.9.0.32/27")}))
	f := newSubnetFixture(t, home, []engineNetwork{{Name: "n", ID: "n1", Subnets: []netip.Prefix{pfx("10.9.0.64/27")}}}, "10.9.0.96/27")
	f.m.Subnets = SubnetSettings{Pool: SubnetPool{pfx("10.9.0.0/25")}}
	_, err := f.m.reserveSubnets(t.Context(), sf, "ktrdr--x")
	var ee *SubnetPoolExhaustedError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, &SubnetPoolExhaustedError{ID: "ktrdr--x", Pool: SubnetPool{pfx("10.9.0.0/25")}, Need: 2, Found: 1,
		Missing: []string{"default (/27)"}, Sandboxes: 1, Networks: 1, Routes: 1}, ee)
	assert.Equal(t, "no free subnet in pool 10.9.0.0/25 on the local engine for ktrdr--x: it needs 2, 1 free (no room for network default (/27)); "+
		"in the pool, 1 subnets are recorded by other sandboxes, 1 used by Docker networks, 1 by host routes; nothing was started", err.Error())
	assert.NoFileExists(t, filepath.Join(home, ".ktrdr", "sandbox", "instances", "ktrdr--x", SubnetsFile), "nothing recorded")
}

// On another engine: its networks, the same pool, and none of this host's routes.
func TestReserveSubnetsOnAnotherEngine(t *testing.T) {
	sf := writeStack(t, "services: {a: {image: x}}", nil)
	f := newSubnetFixture(t, t.TempDir(), []engineNetwork{{Name: "there", ID: "t1", Subnets: []netip.Prefix{pfx("172.16.0.0/27")}}}, "172.16.0.32/27")
	got, err := f.m.on(Engine{Context: "big", Host: "big.example"}).reserveSubnets(t.Context(), sf, "ktrdr--r")
	require.NoError(t, err)
	assert.Equal(t, map[string]netip.Prefix{"default": pfx("172.16.0.32/27")}, got, "a local route does not hold the remote engine's space")
	assert.Equal(t, []string{"docker --context big network ls -q", "docker --context big network inspect t1"}, f.r.commands())
	rec := fileText(t, filepath.Join(f.m.Home, ".ktrdr", "sandbox", "instances", "ktrdr--r", SubnetsFile))
	assert.Contains(t, rec, `"engine": "big"`)
}

func TestEngineNetworksInspectFailures(t *testing.T) {
	nets := []engineNetwork{{Name: "a", ID: "a1", Subnets: []netip.Prefix{pfx("10.1.0.0/24")}}, {Name: "b", ID: "b1"}}
	for _, tt := range []struct {
		name   string
		stderr string
		err    string
	}{
		{"a network removed since it was listed", "Error response from daemon: network b1 not found", ""},
		{"the engine fails", "Cannot connect to the Docker daemon", "inspect the networks of engine local"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeRunner{handle: func(c driver.Cmd) ([]byte, error) {
				if c.Args[1] == "inspect" {
					return []byte(inspectJSON(nets[0])), &driver.ExitError{Cmd: "docker network inspect", Code: 1, Stderr: tt.stderr}
				}
				return networksHandler(nets, nil)(c)
			}}
			m := &Manager{Profile: KTRDR(), Home: t.TempDir(), Runner: r}
			got, err := m.engineNetworks(t.Context())
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, nets[:1], got)
		})
	}
	m := &Manager{Profile: KTRDR(), Home: t.TempDir(), Runner: &fakeRunner{}}
	got, err := m.engineNetworks(t.Context())
	require.NoError(t, err)
	assert.Empty(t, got, "no networks: no inspect")
}

// Two ups at once never pick the same subnet: the lock makes their
// read-choose-record one step each.
func TestReserveSubnetsConcurrently(t *testing.T) {
	home := t.TempDir()
	sf := writeStack(t, twoNetworks, nil)
	newSubnetFixture(t, home, nil) // a route table without the pool's space
	const n = 8
	var wg sync.WaitGroup
	results := make([]map[string]netip.Prefix, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each its own manager, as separate processes are; a slow engine
			// widens the window between reading the records and writing one.
			r := &fakeRunner{handle: networksHandler(nil, func() { time.Sleep(5 * time.Millisecond) })}
			m := &Manager{Profile: KTRDR(), Home: home, Runner: r}
			results[i], errs[i] = m.reserveSubnets(t.Context(), sf, fmt.Sprintf("ktrdr--c%d", i))
		}()
	}
	wg.Wait()
	var all []netip.Prefix
	for i := range n {
		require.NoError(t, errs[i])
		require.Len(t, results[i], 2)
		for _, s := range results[i] {
			all = append(all, s)
		}
	}
	for i, a := range all {
		for _, b := range all[i+1:] {
			assert.False(t, a.Overlaps(b), "%s and %s overlap", a, b)
		}
	}
}

func TestSubnetLockRefusesAForeignFile(t *testing.T) {
	home := t.TempDir()
	m := &Manager{Profile: KTRDR(), Home: home}
	state := m.Profile.StateDir(home)
	require.NoError(t, os.MkdirAll(state, 0o755))
	target := filepath.Join(t.TempDir(), "elsewhere")
	require.NoError(t, os.Symlink(target, filepath.Join(state, subnetsLock)))
	_, err := m.lockSubnets(t.Context())
	var ue *UnsafePathError
	require.ErrorAs(t, err, &ue)
	assert.NoFileExists(t, target, "nothing made through the link")
}

// The override's networks section merges with the file as compose merges
// it: the implicit default network and a declared one get the subnet.
func TestSubnetOverrideMergesWithTheFile(t *testing.T) {
	sf := writeStack(t, twoNetworks, nil)
	sp, err := KTRDR().ForStack(&StackFile{Path: sf.Path, Services: []FileService{{Name: "backend", Ports: []FilePort{{Var: "KTRDR_API_PORT", Default: 8000, Target: 8000}}}}})
	require.NoError(t, err)
	data, err := overrideDoc(sp, sf, "ktrdr--x", false, nil, map[string]netip.Prefix{"default": pfx("172.16.0.0/27"), "back": pfx("172.16.0.32/27")})
	require.NoError(t, err)
	dir := filepath.Dir(sf.Path)
	base, err := os.ReadFile(sf.Path)
	require.NoError(t, err)
	project, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{WorkingDir: dir, ConfigFiles: []types.ConfigFile{
		{Filename: sf.Path, Content: base}, {Filename: filepath.Join(dir, OverrideFile), Content: data},
	}}, func(o *loader.Options) { o.SetProjectName("ktrdr--x", true) })
	require.NoError(t, err)
	for key, want := range map[string]string{"default": "172.16.0.0/27", "back": "172.16.0.32/27"} {
		n := project.Networks[key]
		assert.Equal(t, "ktrdr--x_"+key, n.Name)
		require.Len(t, n.Ipam.Config, 1, key)
		assert.Equal(t, want, n.Ipam.Config[0].Subnet, key)
	}
	assert.Len(t, project.Networks, 2)
}

// Destroy removes the instance folder, and with it the record: the
// subnets are free for the next sandbox.
func TestDestroyReleasesSubnets(t *testing.T) {
	e := lcSetup(t)
	c := e.create(t, CreateOptions{Name: "feat-a"})
	require.NoError(t, e.m.writeSubnetRecord("ktrdr--feat-a", map[string]netip.Prefix{"default": pfx("172.16.0.0/27")}))
	records, err := e.m.subnetRecords()
	require.NoError(t, err)
	require.Contains(t, records, "ktrdr--feat-a")

	_, err = e.m.Destroy(t.Context(), DestroyOptions{Dir: c.Path})
	require.NoError(t, err)
	assert.NoFileExists(t, filepath.Join(e.instDir("ktrdr--feat-a"), SubnetsFile))
	records, err = e.m.subnetRecords()
	require.NoError(t, err)
	assert.NotContains(t, records, "ktrdr--feat-a")
}

// Up stops at a full pool before it makes anything: no compose up, no
// network, volume or container.
func TestUpRefusesWhenThePoolIsFull(t *testing.T) {
	nets := []engineNetwork{{Name: "full", ID: "f1", Subnets: []netip.Prefix{pfx("10.9.0.0/24")}}}
	m, root, r := upFixture(t, func(c driver.Cmd) ([]byte, error) {
		if len(c.Args) >= 2 && c.Args[0] == "network" {
			return networksHandler(nets, nil)(c)
		}
		return nil, nil
	})
	m.Subnets = SubnetSettings{Pool: SubnetPool{pfx("10.9.0.0/24")}}
	_, err := m.Up(t.Context(), UpOptions{Dir: root, NoWait: true})
	var ee *SubnetPoolExhaustedError
	require.ErrorAs(t, err, &ee)
	for _, c := range r.commands() {
		assert.False(t, strings.HasPrefix(c, "docker compose") && (strings.Contains(c, " up") || strings.Contains(c, " create")), c)
		assert.NotRegexp(t, `^docker (network|volume) create|^docker (run|create)`, c)
	}
	assert.True(t, slices.Contains(r.commands(), "docker network ls -q"))
}

func FuzzParseNetworkInspect(f *testing.F) {
	f.Add([]byte(inspectJSON(engineNetwork{Name: "bridge", ID: "b", Subnets: []netip.Prefix{pfx("172.17.0.0/16")}},
		engineNetwork{Name: "ktrdr--a_default", ID: "d", Project: "ktrdr--a", Key: "default", Subnets: []netip.Prefix{pfx("172.16.0.0/27")}})))
	f.Add([]byte(`[{"Name": "v6", "IPAM": {"Config": [{"Subnet": "fd00::/64"}, {"Subnet": "10.0.0.1/8"}]}}]`))
	f.Add([]byte(`[{"IPAM": {"Config": null}}, {}]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		nets, err := parseNetworkInspect(data)
		if err != nil {
			return
		}
		for _, n := range nets {
			for _, s := range n.Subnets {
				if !s.Addr().Is4() || s != s.Masked() {
					t.Fatalf("network %q: subnet %s is not a masked IPv4 prefix", n.Name, s)
				}
			}
		}
	})
}

func FuzzParseRoutes(f *testing.F) {
	f.Add([]byte(routeHeader + routeLine("docker0", "172.17.0.0/16") + "\n" + routeLine("eth0", "0.0.0.0/0") + "\n"))
	f.Add([]byte(routeHeader + "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"))
	f.Add([]byte("eth0 00000000 00000000 0001 0 0 0 FFFFFFFF\n"))
	f.Add([]byte(routeHeader))
	f.Fuzz(func(t *testing.T, data []byte) {
		routes, err := parseRoutes(data)
		if err != nil {
			return
		}
		for _, r := range routes {
			if !r.Prefix.Addr().Is4() || r.Prefix != r.Prefix.Masked() || r.Prefix.Bits() == 0 {
				t.Fatalf("route %v: not a masked IPv4 prefix other than the default", r)
			}
		}
	})
}

func FuzzSubnetPool(f *testing.F) {
	f.Add([]byte(`"172.16.0.0/16"`), 27)
	f.Add([]byte(`["10.0.0.0/8", "192.168.0.0/16"]`), 29)
	f.Add([]byte(`["10.0.0.1/30"]`), 16)
	f.Fuzz(func(t *testing.T, data []byte, prefix int) {
		var p SubnetPool
		if json.Unmarshal(data, &p) != nil {
			return
		}
		s := SubnetSettings{Pool: p, Prefix: prefix}
		if s.Validate() != nil {
			return
		}
		// A valid pool hands out subnets inside itself that overlap nothing held.
		held := []heldSubnet{{Prefix: pfx("10.0.0.0/9")}}
		got, _ := allocateSubnets(s.pool(), held, []subnetNeed{{"a", s.prefix()}, {"b", s.prefix()}}, nil)
		for k, sub := range got {
			if !slices.ContainsFunc(s.pool(), func(q netip.Prefix) bool { return q.Contains(sub.Addr()) && q.Bits() <= sub.Bits() }) {
				t.Fatalf("%s: %s is outside pool %s", k, sub, s.pool())
			}
			if sub.Overlaps(held[0].Prefix) {
				t.Fatalf("%s: %s overlaps %s", k, sub, held[0].Prefix)
			}
		}
		if a, b := got["a"], got["b"]; a.IsValid() && b.IsValid() && a.Overlaps(b) {
			t.Fatalf("a %s and b %s overlap", a, b)
		}
	})
}
