package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const fsUsage = "usage: standin fs write PATH CONTENT | read PATH | ls DIR | untar [--clean] DIR | tar DIR"

// fsMain is `standin fs write PATH CONTENT | read PATH | ls DIR`: a scratch
// image has no shell, and tests use these through `docker compose exec` to
// prove volume isolation and shared mounts. `fs untar [--clean] DIR` extracts
// a tar stream from stdin under DIR and `fs tar DIR` writes one of DIR to
// stdout: together they fill a named volume on a remote engine through
// `docker run -i` (see untar.go).
func fsMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "standin fs: "+format+"\n", a...)
		return 1
	}
	if len(args) == 0 {
		return fail(fsUsage)
	}
	switch {
	case args[0] == "write" && len(args) == 3:
		if err := os.MkdirAll(filepath.Dir(args[1]), 0o755); err != nil {
			return fail("write %s: %v", args[1], err)
		}
		if err := os.WriteFile(args[1], []byte(args[2]), 0o644); err != nil {
			return fail("write %s: %v", args[1], err)
		}
		return 0
	case args[0] == "read" && len(args) == 2:
		b, err := os.ReadFile(args[1])
		if err != nil {
			return fail("read %s: %v", args[1], err)
		}
		_, _ = stdout.Write(b)
		return 0
	case args[0] == "ls" && len(args) == 2:
		entries, err := os.ReadDir(args[1])
		if err != nil {
			return fail("ls %s: %v", args[1], err)
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() {
				n += "/"
			}
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintln(stdout, n)
		}
		return 0
	case args[0] == "untar":
		dir, clean, ok := untarArgs(args[1:])
		if !ok {
			return fail("usage: standin fs untar [--clean] DIR (got %q)", args)
		}
		st, err := untar(dir, stdin, clean, stderr)
		summary := fmt.Sprintf("untar: %d files, %d dirs, %d bytes into %s", st.files+st.links, st.dirs, st.bytes, dir)
		if clean {
			summary += fmt.Sprintf(", %d removed", st.removed)
		}
		fmt.Fprintln(stderr, summary)
		if err != nil {
			return fail("untar %s: %v", dir, err)
		}
		// What follows the end-of-archive marker (tar(1) pads to its record
		// size) is read, so the writer never meets a closed pipe.
		_, _ = io.Copy(io.Discard, stdin)
		return 0
	case args[0] == "tar" && len(args) == 2:
		if err := tarDir(args[1], stdout, stderr); err != nil {
			return fail("tar %s: %v", args[1], err)
		}
		return 0
	}
	return fail(fsUsage+" (got %q)", args)
}

// untarArgs parses `[--clean] DIR` (the flag may also follow DIR).
func untarArgs(args []string) (dir string, clean, ok bool) {
	for _, a := range args {
		switch {
		case a == "--clean" || a == "-clean":
			clean = true
		case dir == "" && a != "" && !strings.HasPrefix(a, "-"):
			dir = a
		default:
			return "", false, false
		}
	}
	return dir, clean, dir != ""
}
