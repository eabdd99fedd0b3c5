package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// fsMain is `standin fs write PATH CONTENT | read PATH | ls DIR`: a scratch
// image has no shell, and tests use these through `docker compose exec` to
// prove volume isolation and shared mounts.
func fsMain(args []string, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "standin fs: "+format+"\n", a...)
		return 1
	}
	if len(args) == 0 {
		return fail("usage: standin fs write PATH CONTENT | read PATH | ls DIR")
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
	}
	return fail("usage: standin fs write PATH CONTENT | read PATH | ls DIR (got %q)", args)
}
