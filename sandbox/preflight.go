package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ktrdr/sandboxkit/sandbox/driver"
)

// PortHolder is whoever holds a host port: a container (found through
// `docker ps`) or a process (found through /proc on Linux). The zero value is
// a holder this user cannot see.
type PortHolder struct {
	Project        string // compose project of the container, if any
	Container      string // container name
	ComposeService string // compose service of the container, if any
	PID            int    // listening process, when no container publishes the port
	Command        string // its command line
}

// String describes the holder for a person, e.g.
// "container ktrdr--feat-b-backend-1 (compose project ktrdr--feat-b, service backend)"
// or "process 12345 (python3 -m http.server 8001)".
func (h PortHolder) String() string {
	switch {
	case h.Container != "" && h.Project != "":
		s := fmt.Sprintf("container %s (compose project %s", h.Container, h.Project)
		if h.ComposeService != "" {
			s += ", service " + h.ComposeService
		}
		return s + ")"
	case h.Container != "":
		return "container " + h.Container
	case h.PID < 0:
		return h.Command
	case h.PID > 0 && h.Command != "":
		return fmt.Sprintf("process %d (%s)", h.PID, h.Command)
	case h.PID > 0:
		return fmt.Sprintf("process %d", h.PID)
	default:
		return "an unknown process (not visible to this user)"
	}
}

// PortConflict is one host port of a slot that something other than the
// sandbox itself holds.
type PortConflict struct {
	Port    int
	Key     string // the port variable, e.g. KTRDR_API_PORT
	Service string // the compose service that publishes it, e.g. backend
	Label   string // what a person calls it, e.g. "API"
	Holder  PortHolder
}

// String reads "port 8003 (KTRDR_API_PORT, backend API) is held by container …".
func (c PortConflict) String() string {
	what := c.Key
	if c.Service != "" || c.Label != "" {
		what += ", " + strings.TrimSpace(c.Service+" "+c.Label)
	}
	return fmt.Sprintf("port %d (%s) is held by %s", c.Port, what, c.Holder)
}

// PortInUseError reports the host ports of a slot that are held by another
// stack or process, so that starting the slot's containers would fail. The
// command layer maps it to its "port conflict" exit code and adds the remedy.
type PortInUseError struct {
	Slot      int
	Conflicts []PortConflict // in the profile's port order
}

func (e *PortInUseError) Error() string {
	var b strings.Builder
	if len(e.Conflicts) == 1 {
		fmt.Fprintf(&b, "slot %d: 1 port is in use:", e.Slot)
	} else {
		fmt.Fprintf(&b, "slot %d: %d ports are in use:", e.Slot, len(e.Conflicts))
	}
	for _, c := range e.Conflicts {
		b.WriteString("\n  ")
		b.WriteString(c.String())
	}
	return b.String()
}

// Summary is a one-line form for messages such as "slot 3 skipped: …":
// the first conflict, and how many more there are.
func (e *PortInUseError) Summary() string {
	if len(e.Conflicts) == 0 {
		return fmt.Sprintf("slot %d: ports in use", e.Slot)
	}
	s := e.Conflicts[0].String()
	if n := len(e.Conflicts) - 1; n > 0 {
		s += fmt.Sprintf(" (and %d more)", n)
	}
	return s
}

// PortsFree reports whether every host port of slot can be bound right now,
// and lists those that cannot, in the profile's port order. It only binds
// and closes sockets: no docker call, a few microseconds per port. An
// allocator uses it to skip taken slots cheaply and calls Preflight on a
// taken slot only to say who holds it.
func PortsFree(p *Profile, slot int) (bool, []int) {
	var taken []int
	for _, r := range p.Ports {
		if port := r.Port(slot); !portBindable(port) {
			taken = append(taken, port)
		}
	}
	return len(taken) == 0, taken
}

// Preflight checks, before any container starts, that every host port of
// slot is free for the stack of compose project ownProject. A port is free
// if it can be bound the way Docker publishes it (0.0.0.0 and [::]), or if a
// running container of ownProject already publishes it: that is what makes
// `up` on a running sandbox a no-op rather than a conflict. For every other
// taken port it names the holder: a container from one `docker ps` call, or
// else the listening process from /proc (Linux). If docker cannot be asked,
// process holders are still reported. The error is a *PortInUseError.
//
// Docker runs only when a port is taken. An engine configured without the
// userland proxy publishes ports through iptables alone, where a bind test
// cannot see them; compose then reports the clash itself.
func Preflight(ctx context.Context, r driver.Runner, p *Profile, slot int, ownProject string) error {
	return PreflightPorts(ctx, r, p, slot, p.PortsFor(slot), ownProject)
}

// PreflightPorts is Preflight for the ports a sandbox's env file actually
// gives compose (keyed by port variable), which decide over the slot's rules.
func PreflightPorts(ctx context.Context, r driver.Runner, p *Profile, slot int, ports map[string]int, ownProject string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("port preflight for slot %d: %w", slot, err)
	}
	ports = withLiteral(p, ports)
	var taken []PortRule
	for _, rule := range append(slices.Clone(p.Ports), p.Literal...) {
		if !portBindable(ports[rule.Key]) {
			taken = append(taken, rule)
		}
	}
	if len(taken) == 0 {
		return nil
	}

	var published []publishedPort
	if r != nil {
		// Docker being unavailable is not a preflight failure: process
		// holders are still found below.
		out, err := r.Run(ctx, driver.Cmd{Name: "docker", Args: []string{"ps", "--no-trunc", "--format", psPortsFormat}})
		if err == nil {
			published = parseDockerPorts(out)
		}
	}

	var conflicts []PortConflict
	var unresolved []int // indexes into conflicts whose holder is not a container
	for _, rule := range taken {
		port := ports[rule.Key]
		c := PortConflict{Port: port, Key: rule.Key, Service: rule.Service, Label: rule.Label}
		if h, ok := containerHolder(published, port, ownProject); ok {
			if ownProject != "" && h.Project == ownProject {
				continue // our own stack: not a conflict
			}
			c.Holder = h
		} else {
			unresolved = append(unresolved, len(conflicts))
		}
		conflicts = append(conflicts, c)
	}
	if len(unresolved) > 0 {
		ports := make([]int, len(unresolved))
		for i, ci := range unresolved {
			ports[i] = conflicts[ci].Port
		}
		holders := processHolders(ports)
		for _, ci := range unresolved {
			conflicts[ci].Holder = holders[conflicts[ci].Port]
		}
	}
	if len(conflicts) == 0 {
		return nil
	}
	return &PortInUseError{Slot: slot, Conflicts: conflicts}
}

// containerHolder returns the container publishing host TCP port port,
// preferring one of ownProject when several match (an IPv4 and an IPv6
// publication of two different containers cannot both exist, but stay safe).
func containerHolder(published []publishedPort, port int, ownProject string) (PortHolder, bool) {
	var found PortHolder
	ok := false
	for _, pp := range published {
		if port < pp.HostFrom || port > pp.HostTo {
			continue
		}
		h := PortHolder{Project: pp.Project, Container: pp.Container, ComposeService: pp.Service}
		if ownProject != "" && pp.Project == ownProject {
			return h, true
		}
		if !ok {
			found, ok = h, true
		}
	}
	return found, ok
}

// portBindable reports whether a TCP listener could take port on every
// address Docker publishes on. On Linux a listener on 127.0.0.1:P also makes
// the 0.0.0.0:P bind fail; elsewhere the loopback bind is tested as well.
// An IPv6 wildcard bind that fails for any reason but "address in use" means
// the host has no IPv6, which is not a conflict.
func portBindable(port int) bool {
	addr := strconv.Itoa(port)
	if !tryBind("tcp4", "0.0.0.0:"+addr) {
		return false
	}
	if runtime.GOOS != "linux" && !tryBind("tcp4", "127.0.0.1:"+addr) {
		return false
	}
	l, err := net.Listen("tcp6", "[::]:"+addr)
	if err == nil {
		l.Close()
		return true
	}
	return !errors.Is(err, syscall.EADDRINUSE)
}

func tryBind(network, addr string) bool {
	l, err := net.Listen(network, addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// publishedPort is a host TCP port range that a running container publishes.
type publishedPort struct {
	HostFrom, HostTo int // inclusive; equal for a single port
	Container        string
	Project          string // com.docker.compose.project label
	Service          string // com.docker.compose.service label
}

// dockerPSLine is the part of `docker ps --format '{{json .}}'` we read.
// psPortsFormat makes docker ps print one JSON object per container with
// only the fields preflight reads ({{json .}} costs several times more).
const psPortsFormat = `{"Names":{{json .Names}},"Ports":{{json .Ports}},"Labels":{{json .Labels}}}`

type dockerPSLine struct {
	Names  string `json:"Names"`
	Ports  string `json:"Ports"`
	Labels string `json:"Labels"`
}

// parseDockerPorts reads `docker ps --format '{{json .}}'` output, one JSON
// object per line, and returns every published host TCP port range with its
// container and compose labels. Lines that do not parse are skipped.
// Ports look like "0.0.0.0:8001->8000/tcp, :::8001->8000/tcp",
// "[::]:8001->8000/tcp", "127.0.0.1:5000-5002->5000-5002/tcp" or "5432/tcp"
// (not published).
func parseDockerPorts(out []byte) []publishedPort {
	var res []publishedPort
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var l dockerPSLine
		if json.Unmarshal([]byte(line), &l) != nil || l.Ports == "" {
			continue
		}
		labels := driver.ParseLabels(l.Labels)
		name, _, _ := strings.Cut(l.Names, ",") // first name
		for _, entry := range strings.Split(l.Ports, ",") {
			from, to, ok := parsePublishedEntry(strings.TrimSpace(entry))
			if !ok {
				continue
			}
			res = append(res, publishedPort{
				HostFrom: from, HostTo: to, Container: name,
				Project: labels["com.docker.compose.project"],
				Service: labels["com.docker.compose.service"],
			})
		}
	}
	return res
}

// parsePublishedEntry parses one "HOSTIP:HOSTPORT[-END]->CPORT[-END]/PROTO"
// entry and returns its host TCP port range.
func parsePublishedEntry(e string) (from, to int, ok bool) {
	host, container, found := strings.Cut(e, "->")
	if !found {
		return 0, 0, false // exposed, not published
	}
	if i := strings.LastIndexByte(container, '/'); i >= 0 && container[i+1:] != "tcp" {
		return 0, 0, false
	}
	i := strings.LastIndexByte(host, ':')
	if i < 0 {
		return 0, 0, false
	}
	ports := host[i+1:]
	a, b, isRange := strings.Cut(ports, "-")
	from, err := strconv.Atoi(a)
	if err != nil || from < 1 || from > 65535 {
		return 0, 0, false
	}
	to = from
	if isRange {
		to, err = strconv.Atoi(b)
		if err != nil || to < from || to > 65535 {
			return 0, 0, false
		}
	}
	return from, to, true
}

// parseProcNetTCP reads the text of /proc/net/tcp or /proc/net/tcp6 and
// returns the socket inodes in LISTEN state (0A) by local port. The header
// and lines that do not parse are skipped.
func parseProcNetTCP(text []byte) map[int][]uint64 {
	res := map[int][]uint64{}
	for _, line := range strings.Split(string(text), "\n") {
		f := strings.Fields(line)
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		i := strings.LastIndexByte(f[1], ':')
		if i < 0 {
			continue
		}
		port, err := strconv.ParseUint(f[1][i+1:], 16, 16)
		if err != nil || port == 0 {
			continue
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil || inode == 0 {
			continue
		}
		res[int(port)] = append(res[int(port)], inode)
	}
	return res
}

// withLiteral returns ports plus the stack's literal host ports, keyed as
// their rules are.
func withLiteral(p *Profile, ports map[string]int) map[string]int {
	if len(p.Literal) == 0 {
		return ports
	}
	all := maps.Clone(ports)
	for _, r := range p.Literal {
		all[r.Key] = r.Slot0
	}
	return all
}

// preflight checks the slot's ports on the manager's engine: locally by
// binding them (PreflightPorts); on another engine by asking it which ports
// its containers publish and by connecting to each port of its host, so that
// nothing binds here.
func (m *Manager) preflight(ctx context.Context, p *Profile, slot int, ports map[string]int, ownProject string) error {
	if !m.engine.Remote() {
		return PreflightPorts(ctx, m.Runner, p, slot, ports, ownProject)
	}
	return RemotePreflight(ctx, m.Runner, m.engine.Host, p, slot, ports, ownProject)
}

// RemotePreflight is the port preflight of an engine on another host: a
// port is taken when a container of the engine (other than ownProject's)
// publishes it, or when something on host accepts a TCP connection on it.
func RemotePreflight(ctx context.Context, r driver.Runner, host string, p *Profile, slot int, ports map[string]int, ownProject string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("port preflight for slot %d: %w", slot, err)
	}
	out, err := r.Run(ctx, driver.Cmd{Name: "docker", Args: []string{"ps", "--no-trunc", "--format", psPortsFormat}})
	if err != nil {
		return fmt.Errorf("port preflight for slot %d: ask the engine which ports its containers publish: %w", slot, err)
	}
	published := parseDockerPorts(out)
	ports = withLiteral(p, ports)
	var conflicts []PortConflict
	for _, rule := range append(slices.Clone(p.Ports), p.Literal...) {
		port := ports[rule.Key]
		c := PortConflict{Port: port, Key: rule.Key, Service: rule.Service, Label: rule.Label}
		if h, ok := containerHolder(published, port, ownProject); ok {
			if ownProject != "" && h.Project == ownProject {
				continue
			}
			c.Holder = h
			conflicts = append(conflicts, c)
			continue
		}
		d := net.Dialer{Timeout: 500 * time.Millisecond}
		if conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port))); err == nil {
			conn.Close()
			c.Holder = PortHolder{Command: "something on " + host + " that accepts connections", PID: -1}
			conflicts = append(conflicts, c)
		}
	}
	if len(conflicts) == 0 {
		return nil
	}
	return &PortInUseError{Slot: slot, Conflicts: conflicts}
}
