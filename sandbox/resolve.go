package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"unicode"

	"github.com/joho/godotenv"
)

// ResolveAPIURL returns the ktrdr API URL a command run in cwd should use:
//
//  1. explicitURL, if not empty;
//  2. http://localhost:<explicitPort>, if explicitPort is not 0;
//  3. KTRDR_API_PORT from the nearest .env.sandbox in cwd or its parents,
//     up to the root of the git checkout that holds cwd (see FindEnvFile),
//     on that file's SANDBOX_HOST (a sandbox on another machine's Docker
//     engine) or localhost;
//  4. http://localhost:8000.
//
// It reads the file, never the process environment, and starts no process.
// A .env.sandbox that exists but has no usable port (missing, or not in
// the canonical form 1–65535 that the tool writes: "+8001" and "08001" are
// refused) or that is a symlink is an error naming the file, rather than a
// silent fall-through to the main stack.
func ResolveAPIURL(explicitURL string, explicitPort int, cwd string) (string, error) {
	return KTRDR().ResolveAPIURL(explicitURL, explicitPort, cwd)
}

// ResolveAPIURL is ResolveAPIURL for profile p.
func (p *Profile) ResolveAPIURL(explicitURL string, explicitPort int, cwd string) (string, error) {
	if explicitURL != "" {
		return explicitURL, nil
	}
	if explicitPort != 0 {
		if explicitPort < 1 || explicitPort > 65535 {
			return "", fmt.Errorf("resolve API URL: port %d is out of range 1–65535", explicitPort)
		}
		return "http://localhost:" + strconv.Itoa(explicitPort), nil
	}
	path, err := p.FindEnvFile(cwd)
	if err != nil {
		return "", err
	}
	if path == "" {
		return p.DefaultAPIURL(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", &EnvFileError{Path: path, Err: err}
	}
	v, ok, err := envKey(data, p.APIPortKey)
	if err != nil {
		return "", &EnvFileError{Path: path, Err: err}
	}
	if !ok {
		return "", &EnvFileError{Path: path, Key: p.APIPortKey, Err: errors.New("missing")}
	}
	port, ok := parsePort(v)
	if !ok {
		return "", &EnvFileError{Path: path, Key: p.APIPortKey, Err: fmt.Errorf("%q is not a port number (1–65535, decimal digits, no sign, no leading zero)", v)}
	}
	// A sandbox on another machine's engine is reached at that host.
	host := "localhost"
	if h, ok, err := envKey(data, KeyHost); err != nil {
		return "", &EnvFileError{Path: path, Err: err}
	} else if ok && h != "" {
		if !validHost(h) {
			return "", &EnvFileError{Path: path, Key: KeyHost, Err: fmt.Errorf("%q is not a host name or IP address", h)}
		}
		host = h
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// ErrEnvSymlink is wrapped by the *EnvFileError for an env file that is a
// symlink: the tool writes it as a regular file, and does not read another
// folder's file through a link.
var ErrEnvSymlink = errors.New("it is a symlink; the sandbox tool writes this file itself, as a regular file")

// FindEnvFile returns the path of the nearest env file in dir or its
// parents, or "" if there is none. It stops at the root of the git checkout
// that holds dir, the nearest folder with a .git file or folder (git itself
// is not run): a file above a checkout is never that checkout's. Outside any
// checkout it looks up to the file system's root. An env file that is a
// symlink is an *EnvFileError wrapping ErrEnvSymlink.
func (p *Profile) FindEnvFile(dir string) (string, error) {
	path, _, err := p.findEnvFile(dir)
	return path, err
}

// findEnvFile is FindEnvFile that also returns the checkout root where the
// search stopped ("" when it reached the file system's root).
func (p *Profile) findEnvFile(dir string) (path, stop string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", fmt.Errorf("find %s above %q: %w", p.EnvFile, dir, err)
	}
	for d := abs; ; {
		candidate := filepath.Join(d, p.EnvFile)
		fi, err := os.Lstat(candidate)
		switch {
		case err == nil && fi.Mode().IsRegular():
			return candidate, "", nil
		case err == nil && fi.Mode().Type() == fs.ModeSymlink:
			return "", "", &EnvFileError{Path: candidate, Err: ErrEnvSymlink}
		case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission):
			return "", "", fmt.Errorf("find %s above %q: %w", p.EnvFile, dir, err)
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

// readEnvKey returns one key of an env file as godotenv.Read would. When no
// quoted value spans lines and the key's lines expand no variables, parsing
// just those lines is equivalent and several times faster than parsing the
// whole file (the resolver runs on every CLI call); otherwise it reads the
// whole file.
func readEnvKey(path, key string) (string, bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", false, err
	}
	return envKey(data, key)
}

// envKey is readEnvKey on the file's content.
func envKey(data []byte, key string) (string, bool, error) {
	var err error
	var mine []byte
	simple := true
	for line := range bytes.Lines(data) {
		if t := bytes.TrimLeftFunc(line, unicode.IsSpace); len(t) > 0 && t[0] == '#' {
			continue // every earlier line was balanced: this is a whole comment
		}
		if bytes.Count(line, []byte{'"'})%2 != 0 || bytes.Count(line, []byte{'\''})%2 != 0 || bytes.Count(line, []byte{'`'})%2 != 0 {
			simple = false // a quoted value may continue on the next line
			break
		}
		t := bytes.TrimLeftFunc(line, unicode.IsSpace)
		if rest, ok := bytes.CutPrefix(t, []byte("export")); ok && len(rest) > 0 && unicode.IsSpace(rune(rest[0])) {
			t = bytes.TrimLeftFunc(rest, unicode.IsSpace)
		}
		rest, ok := bytes.CutPrefix(t, []byte(key))
		rest = bytes.TrimLeftFunc(rest, unicode.IsSpace)
		if ok && len(rest) > 0 && (rest[0] == '=' || rest[0] == ':') {
			if bytes.ContainsRune(line, '$') {
				simple = false
				break
			}
			mine = append(mine, line...) // as is: only the file's last line lacks "\n"
		}
	}
	if simple {
		if v, ok := plainDigits(mine, key); ok {
			return v, true, nil
		}
	}
	var vals map[string]string
	if simple {
		vals, err = godotenv.UnmarshalBytes(mine)
	} else {
		vals, err = godotenv.UnmarshalBytes(data)
	}
	if err != nil {
		return "", false, err
	}
	v, ok := vals[key]
	return v, ok, nil
}

// plainDigits answers for the common case: the key's only line is
// KEY=<digits> with nothing else on it, whose value needs no parsing.
func plainDigits(lines []byte, key string) (string, bool) {
	line := bytes.TrimRight(lines, "\r\n")
	if bytes.ContainsAny(line, "\n\r") {
		return "", false // several lines name the key
	}
	rest, ok := bytes.CutPrefix(line, []byte(key+"="))
	if !ok || len(rest) == 0 || len(rest) > 10 {
		return "", false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return string(rest), true
}
