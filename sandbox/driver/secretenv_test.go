package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHelperCompose is not a test: run as a compose stand-in (SECRETENV_HELPER
// set), it prints every --env-file it is given, read twice, as compose does.
func TestHelperCompose(t *testing.T) {
	if os.Getenv("SECRETENV_HELPER") == "" {
		t.Skip("helper process")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	for i := 0; i+1 < len(args); i++ {
		if args[i] != "--env-file" {
			continue
		}
		for range 2 {
			data, err := os.ReadFile(args[i+1])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
			fmt.Printf("%s:%s|", args[i+1], data)
		}
	}
	fmt.Printf("env:%s", os.Getenv("S_TOKEN"))
	os.Exit(0)
}

func helperCompose(t *testing.T) (*Compose, Stack) {
	t.Setenv("SECRETENV_HELPER", "1")
	t.Setenv("S_TOKEN", "from-the-shell")
	dir := t.TempDir()
	envFile := filepath.Join(dir, ".env.sandbox")
	require.NoError(t, os.WriteFile(envFile, []byte("INSTANCE_ID=x\n"), 0o644))
	c := &Compose{Runner: ExecRunner{}, Command: []string{os.Args[0], "-test.run=^TestHelperCompose$", "--"}}
	sec, err := NewSecretEnv(map[string]string{"S_TOKEN": "hunter2-secret", "OTHER": "two words"})
	require.NoError(t, err)
	return c, Stack{Project: "p", Dir: dir, Files: []string{filepath.Join(dir, "c.yml")}, EnvFile: envFile, Secrets: sec}
}

// Secrets reach compose as an --env-file before the sandbox's own, readable
// more than once, and win over the shell's environment.
func TestSecretEnvReachesCompose(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fallback bool
	}{{"memory file", false}, {"private temporary file", true}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fallback {
				old := newMemFile
				newMemFile = func(string, []byte) (*os.File, error) { return nil, errors.New("none") }
				t.Cleanup(func() { newMemFile = old })
			}
			c, s := helperCompose(t)
			out, err := c.Exec(context.Background(), s, nil, "config")
			require.NoError(t, err)
			parts := strings.Split(string(out), "|")
			require.Len(t, parts, 5, string(out))
			path, content, _ := strings.Cut(parts[0], ":")
			assert.Equal(t, "OTHER=\"two words\"\nS_TOKEN=\"hunter2-secret\"\n", content)
			assert.Equal(t, parts[0], parts[1], "read twice alike")
			assert.True(t, strings.HasPrefix(parts[2], s.EnvFile+":"), "the sandbox's file comes after: it wins")
			assert.Equal(t, "env:", parts[4], "the shell's export does not shadow the secret")
			if tc.fallback {
				assert.NoFileExists(t, path, "removed once compose returned")
				assert.NoDirExists(t, filepath.Dir(path))
			} else {
				assert.Regexp(t, `^/dev/fd/\d+$`, path)
			}
		})
	}
}

// A SecretEnv prints no values, in any form.
func TestSecretEnvPrintsNoValues(t *testing.T) {
	sec, err := NewSecretEnv(map[string]string{"JWT": "hunter2-secret"})
	require.NoError(t, err)
	st := Stack{Project: "p", Secrets: sec}
	for _, s := range []string{fmt.Sprint(sec), fmt.Sprintf("%v %+v %#v", st, st, st), fmt.Sprintf("%#v", sec)} {
		assert.NotContains(t, s, "hunter2")
	}
	assert.Equal(t, []string{"JWT"}, sec.Keys())
	_, err = NewSecretEnv(map[string]string{"JWT": "a$b-hunter2"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
	assert.Contains(t, err.Error(), "JWT")
	none, err := NewSecretEnv(nil)
	require.NoError(t, err)
	assert.Nil(t, none)
}
