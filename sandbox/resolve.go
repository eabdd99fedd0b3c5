package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/joho/godotenv"
)

// ResolveAPIURL returns the ktrdr API URL a command run in cwd should use:
//
//  1. explicitURL, if not empty;
//  2. http://localhost:<explicitPort>, if explicitPort is not 0;
//  3. KTRDR_API_PORT from the nearest .env.sandbox in cwd or its parents;
//  4. http://localhost:8000.
//
// It reads the file, never the process environment, and starts no process.
// A .env.sandbox that exists but has no usable port is an error naming the
// file, rather than a silent fall-through to the main stack.
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
	vals, err := godotenv.Read(path)
	if err != nil {
		return "", &EnvFileError{Path: path, Err: err}
	}
	v, ok := vals[p.APIPortKey]
	if !ok {
		return "", &EnvFileError{Path: path, Key: p.APIPortKey, Err: errors.New("missing")}
	}
	port, err := strconv.Atoi(v)
	if err != nil || port < 1 || port > 65535 {
		return "", &EnvFileError{Path: path, Key: p.APIPortKey, Err: fmt.Errorf("%q is not a port number", v)}
	}
	return "http://localhost:" + strconv.Itoa(port), nil
}

// FindEnvFile returns the path of the nearest env file in dir or its
// parents, or "" if there is none.
func (p *Profile) FindEnvFile(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find %s above %q: %w", p.EnvFile, dir, err)
	}
	for d := abs; ; {
		candidate := filepath.Join(d, p.EnvFile)
		fi, err := os.Stat(candidate)
		switch {
		case err == nil && fi.Mode().IsRegular():
			return candidate, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission):
			return "", fmt.Errorf("find %s above %q: %w", p.EnvFile, dir, err)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", nil
		}
		d = parent
	}
}
