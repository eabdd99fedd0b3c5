package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// processHolders names the process listening on each of ports, read from
// /proc. A port whose listener this user cannot see maps to the zero holder.
func processHolders(ports []int) map[int]PortHolder {
	return processHoldersIn("/proc", ports)
}

// processHoldersIn is processHolders over a proc file system mounted at root:
// listening sockets from net/tcp and net/tcp6 give inodes, and the first
// process with a "socket:[inode]" link in its fd folder holds the port.
func processHoldersIn(root string, ports []int) map[int]PortHolder {
	res := make(map[int]PortHolder, len(ports))
	want := map[int]bool{}
	for _, p := range ports {
		want[p] = true
		res[p] = PortHolder{}
	}
	inodePort := map[uint64]int{}
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue
		}
		for port, inodes := range parseProcNetTCP(b) {
			if want[port] {
				for _, ino := range inodes {
					inodePort[ino] = port
				}
			}
		}
	}
	if len(inodePort) == 0 {
		return res
	}
	found := map[int]bool{}
	entries, err := os.ReadDir(root)
	if err != nil {
		return res
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(root, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir) // another user's process: permission denied
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") || !strings.HasSuffix(link, "]") {
				continue
			}
			ino, err := strconv.ParseUint(link[len("socket:["):len(link)-1], 10, 64)
			if err != nil {
				continue
			}
			port, ok := inodePort[ino]
			if !ok || found[port] {
				continue
			}
			found[port] = true
			res[port] = PortHolder{PID: pid, Command: processCommand(filepath.Join(root, e.Name()))}
		}
		if len(found) == len(want) {
			break
		}
	}
	return res
}

// processCommand returns the command line of the process at dir (a
// /proc/<pid> folder), shortened for messages; its comm for kernel threads.
func processCommand(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	cmd := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if err != nil || cmd == "" {
		c, _ := os.ReadFile(filepath.Join(dir, "comm"))
		cmd = strings.TrimSpace(string(c))
	}
	const max = 160
	if r := []rune(cmd); len(r) > max {
		cmd = string(r[:max]) + "…"
	}
	return cmd
}
