package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/ktrdr/sandboxkit/sandbox/envfile"
)

// SecretEnv is a set of secret variables (a JWT secret, a database password,
// API keys) that compose interpolates a stack's files with. Compose receives
// them as one more --env-file, before the sandbox's own, so that the
// sandbox's file wins where both set a key; their keys are also removed from
// compose's environment, so a shell's export cannot shadow them.
//
// The content never gets a path in a folder the suite keeps: on Linux it
// lives in an anonymous memory file (memfd) that the command inherits as a
// descriptor and reads as /dev/fd/N; elsewhere it is written, mode 0600, to
// a private temporary folder (0700) that is removed as soon as the command
// returns. Its String names only how many variables it holds.
type SecretEnv struct {
	keys []string
	data []byte // the env file's form (package envfile)
}

// NewSecretEnv returns the secret variables vals, or nil when there are none.
// A key or value the env file's form cannot hold is an error that names the
// key, never the value.
func NewSecretEnv(vals map[string]string) (*SecretEnv, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	data, err := envfile.Marshal("", vals)
	if err != nil {
		var ve *envfile.ValueError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("secret %s: its value holds a character an env file cannot hold alike for compose and this tool", ve.Key)
		}
		return nil, fmt.Errorf("secrets: %w", err)
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return &SecretEnv{keys: keys, data: data}, nil
}

// Keys returns the names of the secret variables, sorted.
func (s *SecretEnv) Keys() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.keys)
}

// String names how many variables s holds, never their values.
func (s *SecretEnv) String() string {
	if s == nil {
		return "no secrets"
	}
	return fmt.Sprintf("%d secret variables", len(s.keys))
}

// GoString is String: %#v prints no values either.
func (s *SecretEnv) GoString() string { return s.String() }

// MarshalJSON writes only the keys.
func (s *SecretEnv) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%q", s.String()), nil
}

// attach makes s readable by the command c: it returns c with one more
// inherited file, or a private temporary file, and the path that names it,
// and a function that releases it once the command has returned.
func (s *SecretEnv) attach(c Cmd) (Cmd, string, func(), error) {
	if f, err := newMemFile("sandbox-secrets", s.data); err == nil {
		c.ExtraFiles = append(slices.Clone(c.ExtraFiles), f)
		return c, fmt.Sprintf("/dev/fd/%d", 2+len(c.ExtraFiles)), func() { f.Close() }, nil
	}
	dir, err := os.MkdirTemp("", "sandbox-secrets-")
	if err != nil {
		return c, "", nil, fmt.Errorf("make a private folder for the secrets: %w", err)
	}
	release := func() { os.RemoveAll(dir) }
	if err := os.Chmod(dir, 0o700); err != nil {
		release()
		return c, "", nil, fmt.Errorf("make a private folder for the secrets: %w", err)
	}
	path := filepath.Join(dir, "secrets.env")
	if err := os.WriteFile(path, s.data, 0o600); err != nil {
		release()
		return c, "", nil, fmt.Errorf("write the secrets for compose to a private file: %w", err)
	}
	return c, path, release, nil
}

// newMemFile is memFile; tests replace it to take the fallback.
var newMemFile = memFile
