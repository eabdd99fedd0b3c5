package sandbox

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/bits"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// Subnets. An engine with Docker's default address pools has room for
// about 30 bridge networks, and every sandbox makes at least one, so the
// suite gives each network compose creates for a sandbox a small subnet
// of its own, from a pool it manages (SubnetPool), through the ipam
// section of its override file. Before each up (reserveSubnets):
//
//   - The networks are those compose creates for the stack
//     (StackFile.Networks): every network a default-profile service joins,
//     the implicit "default" included, except external ones. The suite
//     leaves to the file (and to Docker's own pools) a network whose ipam
//     the file sets (its subnet is the file's: the file can then run only
//     once per engine, and up says so when another network holds that
//     subnet), one on which a service has a static ipv4_address or
//     ipv6_address (it needs the file's own subnet), one whose driver is
//     not bridge, one with IPv4 disabled, and one the file names with a
//     name that does not hold the instance id (one network on the engine,
//     shared by every sandbox of the file).
//   - Each gets the smallest subnet that holds its containers (replicas
//     counted) twice over, with at least 8 addresses to spare for one-off
//     `compose run` containers, and never smaller than a /SubnetPrefix
//     (27 by default): up to 14 containers on a /27.
//   - A subnet never overlaps a network the engine has (one `docker
//     network ls -q` and one `docker network inspect`), an IPv4 route of
//     this host (/proc/net/route, default route excluded; only for the
//     local engine, on Linux), or a subnet another sandbox has recorded,
//     whatever engine it runs on.
//   - The choice is recorded in the sandbox's state folder
//     (instances/<id>/subnets.json), so a sandbox keeps its subnets across
//     down and up, as long as they are still in the pool and free; destroy
//     removes that folder and so releases them. The records are read and
//     written under one host-wide lock (subnets.lock in the state folder),
//     so concurrent ups never pick the same subnet.
//   - A network that already exists for the project (a stack that runs)
//     keeps what it has: its subnet is written again only when it is the
//     recorded one, so compose sees the configuration it created the
//     network with and never recreates it. A network of that name that is
//     not the project's is not the suite's: it is left alone.
//   - When the pool has no room, up stops before it starts anything
//     (*SubnetPoolExhaustedError), naming the pool and what it needs.

// DefaultSubnetPrefix is the prefix length of the smallest subnet a network
// gets when config.json does not set subnet_prefix.
const DefaultSubnetPrefix = 27

// SubnetsFile is the name of a sandbox's subnet record in its instance folder.
const SubnetsFile = "subnets.json"

// subnetsLock is the host-wide lock file of every subnet record, in the
// state folder.
const subnetsLock = "subnets.lock"

// hostRoutesFile is where the local engine's host lists its IPv4 routes.
var hostRoutesFile = "/proc/net/route"

// DefaultSubnetPool is the pool of a config.json that sets no subnet_pool:
// 172.16.0.0/16, the one /16 of the private block 172.16.0.0/12 that
// Docker's default pools (172.17–172.31 and 192.168.0.0/16) leave out.
func DefaultSubnetPool() SubnetPool { return SubnetPool{netip.MustParsePrefix("172.16.0.0/16")} }

// SubnetPool is the IPv4 address space the suite hands subnets out from.
// In config.json it is one CIDR or a list of them ("subnet_pool":
// "10.50.0.0/16" or ["10.50.0.0/16", "10.51.0.0/16"]); subnets are taken
// from the first that has room.
type SubnetPool []netip.Prefix

// UnmarshalJSON reads one CIDR string or a list of them.
func (p *SubnetPool) UnmarshalJSON(data []byte) error {
	if string(bytes.TrimSpace(data)) == "null" {
		return nil
	}
	var list []string
	if err := json.Unmarshal(data, &list); err != nil {
		var one string
		if err := json.Unmarshal(data, &one); err != nil {
			return fmt.Errorf("subnet_pool: %s is neither a CIDR string nor a list of them", bytes.TrimSpace(data))
		}
		list = []string{one}
	}
	out := make(SubnetPool, 0, len(list))
	for _, s := range list {
		pr, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("subnet_pool: %q is not a CIDR such as 10.50.0.0/16", s)
		}
		out = append(out, pr)
	}
	*p = out
	return nil
}

// String lists the pool's CIDRs.
func (p SubnetPool) String() string {
	parts := make([]string, len(p))
	for i, pr := range p {
		parts[i] = pr.String()
	}
	return strings.Join(parts, ", ")
}

// reservedRanges are IPv4 ranges no bridge network can use.
var reservedRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/3"), // multicast, reserved, broadcast
}

// SubnetSettings are the subnet pool and the smallest subnet of config.json.
type SubnetSettings struct {
	Pool   SubnetPool // nil: DefaultSubnetPool
	Prefix int        // 0: DefaultSubnetPrefix
}

// pool returns the pool in use.
func (s SubnetSettings) pool() SubnetPool {
	if len(s.Pool) == 0 {
		return DefaultSubnetPool()
	}
	return s.Pool
}

// prefix returns the prefix length of the smallest subnet.
func (s SubnetSettings) prefix() int {
	if s.Prefix == 0 {
		return DefaultSubnetPrefix
	}
	return s.Prefix
}

// Validate checks the settings: a prefix of 16–29, and a pool of IPv4
// CIDRs written as networks (no host bits), each at least one smallest
// subnet large, that overlap neither each other nor the ranges no bridge
// can use (0/8, loopback, link-local, multicast and above).
func (s SubnetSettings) Validate() error {
	if s.Prefix != 0 && (s.Prefix < 16 || s.Prefix > 29) {
		return fmt.Errorf("subnet_prefix %d: a network's subnet must be a /16 to a /29", s.Prefix)
	}
	if s.Pool != nil && len(s.Pool) == 0 {
		return errors.New("subnet_pool is empty: give at least one CIDR, e.g. \"172.16.0.0/16\"")
	}
	for i, pr := range s.Pool {
		switch {
		case !pr.Addr().Is4():
			return fmt.Errorf("subnet_pool %s: only IPv4 pools are supported", pr)
		case pr.Masked() != pr:
			return fmt.Errorf("subnet_pool %s has host bits set: write it as %s", pr, pr.Masked())
		case pr.Bits() > s.prefix():
			return fmt.Errorf("subnet_pool %s is smaller than one subnet (/%d, subnet_prefix)", pr, s.prefix())
		}
		for _, r := range reservedRanges {
			if pr.Overlaps(r) {
				return fmt.Errorf("subnet_pool %s overlaps %s, which no bridge network can use", pr, r)
			}
		}
		for _, q := range s.Pool[:i] {
			if pr.Overlaps(q) {
				return fmt.Errorf("subnet_pool %s overlaps %s of the same pool", pr, q)
			}
		}
	}
	return nil
}

// StackNetwork is one network compose creates for a sandbox's stack.
type StackNetwork struct {
	Key        string         // the file's key: "default", "backend"
	Name       string         // its name on the engine: <project>_<key>, or the file's name:
	Containers int            // containers on it: the replicas of every default-profile service that joins it
	Pooled     bool           // the suite gives it a subnet from the pool
	Why        string         // when not Pooled: why the file's settings stand
	Fixed      []netip.Prefix // the IPv4 subnets the file's ipam sets
}

// Networks lists the networks compose creates for the stack as compose
// project project: every non-external network a default-profile service
// joins (the implicit "default" one included), by key.
func (sf *StackFile) Networks(project string) []StackNetwork {
	if sf.project == nil {
		return nil
	}
	byKey := map[string]*StackNetwork{}
	for _, svc := range sf.project.Services {
		for key, sn := range svc.Networks {
			n, ok := sf.project.Networks[key]
			if !ok || bool(n.External) {
				continue
			}
			sn2 := byKey[key]
			if sn2 == nil {
				sn2 = &StackNetwork{Key: key}
				sn2.Name, sn2.Pooled, sn2.Why, sn2.Fixed = networkSettings(sf.project.Name, project, key, n)
				byKey[key] = sn2
			}
			sn2.Containers += max(svc.GetScale(), 0)
			if sn != nil && (sn.Ipv4Address != "" || sn.Ipv6Address != "") && sn2.Pooled {
				sn2.Pooled, sn2.Why = false, "service "+svc.Name+" has a static address on it"
			}
		}
	}
	out := make([]StackNetwork, 0, len(byKey))
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		out = append(out, *byKey[key])
	}
	return out
}

// networkSettings is what the file says of network key: its engine name
// in project, and whether the pool gives it its subnet (else why not).
// model is the project name the file was loaded under: a name of that
// form is compose's own, <project>_<key>.
func networkSettings(model, project, key string, n types.NetworkConfig) (name string, pooled bool, why string, fixed []netip.Prefix) {
	name = project + "_" + key
	explicit := n.Name != "" && n.Name != model+"_"+key
	if explicit {
		// ${COMPOSE_PROJECT_NAME} in it was the model's name; compose
		// gives it the project's.
		name = strings.ReplaceAll(n.Name, model, project)
	}
	for _, c := range n.Ipam.Config {
		if c == nil {
			continue
		}
		if pr, err := netip.ParsePrefix(c.Subnet); err == nil && pr.Addr().Is4() {
			fixed = append(fixed, pr.Masked())
		}
	}
	switch {
	case n.Ipam.Driver != "" || len(n.Ipam.Config) > 0:
		return name, false, "the file sets its ipam", fixed
	case n.Driver != "" && n.Driver != "bridge":
		return name, false, "its driver is " + n.Driver, fixed
	case n.EnableIPv4 != nil && !*n.EnableIPv4:
		return name, false, "the file disables IPv4 on it", fixed
	case explicit && !strings.Contains(name, project):
		return name, false, "the file names it " + name + ": one network for every sandbox", fixed
	}
	return name, true, "", fixed
}

// subnetBits is the prefix length of the subnet of a network with
// containers containers: the smallest that holds them twice over, with at
// least 8 addresses to spare (one-off containers), besides the network,
// gateway and broadcast addresses; never smaller than a /least.
func subnetBits(containers, least int) int {
	need := containers + max(containers, 8) + 3
	b := least
	for b > 16 && 1<<(32-b) < need {
		b--
	}
	return b
}

// SubnetPoolExhaustedError reports that the pool has no room for the
// sandbox's networks. Nothing was started.
type SubnetPoolExhaustedError struct {
	ID      string
	Engine  Engine
	Pool    SubnetPool
	Need    int      // subnets the sandbox needs from the pool
	Found   int      // of those, how many were free
	Missing []string // the networks left without one, as "key (/27)"
	// What holds the rest of the pool: subnets other sandboxes recorded,
	// the engine's networks, the host's routes.
	Sandboxes, Networks, Routes int
}

func (e *SubnetPoolExhaustedError) Error() string {
	engine := "the local engine"
	if e.Engine.Context != "" {
		engine = "engine " + e.Engine.Name()
	}
	return fmt.Sprintf("no free subnet in pool %s on %s for %s: it needs %d, %d free (no room for network %s); in the pool, %d subnets are recorded by other sandboxes, %d used by Docker networks, %d by host routes; nothing was started",
		e.Pool, engine, e.ID, e.Need, e.Found, strings.Join(e.Missing, ", network "), e.Sandboxes, e.Networks, e.Routes)
}

// SubnetConflictError reports a network whose subnet the file sets and
// another network of the engine already uses: compose could not create it.
// Nothing was started.
type SubnetConflictError struct {
	ID      string
	File    string
	Network string       // the file's key
	Subnet  netip.Prefix // what the file sets
	Other   string       // the engine's network that holds it
	Project string       // that network's compose project, if it has one
}

func (e *SubnetConflictError) Error() string {
	holder := "Docker network " + e.Other
	if e.Project != "" {
		holder += " (compose project " + e.Project + ")"
	}
	return fmt.Sprintf("%s: network %s of %s sets subnet %s, which %s already uses; nothing was started", e.File, e.Network, e.ID, e.Subnet, holder)
}

// engineNetwork is one network of a Docker engine, as inspect shows it.
type engineNetwork struct {
	Name    string
	ID      string
	Project string // its com.docker.compose.project label
	Key     string // its com.docker.compose.network label
	Subnets []netip.Prefix
}

// parseNetworkInspect reads the JSON array `docker network inspect`
// prints. Only IPv4 subnets are kept; one that is not a CIDR is an error.
func parseNetworkInspect(data []byte) ([]engineNetwork, error) {
	var raw []struct {
		Name   string
		ID     string `json:"Id"`
		Labels map[string]string
		IPAM   struct {
			Config []struct{ Subnet string }
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("read docker network inspect: %w", err)
	}
	out := make([]engineNetwork, 0, len(raw))
	for _, r := range raw {
		n := engineNetwork{Name: r.Name, ID: r.ID, Project: r.Labels["com.docker.compose.project"], Key: r.Labels["com.docker.compose.network"]}
		for _, c := range r.IPAM.Config {
			if c.Subnet == "" {
				continue
			}
			pr, err := netip.ParsePrefix(c.Subnet)
			if err != nil {
				return nil, fmt.Errorf("read docker network inspect: network %s has subnet %q, which is not a CIDR", r.Name, c.Subnet)
			}
			if pr.Addr().Is4() {
				n.Subnets = append(n.Subnets, pr.Masked())
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// engineNetworks lists every network of the engine with its subnets: one
// ls, one inspect. A network removed between the two is left out.
func (m *Manager) engineNetworks(ctx context.Context) ([]engineNetwork, error) {
	out, err := m.Runner.Run(ctx, driver.Cmd{Name: "docker", Args: []string{"network", "ls", "-q"}})
	if err != nil {
		return nil, fmt.Errorf("list the networks of engine %s: %w", m.engine.Name(), err)
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return nil, nil
	}
	out, err = m.Runner.Run(ctx, driver.Cmd{Name: "docker", Args: append([]string{"network", "inspect"}, ids...)})
	var ee *driver.ExitError
	if err != nil && !(errors.As(err, &ee) && onlyVanished(ee.Stderr)) {
		return nil, fmt.Errorf("inspect the networks of engine %s: %w", m.engine.Name(), err)
	}
	return parseNetworkInspect(out)
}

// onlyVanished reports whether every line of an inspect's stderr says that
// a network was not found (removed since it was listed).
func onlyVanished(stderr string) bool {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for _, l := range lines {
		l = strings.ToLower(l)
		if !strings.Contains(l, "not found") && !strings.Contains(l, "no such network") {
			return false
		}
	}
	return len(lines) > 0
}

// hostRoute is one IPv4 route of this host.
type hostRoute struct {
	Iface  string
	Prefix netip.Prefix
}

// parseRoutes reads /proc/net/route: a header line, then one route per
// line with the destination and mask as the kernel's hexadecimal words
// (in the host's byte order). The default route is left out.
func parseRoutes(data []byte) ([]hostRoute, error) {
	var out []hostRoute
	sc := bufio.NewScanner(bytes.NewReader(data))
	header := true
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if header {
			header = false
			if f[0] == "Iface" {
				continue
			}
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("read %s: line %q has %d fields, not 11", hostRoutesFile, sc.Text(), len(f))
		}
		dst, err1 := routeWord(f[1])
		mask, err2 := routeWord(f[7])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("read %s: line %q: %w", hostRoutesFile, sc.Text(), err)
		}
		m := binary.BigEndian.Uint32(mask[:])
		ones := bits.OnesCount32(m)
		if m != ^uint32(0)<<(32-ones) {
			return nil, fmt.Errorf("read %s: line %q: mask %s is not a prefix", hostRoutesFile, sc.Text(), f[7])
		}
		if ones == 0 {
			continue // the default route
		}
		out = append(out, hostRoute{Iface: f[0], Prefix: netip.PrefixFrom(netip.AddrFrom4(dst), ones).Masked()})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", hostRoutesFile, err)
	}
	return out, nil
}

// routeWord turns the kernel's hexadecimal word (the address's bytes read
// as a host-order integer) into the address's bytes.
func routeWord(s string) ([4]byte, error) {
	var b [4]byte
	if len(s) != 8 {
		return b, fmt.Errorf("%q is not 8 hexadecimal digits", s)
	}
	raw, err := hex.DecodeString(s)
	if err != nil {
		return b, fmt.Errorf("%q is not 8 hexadecimal digits", s)
	}
	binary.NativeEndian.PutUint32(b[:], binary.BigEndian.Uint32(raw))
	return b, nil
}

// hostRoutes lists this host's IPv4 routes, for the local engine on Linux;
// nothing elsewhere.
func (m *Manager) hostRoutes() ([]hostRoute, error) {
	if m.engine.Remote() || runtime.GOOS != "linux" {
		return nil, nil
	}
	data, err := os.ReadFile(hostRoutesFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the host's routes: %w", err)
	}
	return parseRoutes(data)
}

// subnetRecord is a sandbox's instances/<id>/subnets.json.
type subnetRecord struct {
	Version  int                     `json:"version"`
	Engine   string                  `json:"engine"` // where its networks live, for a person reading it
	Networks map[string]netip.Prefix `json:"networks"`
}

// subnetRecords reads every sandbox's record. A record that cannot be read
// is left out: it is rewritten at its sandbox's next up, and its networks,
// if they exist, are on the engine's list.
func (m *Manager) subnetRecords() (map[string]subnetRecord, error) {
	base := filepath.Join(m.Profile.StateDir(m.Home), "instances")
	entries, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the subnet records in %s: %w", base, err)
	}
	out := map[string]subnetRecord{}
	for _, en := range entries {
		dir, ok := m.keptDir(en.Name())
		if !ok {
			continue
		}
		data, err := readOwnFile(filepath.Join(dir, SubnetsFile), MaxCheckoutFile)
		if err != nil {
			continue
		}
		var rec subnetRecord
		if json.Unmarshal(data, &rec) == nil && rec.Version == 1 {
			out[en.Name()] = rec
		}
	}
	return out, nil
}

// lockSubnets takes the host-wide subnet lock, waiting at most LockWait.
// A lock file that is not a regular file was not made by the suite and is
// refused.
func (m *Manager) lockSubnets(ctx context.Context) (unlock func(), err error) {
	dir, err := ownDir(m.Profile.StateDir(m.Home))
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, subnetsLock)
	return lockFile(ctx, path, path, "another sandbox:up")
}

// Held-subnet kinds, for the exhaustion report.
const (
	heldBySandbox = iota
	heldByNetwork
	heldByRoute
)

// heldSubnet is address space a new subnet must not overlap.
type heldSubnet struct {
	Prefix netip.Prefix
	Kind   int
}

// subnetNeed is one network that needs a subnet of 2^(32-Bits) addresses.
type subnetNeed struct {
	Key  string
	Bits int
}

// allocateSubnets gives each need a subnet of its size from pool that
// overlaps nothing held nor any subnet given before it. A kept subnet (the
// sandbox's record) stays when it is in the pool, large enough and free.
// It returns the subnets and the needs left without one.
func allocateSubnets(pool SubnetPool, held []heldSubnet, needs []subnetNeed, kept map[string]netip.Prefix) (map[string]netip.Prefix, []subnetNeed) {
	taken := make([]netip.Prefix, 0, len(held)+len(needs))
	for _, h := range held {
		taken = append(taken, h.Prefix)
	}
	free := func(c netip.Prefix) bool {
		return !slices.ContainsFunc(taken, c.Overlaps)
	}
	inPool := func(c netip.Prefix) bool {
		return slices.ContainsFunc(pool, func(p netip.Prefix) bool { return p.Bits() <= c.Bits() && p.Contains(c.Addr()) })
	}
	got := map[string]netip.Prefix{}
	var rest []subnetNeed
	for _, n := range needs {
		if k, ok := kept[n.Key]; ok && k.Addr().Is4() && k == k.Masked() && k.Bits() <= n.Bits && inPool(k) && free(k) {
			got[n.Key] = k
			taken = append(taken, k)
		} else {
			rest = append(rest, n)
		}
	}
	var missing []subnetNeed
	for _, n := range rest {
		c, ok := firstFree(pool, taken, n.Bits)
		if !ok {
			missing = append(missing, n)
			continue
		}
		got[n.Key] = c
		taken = append(taken, c)
	}
	return got, missing
}

// firstFree returns the lowest subnet of size /b in pool that overlaps
// none of taken: a sweep over taken's address ranges in order, each
// candidate that meets one jumping past it.
func firstFree(pool SubnetPool, taken []netip.Prefix, b int) (netip.Prefix, bool) {
	type span struct{ start, end uint64 } // [start, end)
	spans := make([]span, 0, len(taken))
	for _, t := range taken {
		if t.Addr().Is4() {
			s := uint64(addrNum(t.Masked().Addr()))
			spans = append(spans, span{s, s + uint64(1)<<(32-t.Bits())})
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	size := uint64(1) << (32 - b)
	for _, p := range pool {
		if p.Bits() > b {
			continue
		}
		start := uint64(addrNum(p.Masked().Addr()))
		end := start + uint64(1)<<(32-p.Bits()) // exclusive
		i := 0
		for c := start; c+size <= end; {
			for i < len(spans) && spans[i].end <= c {
				i++ // wholly below the candidate
			}
			if i == len(spans) || spans[i].start >= c+size {
				return netip.PrefixFrom(numAddr(uint32(c)), b), true
			}
			c = (spans[i].end + size - 1) / size * size // past the span, aligned
		}
	}
	return netip.Prefix{}, false
}

func addrNum(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func numAddr(n uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return netip.AddrFrom4(b)
}

// reserveSubnets chooses the subnets of the networks compose will create
// for the stack sf as project id, records them, and returns what the
// override gives each network (by key). See the comment at the top of this
// file.
func (m *Manager) reserveSubnets(ctx context.Context, sf *StackFile, id string) (map[string]netip.Prefix, error) {
	nets := sf.Networks(id)
	if !slices.ContainsFunc(nets, func(n StackNetwork) bool { return n.Pooled || len(n.Fixed) > 0 }) {
		return nil, nil
	}
	unlock, err := m.lockSubnets(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	onEngine, err := m.engineNetworks(ctx)
	if err != nil {
		return nil, err
	}
	routes, err := m.hostRoutes()
	if err != nil {
		return nil, err
	}
	records, err := m.subnetRecords()
	if err != nil {
		return nil, err
	}
	mine := records[id].Networks
	pool := m.Subnets.pool()
	held := heldSpace(id, records, onEngine, routes)
	existing := map[string]engineNetwork{}
	for _, en := range onEngine {
		existing[en.Name] = en
	}

	out := map[string]netip.Prefix{}
	record := map[string]netip.Prefix{}
	var needs []subnetNeed
	for _, n := range nets {
		en, exists := existing[n.Name]
		for _, s := range n.Fixed {
			if exists {
				break // compose uses the network that is there; it creates none
			}
			for _, other := range onEngine {
				if slices.ContainsFunc(other.Subnets, s.Overlaps) {
					return nil, &SubnetConflictError{ID: id, File: sf.Path, Network: n.Key, Subnet: s, Other: other.Name, Project: other.Project}
				}
			}
			held = append(held, heldSubnet{s, heldByNetwork})
		}
		switch {
		case !n.Pooled:
		case exists && en.Project == id && en.Key == n.Key:
			// It runs: it keeps what it has. The override repeats its
			// subnet only when it made the network with it, so that
			// compose finds the configuration unchanged.
			if r, ok := mine[n.Key]; ok {
				record[n.Key] = r
				if slices.Contains(en.Subnets, r) {
					out[n.Key] = r
				}
			}
		case exists:
			// A network of that name that is not this project's: compose
			// uses it as it is; it is not the suite's to change.
		default:
			needs = append(needs, subnetNeed{Key: n.Key, Bits: subnetBits(n.Containers, m.Subnets.prefix())})
		}
	}
	got, missing := allocateSubnets(pool, held, needs, mine)
	if len(missing) > 0 {
		e := &SubnetPoolExhaustedError{ID: id, Engine: m.engine, Pool: pool, Need: len(needs), Found: len(needs) - len(missing)}
		for _, n := range missing {
			e.Missing = append(e.Missing, fmt.Sprintf("%s (/%d)", n.Key, n.Bits))
		}
		e.countHolders(held)
		return nil, e
	}
	maps.Copy(out, got)
	maps.Copy(record, got)
	if err := m.writeSubnetRecord(id, record); err != nil {
		return nil, err
	}
	return out, nil
}

// heldSpace is the address space sandbox id must keep clear of: the
// subnets other sandboxes recorded, the engine's networks, the host's routes.
func heldSpace(id string, records map[string]subnetRecord, onEngine []engineNetwork, routes []hostRoute) []heldSubnet {
	var held []heldSubnet
	for _, other := range slices.Sorted(maps.Keys(records)) {
		if other == id {
			continue
		}
		for _, s := range records[other].Networks {
			held = append(held, heldSubnet{s, heldBySandbox})
		}
	}
	for _, en := range onEngine {
		for _, s := range en.Subnets {
			held = append(held, heldSubnet{s, heldByNetwork})
		}
	}
	for _, r := range routes {
		held = append(held, heldSubnet{r.Prefix, heldByRoute})
	}
	return held
}

// countHolders counts what holds the pool's space, each subnet once.
func (e *SubnetPoolExhaustedError) countHolders(held []heldSubnet) {
	counted := map[netip.Prefix]bool{}
	for _, h := range held {
		if counted[h.Prefix] || !slices.ContainsFunc(e.Pool, h.Prefix.Overlaps) {
			continue
		}
		counted[h.Prefix] = true
		switch h.Kind {
		case heldBySandbox:
			e.Sandboxes++
		case heldByNetwork:
			e.Networks++
		case heldByRoute:
			e.Routes++
		}
	}
}

// writeSubnetRecord writes instances/<id>/subnets.json.
func (m *Manager) writeSubnetRecord(id string, nets map[string]netip.Prefix) error {
	dir, err := m.ownInstanceDir(id)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(subnetRecord{Version: 1, Engine: m.engine.Name(), Networks: nets}, "", "  ")
	if err != nil {
		return fmt.Errorf("record the subnets of %s: %w", id, err)
	}
	return WriteFileAtomic(filepath.Join(dir, SubnetsFile), append(data, '\n'), 0o644)
}

// subnetOverride is the override's networks section: each network's
// subnet as its ipam config.
func subnetOverride(subnets map[string]netip.Prefix) map[string]any {
	out := map[string]any{}
	keys := slices.Collect(maps.Keys(subnets))
	sort.Strings(keys)
	for _, k := range keys {
		out[k] = map[string]any{"ipam": map[string]any{"config": []any{map[string]string{"subnet": subnets[k].String()}}}}
	}
	return out
}
