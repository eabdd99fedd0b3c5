// Package apiurl decides which ktrdr API a command talks to: the rule the
// ktrdr CLI's --url and --port flags follow, and the sandbox tool's
// sandbox:url target.
//
// The rule, first match wins:
//
//  1. an explicit URL;
//  2. an explicit port, on localhost;
//  3. the API port in the nearest sandbox env file (.env.sandbox) in the
//     working folder or its parents, up to the root of the git checkout
//     that holds it, on that file's SANDBOX_HOST (a sandbox on another
//     machine's Docker engine) or localhost;
//  4. the main stack's URL.
//
// It reads the file, never the process environment, starts no process and
// takes a few microseconds (see BENCHMARKS.md). It depends on the standard
// library and the env file reader only, so a CLI that imports it stays small.
package apiurl

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ktrdr/sandboxkit/sandbox/envfile"
)

// Resolver holds the names the rule uses.
type Resolver struct {
	EnvFile    string // the env file's name: ".env.sandbox"
	PortKey    string // the key of the API port: "KTRDR_API_PORT"
	HostKey    string // the key of the engine's host: "SANDBOX_HOST"
	DefaultURL string // the main stack's API: "http://localhost:8000"
}

// KTRDR is the resolver of the ktrdr stack.
var KTRDR = Resolver{EnvFile: ".env.sandbox", PortKey: "KTRDR_API_PORT", HostKey: "SANDBOX_HOST", DefaultURL: "http://localhost:8000"}

// Resolve returns the ktrdr API URL for a command run in cwd (KTRDR.Resolve).
func Resolve(explicitURL string, explicitPort int, cwd string) (string, error) {
	return KTRDR.Resolve(explicitURL, explicitPort, cwd)
}

// ResolveSource is Resolve plus which rule chose the URL (KTRDR.ResolveSource).
func ResolveSource(explicitURL string, explicitPort int, cwd string) (url, source string, err error) {
	return KTRDR.ResolveSource(explicitURL, explicitPort, cwd)
}

// ErrSymlink is wrapped by the *envfile.Error for an env file that is a
// symlink: the tool writes it as a regular file, and does not read another
// folder's file through a link.
var ErrSymlink = errors.New("it is a symlink; the sandbox tool writes this file itself, as a regular file")

// ErrNoPort is wrapped by the *envfile.Error for an env file without the
// API port key.
var ErrNoPort = errors.New("missing")

// Resolve returns the API URL a command run in cwd should use. An env file
// that exists but cannot be used (unreadable, not in the form the tool
// writes, no port or a port not in its canonical form 1–65535: "+8001" and
// "08001" are refused, a symlink) is an *envfile.Error naming the file,
// rather than a silent fall-through to the main stack.
func (r Resolver) Resolve(explicitURL string, explicitPort int, cwd string) (string, error) {
	url, _, err := r.resolve(explicitURL, explicitPort, cwd, false)
	return url, err
}

// ResolveSource is Resolve plus which rule chose the URL, for messages
// such as "nothing answers at http://localhost:8003 (KTRDR_API_PORT in
// /src/ktrdr--a/.env.sandbox)": "explicit URL", "explicit port", "<PortKey>
// in <path>", or "default: no <EnvFile> in <cwd> or its parents[ up to the
// checkout's root <root>]".
func (r Resolver) ResolveSource(explicitURL string, explicitPort int, cwd string) (url, source string, err error) {
	return r.resolve(explicitURL, explicitPort, cwd, true)
}

func (r Resolver) resolve(explicitURL string, explicitPort int, cwd string, describe bool) (url, source string, err error) {
	if explicitURL != "" {
		return explicitURL, "explicit URL", nil
	}
	if explicitPort != 0 {
		if explicitPort < 1 || explicitPort > 65535 {
			return "", "", fmt.Errorf("resolve API URL: port %d is out of range 1–65535", explicitPort)
		}
		return "http://localhost:" + strconv.Itoa(explicitPort), "explicit port", nil
	}
	path, stop, err := r.FindEnvFile(cwd)
	if err != nil {
		return "", "", err
	}
	if path == "" {
		if describe {
			source = fmt.Sprintf("default: no %s in %s or its parents", r.EnvFile, cwd)
			if stop != "" {
				source += " up to the checkout's root " + stop
			}
		}
		return r.DefaultURL, source, nil
	}
	url, err = r.FromFile(path)
	if err != nil {
		return "", "", err
	}
	return url, r.PortKey + " in " + path, nil
}

// FromFile returns the API URL the env file at path names.
func (r Resolver) FromFile(path string) (string, error) {
	vals, err := envfile.Read(path)
	if err != nil {
		return "", err
	}
	v, ok := vals[r.PortKey]
	if !ok {
		return "", &envfile.Error{Path: path, Key: r.PortKey, Err: ErrNoPort}
	}
	port, ok := envfile.ParsePort(v)
	if !ok {
		return "", &envfile.Error{Path: path, Key: r.PortKey, Err: fmt.Errorf("%q is not a port number (1–65535, decimal digits, no sign, no leading zero)", v)}
	}
	host := "localhost"
	if h := vals[r.HostKey]; h != "" {
		if !ValidHost(h) {
			return "", &envfile.Error{Path: path, Key: r.HostKey, Err: fmt.Errorf("%q is not a host name or IP address", h)}
		}
		host = h
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// FindEnvFile returns the path of the nearest env file in dir or its
// parents ("" if there is none) and, when there is none, the root of the
// checkout where the search stopped ("" when it reached the file system's
// root). The root of a git checkout is the nearest folder with a .git file
// or folder (git itself is not run): a file above a checkout is never that
// checkout's. An env file that is a symlink is an *envfile.Error wrapping
// ErrSymlink.
func (r Resolver) FindEnvFile(dir string) (path, stop string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", fmt.Errorf("find %s above %q: %w", r.EnvFile, dir, err)
	}
	for d := abs; ; {
		candidate := filepath.Join(d, r.EnvFile)
		fi, err := os.Lstat(candidate)
		switch {
		case err == nil && fi.Mode().IsRegular():
			return candidate, "", nil
		case err == nil && fi.Mode().Type() == fs.ModeSymlink:
			return "", "", &envfile.Error{Path: candidate, Err: ErrSymlink}
		case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission):
			return "", "", fmt.Errorf("find %s above %q: %w", r.EnvFile, dir, err)
		}
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return "", d, nil // the checkout's root: nothing above it is this checkout's
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", "", nil
		}
		d = parent
	}
}

// ValidHost reports whether h may stand in a URL's host part: an IP
// address or a DNS name.
func ValidHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
