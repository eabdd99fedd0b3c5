package e2e

// A second Docker engine that stands for a remote host. It runs in a network
// namespace of its own, reachable from the host only at 10.251.N.2 over a
// veth pair (the host side is 10.251.N.1), with its own data-root,
// exec-root, containerd, bridge and iptables; it never touches the system
// engine. Commands reach it through Docker contexts: NAME (tcp, port 2375,
// no TLS) and, with sshd in the namespace, NAME-ssh (ssh://root@10.251.N.2,
// whose remote `docker system dial-stdio` is pointed at this engine by the
// sshd's SetEnv). Published ports live at 10.251.N.2:<port>.
//
// The recipe and its pitfalls (Debian 12, Docker 20.10, cgroup v1) come
// from /work/shared/tools/remote-engine; nothing there is used at run time:
//   - `ip netns exec` mounts a fresh /sys and hides the cgroup mounts, so a
//     small fixed script replays them inside before it execs dockerd;
//   - --config-file points at `{}` so /etc/docker/daemon.json is not read;
//   - --tls=false avoids 20.10's 15 s delay on an insecure TCP listener;
//   - dockerd starts its own containerd under its --exec-root.
//
// The ssh client is given its configuration (key, known host) without
// touching /etc or ~/.ssh: the docker CLI runs `ssh` from PATH and takes no
// ssh options from a context or the environment (docker/cli's context
// endpoint calls connhelper.GetConnectionHelper(host), no DOCKER_SSH_OPTS),
// so the engine has a directory holding an `ssh` that runs the real one with
// -F <its config>; Env puts that directory first in PATH. Commands that use
// the ssh context must run with an environment made by Env.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	remoteNamePrefix = "e2eremote" // + N; at most 12 characters: veth names are limited to 15
	remoteFirstN     = 100         // 10.251.100.0/24 … 10.251.199.0/24; the reference tools default to N=0
	remoteLastN      = 199
	remoteBridgeIP   = "172.31.250.1/24" // the engine's docker0, inside its own namespace
	remoteTCPPort    = 2375
)

// remoteEngineOptions says what startRemoteEngine sets up besides the engine.
type remoteEngineOptions struct {
	SSH    bool     // also run sshd in the namespace and create the NAME-ssh context
	Images []string // images of the system engine to load into the new one (no registry is reachable)
	// Env is the environment whose docker configuration (DOCKER_CONFIG, or
	// HOME/.docker) receives the contexts: the one the commands under test
	// run with. nil: this process's environment. More environments can be
	// given later with CreateContexts.
	Env []string
}

// remoteEngine is a running second engine; its t.Cleanup removes it.
type remoteEngine struct {
	t        testing.TB
	Name     string // network namespace, tcp context; NAME-ssh is the ssh context
	N        int    // the third octet of its addresses
	HostIP   string // the host's end of the veth pair, as the remote sees the host
	IP       string // the remote's address
	StateDir string // /run/NAME: socket, pids, logs, keys, scripts
	DataDir  string // /var/lib/NAME-docker: the engine's data-root
	Socket   string // the engine's unix socket (reachable from this host only)
	HasSSH   bool

	SetupTime, TeardownTime time.Duration

	dockerd, sshd *remoteProc
	mu            sync.Mutex
	ctxEnvs       [][]string // environments holding the contexts
	usesRunSSHD   bool
}

// remoteProc is a process the harness started, and its end.
type remoteProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (p *remoteProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func remotePaths(name string) (state, data string) {
	return filepath.Join("/run", name), filepath.Join("/var/lib", name+"-docker")
}

// remotePrereqs says what is missing to start a remote engine, if anything.
func remotePrereqs(withSSH bool) error {
	if os.Geteuid() != 0 {
		return errors.New("a remote engine needs root (network namespaces, a second dockerd)")
	}
	need := []string{"ip", "dockerd", "docker"}
	if withSSH {
		need = append(need, "sshd", "ssh", "ssh-keygen")
	}
	var missing []string
	for _, c := range need {
		if _, err := lookPathSbin(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s (Debian: iproute2, docker.io, openssh-server, openssh-client)", strings.Join(missing, ", "))
	}
	return nil
}

// lookPathSbin is exec.LookPath that also looks in the sbin folders, which
// a non-login PATH may lack.
func lookPathSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// needRemoteEngine skips a test that cannot start a remote engine, except
// in CI where that is a failure.
func needRemoteEngine(t testing.TB, withSSH bool) {
	t.Helper()
	err := remotePrereqs(withSSH)
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI needs a second Docker engine: %v", err)
	}
	t.Skipf("cannot start a second Docker engine (%v); set CI=1 to make this a failure", err)
}

var remoteSweepOnce sync.Once

// startRemoteEngine starts a second engine in a fresh network namespace and
// registers its removal (containers, processes, mounts, namespace, veth,
// data, contexts, cgroups), which runs also when the test fails.
func startRemoteEngine(t testing.TB, opts remoteEngineOptions) *remoteEngine {
	t.Helper()
	needRemoteEngine(t, opts.SSH)
	t0 := time.Now()
	sweepRemotes(t)

	r := &remoteEngine{t: t, HasSSH: opts.SSH}
	r.claim(t)
	t.Cleanup(func() {
		t1 := time.Now()
		errs := teardownRemote(r.Name, r)
		r.TeardownTime = time.Since(t1)
		for _, err := range errs {
			t.Errorf("remote engine %s teardown: %v", r.Name, err)
		}
		t.Logf("remote engine %s removed in %.2fs", r.Name, r.TeardownTime.Seconds())
	})

	r.network(t)
	r.startDockerd(t)
	for _, img := range opts.Images {
		r.load(t, img)
	}
	if opts.SSH {
		r.startSSHD(t)
	}
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	r.CreateContexts(env)
	r.SetupTime = time.Since(t0)
	t.Logf("remote engine %s ready in %.2fs: tcp://%s:%d%s, published ports at %s:<port>", r.Name, r.SetupTime.Seconds(),
		r.IP, remoteTCPPort, map[bool]string{true: ", ssh://root@" + r.IP, false: ""}[opts.SSH], r.IP)
	return r
}

// Host is the remote's address: where its published ports are.
func (r *remoteEngine) Host() string { return r.IP }

// Context is the tcp context's name.
func (r *remoteEngine) Context() string { return r.Name }

// SSHContext is the ssh context's name ("" without sshd).
func (r *remoteEngine) SSHContext() string {
	if !r.HasSSH {
		return ""
	}
	return r.Name + "-ssh"
}

// TCPEndpoint and SSHEndpoint are the contexts' docker hosts.
func (r *remoteEngine) TCPEndpoint() string { return fmt.Sprintf("tcp://%s:%d", r.IP, remoteTCPPort) }
func (r *remoteEngine) SSHEndpoint() string { return "ssh://root@" + r.IP }

func (r *remoteEngine) sshDir() string          { return filepath.Join(r.StateDir, "ssh") }
func (r *remoteEngine) sshBinDir() string       { return filepath.Join(r.StateDir, "bin") }
func (r *remoteEngine) sshClientConfig() string { return filepath.Join(r.sshDir(), "client_config") }

// Env returns base with the engine's ssh wrapper first in PATH, so that
// the docker CLI reaches the ssh context with the engine's key and known
// host. Without sshd it returns base unchanged (a copy).
func (r *remoteEngine) Env(base []string) []string {
	out := make([]string, 0, len(base)+1)
	path := ""
	for _, kv := range base {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
			continue
		}
		out = append(out, kv)
	}
	if r.HasSSH {
		path = r.sshBinDir() + string(os.PathListSeparator) + path
	}
	return append(out, "PATH="+path)
}

// CreateContexts creates the engine's contexts in env's docker
// configuration (replacing stale ones of the same name); the engine's
// clean-up removes them.
func (r *remoteEngine) CreateContexts(env []string) {
	r.t.Helper()
	env = append([]string(nil), env...)
	r.mu.Lock()
	r.ctxEnvs = append(r.ctxEnvs, env)
	r.mu.Unlock()
	ctxs := [][2]string{{r.Context(), r.TCPEndpoint()}}
	if r.HasSSH {
		ctxs = append(ctxs, [2]string{r.SSHContext(), r.SSHEndpoint()})
	}
	for _, c := range ctxs {
		removeContext(env, c[0])
		out, err := runWithEnv(env, 30*time.Second, nil, "docker", "context", "create", c[0],
			"--description", "e2e remote engine "+r.Name, "--docker", "host="+c[1])
		require.NoError(r.t, err, "docker context create %s: %s", c[0], out)
	}
}

// Docker runs the docker CLI against the engine's unix socket (no
// context, no DOCKER_HOST involved).
func (r *remoteEngine) Docker(args ...string) result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"--host", "unix://" + r.Socket}, args...)...)
	cmd.Env = dockerFreeEnv()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	res, err := resultOf(cmd.Run(), out.String(), errb.String())
	if err != nil {
		r.t.Fatalf("docker %v on %s: %v", args, r.Name, err)
	}
	r.t.Logf("$ docker@%s %s\n%s", r.Name, strings.Join(args, " "), res)
	return res
}

// dockerFreeEnv is this process's environment without DOCKER_* variables.
func dockerFreeEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			out = append(out, kv)
		}
	}
	return out
}

// runWithEnv runs a command with env (nil: this process's) and returns its
// combined output.
func runWithEnv(env []string, timeout time.Duration, stdin io.Reader, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func removeContext(env []string, name string) error {
	if _, err := runWithEnv(env, 20*time.Second, nil, "docker", "context", "inspect", name); err != nil {
		return nil // not there
	}
	if out, err := runWithEnv(env, 20*time.Second, nil, "docker", "context", "rm", "-f", name); err != nil {
		return fmt.Errorf("docker context rm %s: %v: %s", name, err, out)
	}
	return nil
}

// claim picks a free N and creates the state folder (first: its existence
// is the claim) and the network namespace.
func (r *remoteEngine) claim(t testing.TB) {
	t.Helper()
	for n := remoteFirstN; n <= remoteLastN; n++ {
		name := remoteNamePrefix + strconv.Itoa(n)
		state, data := remotePaths(name)
		if exists("/run/netns/"+name) || exists(data) || linkExists("vh-"+name) || hostHasNet(n) {
			continue // someone else's, or a leftover the sweep could not remove: refused
		}
		if err := os.Mkdir(state, 0o700); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			t.Fatalf("remote engine: %v", err)
		}
		r.Name, r.N, r.StateDir, r.DataDir = name, n, state, data
		r.HostIP, r.IP = fmt.Sprintf("10.251.%d.1", n), fmt.Sprintf("10.251.%d.2", n)
		r.Socket = filepath.Join(state, "docker.sock")
		require.NoError(t, os.WriteFile(filepath.Join(state, "owner"), []byte(processIdentity(os.Getpid())), 0o600))
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			os.RemoveAll(state)
			if strings.Contains(string(out), "exists") {
				continue
			}
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
		return
	}
	t.Fatalf("remote engine: no free index in %d..%d (leftovers? see `ip netns list`)", remoteFirstN, remoteLastN)
}

// network adds the veth pair; the namespace has no default route: the
// remote can talk only to 10.251.N.0/24, i.e. to the host at HostIP.
func (r *remoteEngine) network(t testing.TB) {
	t.Helper()
	vh, vn := "vh-"+r.Name, "vn-"+r.Name
	for _, c := range [][]string{
		{"link", "add", vh, "type", "veth", "peer", "name", vn},
		{"link", "set", vn, "netns", r.Name},
		{"addr", "add", r.HostIP + "/24", "dev", vh},
		{"link", "set", vh, "up"},
		{"netns", "exec", r.Name, "ip", "addr", "add", r.IP + "/24", "dev", vn},
		{"netns", "exec", r.Name, "ip", "link", "set", vn, "up"},
		{"netns", "exec", r.Name, "ip", "link", "set", "lo", "up"},
	} {
		out, err := exec.Command("ip", c...).CombinedOutput()
		require.NoError(t, err, "ip %s: %s", strings.Join(c, " "), out)
	}
}

// inNetnsScript replays the cgroup mounts listed in its first argument
// (`ip netns exec` has just mounted a fresh /sys over them), then execs the
// rest of its arguments. It is fixed text: everything variable is an argument.
const inNetnsScript = `#!/bin/sh
set -e
m=$1; shift
while read -r src dir type opts _; do
  mkdir -p "$dir"; mount -t "$type" -o "$opts" "$src" "$dir"
done < "$m"
exec "$@"
`

// cgroupMounts is this process's cgroup mounts, as /proc/self/mounts lines.
func cgroupMounts() (string, error) {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && (f[1] == "/sys/fs/cgroup" || strings.HasPrefix(f[1], "/sys/fs/cgroup/")) {
			b.WriteString(line + "\n")
		}
	}
	return b.String(), nil
}

// startInNetns starts a long-running process in the namespace, in its own
// session, with its output in logName; it gets SIGTERM if this test process
// dies (a later run's sweep removes the rest).
func (r *remoteEngine) startInNetns(t testing.TB, logName string, argv ...string) *remoteProc {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(r.StateDir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", r.Name}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	require.NoError(t, cmd.Start(), "start %v", argv)
	p := &remoteProc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p
}

func (r *remoteEngine) startDockerd(t testing.TB) {
	t.Helper()
	mounts, err := cgroupMounts()
	require.NoError(t, err)
	dockerd, err := lookPathSbin("dockerd")
	require.NoError(t, err)
	// {} and not /etc/docker/daemon.json, whose settings would clash with the
	// flags; before 23.0 the engine's ID comes from a key file that defaults to
	// /etc/docker/key.json, i.e. the system engine's ID: give it its own.
	daemonJSON := "{}\n"
	if dockerdMajor(dockerd) < 23 {
		daemonJSON = fmt.Sprintf("{\"deprecated-key-path\": %q}\n", filepath.Join(r.StateDir, "key.json"))
	}
	files := map[string]string{"cgroup-mounts": mounts, "daemon.json": daemonJSON, "in-netns.sh": inNetnsScript}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(r.StateDir, name), []byte(content), 0o700))
	}
	require.NoError(t, os.MkdirAll(r.DataDir, 0o710))
	r.dockerd = r.startInNetns(t, "dockerd.log",
		filepath.Join(r.StateDir, "in-netns.sh"), filepath.Join(r.StateDir, "cgroup-mounts"),
		dockerd,
		"--config-file", filepath.Join(r.StateDir, "daemon.json"),
		"--data-root", r.DataDir,
		"--exec-root", filepath.Join(r.StateDir, "exec"),
		"--pidfile", filepath.Join(r.StateDir, "docker.pid"),
		"-H", "unix://"+r.Socket,
		"-H", fmt.Sprintf("tcp://%s:%d", r.IP, remoteTCPPort), "--tls=false",
		"--bip", remoteBridgeIP,
		"--cgroup-parent", "/"+r.Name+"-docker",
	)
	ok := poll(60*time.Second, func() bool {
		return r.dockerd.exited() || (ping("unix", r.Socket) == nil && ping("tcp", fmt.Sprintf("%s:%d", r.IP, remoteTCPPort)) == nil)
	})
	if !ok || r.dockerd.exited() {
		t.Fatalf("the remote engine's dockerd did not come up (exited: %v, %v)\n%s", r.dockerd.exited(), r.dockerd.err, r.logTail("dockerd.log"))
	}
}

// dockerdMajor is dockerd's major version (0 if unknown).
func dockerdMajor(dockerd string) int {
	out, _ := exec.Command(dockerd, "--version").Output() // Docker version 20.10.24+dfsg1, build …
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return 0
	}
	major, _ := strconv.Atoi(strings.SplitN(f[2], ".", 2)[0])
	return major
}

// ping asks an engine's API for /_ping.
func ping(network, addr string) error {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	c := http.Client{Transport: tr, Timeout: 2 * time.Second}
	resp, err := c.Get("http://engine/_ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("_ping: %s", resp.Status)
	}
	return nil
}

// load copies an image of the system engine into the remote one.
func (r *remoteEngine) load(t testing.TB, image string) {
	t.Helper()
	require.NoError(t, pipeImage(image, dockerFreeEnv(), "--host", "unix://"+r.Socket))
}

// pipeImage runs `docker save image | docker <loadArgs…> load` with env for the loading side.
func pipeImage(image string, loadEnv []string, loadArgs ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	save := exec.CommandContext(ctx, "docker", "save", image)
	load := exec.CommandContext(ctx, "docker", append(loadArgs, "load", "-q")...)
	load.Env = loadEnv
	pr, pw := io.Pipe()
	var saveErr, loadOut strings.Builder
	save.Stdout, save.Stderr = pw, &saveErr
	load.Stdin, load.Stdout, load.Stderr = pr, &loadOut, &loadOut
	if err := save.Start(); err != nil {
		return err
	}
	if err := load.Start(); err != nil {
		pw.Close()
		save.Wait()
		return err
	}
	serr := save.Wait()
	pw.CloseWithError(serr)
	lerr := load.Wait()
	if serr != nil {
		return fmt.Errorf("docker save %s: %v: %s", image, serr, saveErr.String())
	}
	if lerr != nil {
		return fmt.Errorf("docker %s load (%s): %v: %s", strings.Join(loadArgs, " "), image, lerr, loadOut.String())
	}
	return nil
}

func (r *remoteEngine) startSSHD(t testing.TB) {
	t.Helper()
	k := r.sshDir()
	require.NoError(t, os.MkdirAll(k, 0o700))
	cliConfig := filepath.Join(r.StateDir, "cli-config")
	require.NoError(t, os.MkdirAll(cliConfig, 0o700))
	for _, key := range []string{"host", "client"} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", r.Name+"-"+key,
			"-f", filepath.Join(k, key+"_ed25519")).CombinedOutput()
		require.NoError(t, err, "ssh-keygen: %s", out)
	}
	clientPub, err := os.ReadFile(filepath.Join(k, "client_ed25519.pub"))
	require.NoError(t, err)
	hostPub, err := os.ReadFile(filepath.Join(k, "host_ed25519.pub"))
	require.NoError(t, err)
	hostKey := strings.Fields(string(hostPub))
	require.GreaterOrEqual(t, len(hostKey), 2, "host key %q", hostPub)

	sshdConfig := strings.Join([]string{
		"ListenAddress " + r.IP + ":22",
		"HostKey " + filepath.Join(k, "host_ed25519"),
		"PidFile " + filepath.Join(r.StateDir, "sshd.pid"),
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"AuthorizedKeysFile " + filepath.Join(k, "authorized_keys"),
		// The remote `docker system dial-stdio` talks to this engine, with a
		// configuration of its own (never the host's current context).
		"SetEnv DOCKER_HOST=unix://" + r.Socket + " DOCKER_CONFIG=" + cliConfig,
		"MaxStartups 100:30:200",
		"MaxSessions 100",
	}, "\n") + "\n"
	clientConfig := strings.Join([]string{
		"Host " + r.IP,
		"  User root",
		"  IdentityFile " + filepath.Join(k, "client_ed25519"),
		"  IdentitiesOnly yes",
		"  StrictHostKeyChecking yes",
		"  UserKnownHostsFile " + filepath.Join(k, "known_hosts"),
		"  GlobalKnownHostsFile /dev/null",
		"  BatchMode yes",
	}, "\n") + "\n"
	files := map[string]string{
		"authorized_keys": string(clientPub),
		"known_hosts":     r.IP + " " + hostKey[0] + " " + hostKey[1] + "\n",
		"sshd_config":     sshdConfig,
		"client_config":   clientConfig,
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(k, name), []byte(content), 0o600))
	}
	// The ssh the docker CLI finds first in Env's PATH: the real one with
	// this engine's client configuration (-F: /etc/ssh and ~/.ssh are not read).
	sshPath, err := lookPathSbin("ssh")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(r.sshBinDir(), 0o700))
	wrapper := "#!/bin/sh\nexec " + shQuote(sshPath) + " -F " + shQuote(r.sshClientConfig()) + " \"$@\"\n"
	require.NoError(t, os.WriteFile(filepath.Join(r.sshBinDir(), "ssh"), []byte(wrapper), 0o700))

	r.usesRunSSHD = true
	require.NoError(t, acquireRunSSHD())
	sshd, err := lookPathSbin("sshd")
	require.NoError(t, err)
	if out, err := exec.Command(sshd, "-t", "-f", filepath.Join(k, "sshd_config")).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v: %s", err, out)
	}
	r.sshd = r.startInNetns(t, "sshd.log", sshd, "-D", "-e", "-f", filepath.Join(k, "sshd_config"))
	var last string
	ok := poll(20*time.Second, func() bool {
		if r.sshd.exited() {
			return true
		}
		out, err := runWithEnv(nil, 10*time.Second, nil, filepath.Join(r.sshBinDir(), "ssh"), r.IP, "true")
		last = out
		return err == nil
	})
	if !ok || r.sshd.exited() {
		t.Fatalf("sshd in %s did not answer (exited: %v, %v): %s\n%s", r.Name, r.sshd.exited(), r.sshd.err, last, r.logTail("sshd.log"))
	}
}

// shQuote quotes s for the fixed wrapper script.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// /run/sshd is sshd's privilege separation folder; it is made when missing
// and removed when the last engine of this process that needed it is gone.
// The marker names the process that made it, so that a later run adopts
// (and removes) one that a killed run left.
const runSSHDMarker = "/run/" + remoteNamePrefix + "-made-run-sshd"

var runSSHD struct {
	sync.Mutex
	users   int
	created bool
}

func acquireRunSSHD() error {
	runSSHD.Lock()
	defer runSSHD.Unlock()
	runSSHD.users++
	if runSSHD.users > 1 {
		return nil
	}
	if !exists("/run/sshd") {
		if err := os.Mkdir("/run/sshd", 0o755); err != nil {
			return err
		}
		runSSHD.created = true
	} else if owner, err := os.ReadFile(runSSHDMarker); err == nil && !ownerAlive(string(owner)) {
		runSSHD.created = true
	}
	if runSSHD.created {
		return os.WriteFile(runSSHDMarker, []byte(processIdentity(os.Getpid())), 0o600)
	}
	return nil
}

func releaseRunSSHD() error {
	runSSHD.Lock()
	defer runSSHD.Unlock()
	runSSHD.users--
	if runSSHD.users > 0 || !runSSHD.created {
		return nil
	}
	runSSHD.created = false
	os.Remove(runSSHDMarker)
	return os.Remove("/run/sshd")
}

// ownerAlive reports whether the process of an owner record ("PID STARTTIME") still runs.
func ownerAlive(owner string) bool {
	pid, _ := strconv.Atoi(strings.Fields(owner + " 0")[0])
	return pid > 0 && processIdentity(pid) == owner
}

func (r *remoteEngine) logTail(name string) string {
	data, _ := os.ReadFile(filepath.Join(r.StateDir, name))
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "--- " + name + "\n" + strings.Join(lines, "\n")
}

// teardownRemote removes everything of the engine called name; r is nil
// for a leftover of an earlier run. It is idempotent, and signals only
// processes that live in that engine's network namespace.
func teardownRemote(name string, r *remoteEngine) []error {
	var errs []error
	state, data := remotePaths(name)
	sock := filepath.Join(state, "docker.sock")

	envs := [][]string{os.Environ()} // a leftover's contexts can only be looked for here
	if r != nil {
		r.mu.Lock()
		envs = r.ctxEnvs
		r.mu.Unlock()
	}
	for _, env := range envs {
		for _, c := range []string{name, name + "-ssh"} {
			if err := removeContext(env, c); err != nil {
				errs = append(errs, err)
			}
		}
	}

	// Containers first: dockerd then stops at once instead of stopping each one.
	if ping("unix", sock) == nil {
		env := dockerFreeEnv()
		if out, err := runWithEnv(env, 20*time.Second, nil, "docker", "--host", "unix://"+sock, "ps", "-aq"); err == nil && out != "" {
			if o, err := runWithEnv(env, 60*time.Second, nil, "docker", append([]string{"--host", "unix://" + sock, "rm", "-f"}, strings.Fields(out)...)...); err != nil {
				errs = append(errs, fmt.Errorf("docker rm: %v: %s", err, o))
			}
		}
	}

	ns := netnsID(name)
	if ns != "" {
		for _, pf := range []string{"sshd.pid", "docker.pid"} {
			if data, err := os.ReadFile(filepath.Join(state, pf)); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pidNetns(pid) == ns {
					syscall.Kill(pid, syscall.SIGTERM)
				}
			}
		}
		if r != nil {
			for _, p := range []*remoteProc{r.sshd, r.dockerd} {
				if p != nil && !p.exited() {
					p.cmd.Process.Signal(syscall.SIGTERM)
				}
			}
		}
		if !poll(30*time.Second, func() bool { return len(netnsPids(ns)) == 0 }) {
			// Stragglers (containerd, shims, docker-proxy) are ours: they are in our namespace.
			for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
				for _, pid := range netnsPids(ns) {
					syscall.Kill(pid, sig)
				}
				if poll(5*time.Second, func() bool { return len(netnsPids(ns)) == 0 }) {
					break
				}
			}
			if left := netnsPids(ns); len(left) > 0 {
				errs = append(errs, fmt.Errorf("processes still in netns %s: %v", name, left))
			}
		}
	}
	if r != nil {
		for _, p := range []*remoteProc{r.sshd, r.dockerd} {
			if p != nil && !poll(10*time.Second, p.exited) {
				errs = append(errs, fmt.Errorf("%s (pid %d) did not end", p.cmd.Args[len(p.cmd.Args)-1], p.cmd.Process.Pid))
			}
		}
	}

	// Mounts normally lived only in the private mount namespace of `ip netns exec`.
	for _, m := range mountsUnder(state, data) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("umount %s: %v", m, err))
		}
	}

	if exists("/run/netns/" + name) {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", name, err, out))
		}
	}
	// The veth pair goes with the namespace, asynchronously.
	if !poll(5*time.Second, func() bool { return !linkExists("vh-" + name) }) {
		if out, err := exec.Command("ip", "link", "del", "vh-"+name).CombinedOutput(); err != nil && linkExists("vh-"+name) {
			errs = append(errs, fmt.Errorf("ip link del vh-%s: %v: %s", name, err, out))
		}
	}

	if r != nil && r.usesRunSSHD {
		r.usesRunSSHD = false
		if err := releaseRunSSHD(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, dir := range []string{data, state} {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	for _, dir := range cgroupDirs(name) {
		if err := removeDirTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// sweepRemotes removes what interrupted earlier runs left, once a process.
func sweepRemotes(t testing.TB) { remoteSweepOnce.Do(func() { sweepStaleRemotes(t) }) }

// sweepStaleRemotes removes engines an interrupted earlier run left behind:
// a state folder whose owner process is gone, or a namespace, veth or data
// folder without a state folder (the harness makes the state folder first
// and removes it last).
func sweepStaleRemotes(t testing.TB) {
	for n := remoteFirstN; n <= remoteLastN; n++ {
		name := remoteNamePrefix + strconv.Itoa(n)
		state, data := remotePaths(name)
		stale := false
		if exists(state) {
			owner, err := os.ReadFile(filepath.Join(state, "owner"))
			if err == nil {
				stale = !ownerAlive(string(owner))
			} else if fi, err := os.Stat(state); err == nil {
				stale = time.Since(fi.ModTime()) > time.Minute // never got its owner file
			}
		} else {
			stale = exists("/run/netns/"+name) || exists(data) || linkExists("vh-"+name)
		}
		if !stale {
			continue
		}
		t.Logf("removing remote engine %s left by an earlier run", name)
		for _, err := range teardownRemote(name, nil) {
			t.Logf("sweep %s: %v", name, err)
		}
	}
}

// remoteLeftovers lists what is left of the engine called name on this
// machine, and of its contexts in env ("" entries never appear).
func remoteLeftovers(name string, env []string) []string {
	var left []string
	state, data := remotePaths(name)
	for _, p := range []string{"/run/netns/" + name, state, data} {
		if exists(p) {
			left = append(left, "path "+p)
		}
	}
	if linkExists("vh-" + name) {
		left = append(left, "link vh-"+name)
	}
	for _, m := range mountsUnder(state, data) {
		left = append(left, "mount "+m)
	}
	for _, d := range cgroupDirs(name) {
		left = append(left, "cgroup "+d)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(args, state+"/") || strings.Contains(args, data) || strings.Contains(args, "netns exec "+name+" ") {
			left = append(left, "process "+filepath.Base(filepath.Dir(f))+": "+args)
		}
	}
	if out, err := runWithEnv(env, 20*time.Second, nil, "docker", "context", "ls", "--format", "{{.Name}}"); err == nil {
		for _, c := range strings.Fields(out) {
			if c == name || c == name+"-ssh" {
				left = append(left, "context "+c)
			}
		}
	} else {
		left = append(left, "docker context ls failed: "+out)
	}
	return left
}

// remoteTraces lists the engines of the harness's range that have any
// trace on this machine (state or data folder, namespace, veth).
func remoteTraces() []string {
	var names []string
	for n := remoteFirstN; n <= remoteLastN; n++ {
		name := remoteNamePrefix + strconv.Itoa(n)
		state, data := remotePaths(name)
		if exists(state) || exists(data) || exists("/run/netns/"+name) || linkExists("vh-"+name) {
			names = append(names, name)
		}
	}
	return names
}

// poll calls f every 50 ms until it is true or d has passed; it reports
// whether f became true.
func poll(d time.Duration, f func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func linkExists(name string) bool { return exists("/sys/class/net/" + name) }

// hostHasNet reports whether the host already has an address in 10.251.n.0/24.
func hostHasNet(n int) bool {
	ifs, err := net.Interfaces()
	if err != nil {
		return false
	}
	_, want, _ := net.ParseCIDR(fmt.Sprintf("10.251.%d.0/24", n))
	for _, i := range ifs {
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && want.Contains(ipn.IP) {
				return true
			}
		}
	}
	return false
}

// netnsID is the "net:[inode]" link of the named namespace ("" if none).
func netnsID(name string) string {
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+name, &st); err != nil {
		return ""
	}
	return fmt.Sprintf("net:[%d]", st.Ino)
}

func pidNetns(pid int) string {
	s, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	return s
}

// netnsPids lists the live processes in the namespace ns (zombies have no namespace link).
func netnsPids(ns string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && pidNetns(pid) == ns {
			pids = append(pids, pid)
		}
	}
	return pids
}

// processIdentity is "PID STARTTIME" of a live process ("" if none), so a
// reused PID is not taken for the owner of an engine.
func processIdentity(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:]) // field 3 (state) onwards; starttime is field 22
	if len(f) < 20 {
		return ""
	}
	return strconv.Itoa(pid) + " " + f[19]
}

// mountsUnder lists this mount namespace's mount points at or below the
// folders, deepest first.
func mountsUnder(dirs ...string) []string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		for _, d := range dirs {
			if fields[1] == d || strings.HasPrefix(fields[1], d+"/") {
				out = append(out, fields[1])
			}
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

// cgroupDirs lists the engine's --cgroup-parent folders in every hierarchy.
func cgroupDirs(name string) []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + name + "-docker")
	if exists("/sys/fs/cgroup/" + name + "-docker") {
		dirs = append(dirs, "/sys/fs/cgroup/"+name+"-docker")
	}
	return dirs
}

// removeDirTree removes a cgroup folder: its subfolders first (cgroup files
// cannot be removed, only empty groups).
func removeDirTree(root string) error {
	var dirs []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var firstErr error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}
