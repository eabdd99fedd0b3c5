package envfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/joho/godotenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
		bad  string // part of the reason when refused
	}{
		{"written form", "# header\nA=1\nB=\"x y#z\"\nC=\"\"\n\n", map[string]string{"A": "1", "B": "x y#z", "C": ""}, ""},
		{"no final newline", "A=1", map[string]string{"A": "1"}, ""},
		{"indented comment, blank lines", "  # c\n\t\n   \nA=/p/q:r=s", map[string]string{"A": "/p/q:r=s"}, ""},
		{"unicode value", "A=\"dossier é\"", map[string]string{"A": "dossier é"}, ""},
		{"quoted value then a key", `INSTANCE_ID="ktrdr--q1"KTRDR_API_PORT=8001`, nil, "after the closing quote"},
		{"space before key", " A=1", nil, "space before the key"},
		{"space around =", "A = 1", nil, "not a key"},
		{"export", "export A=1", nil, "not a key"},
		{"yaml style", "A: 1", nil, "no '='"},
		{"inline comments", "A=1 # c\nB=\"x y\"  #c\nC='z' #", map[string]string{"A": "1", "B": "x y", "C": "z"}, ""},
		{"tab before a comment", "A=1\t# c", nil, "U+0009"},
		{"no space before a comment", "A=1#c", nil, `'#'`},
		{"text after a quote", `A="x" y`, nil, "after the closing quote"},
		{"single quotes", "A='x y'", map[string]string{"A": "x y"}, ""},
		{"quote in single quotes", `A='x"y'`, nil, `'"'`},
		{"dollar", `A="$HOME"`, nil, `'$'`},
		{"escape", `A="a\nb"`, nil, `'\\'`},
		{"unterminated", "A=\"x\nB=1\"", nil, "no closing quote"},
		{"carriage return", "A=1\r\n", nil, "U+000D"},
		{"duplicate", "A=1\nA=2", nil, "set again (first on line 1)"},
		{"digit first", "1A=1", nil, "not a key"},
		{"not utf-8", "A=\xff", nil, "UTF-8"},
		{"bang", "A=x!", nil, `'!'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if tt.bad != "" {
				var se *SyntaxError
				require.ErrorAs(t, err, &se)
				assert.Contains(t, err.Error(), tt.bad)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestMarshalRoundTrips(t *testing.T) {
	vals := map[string]string{"B": "x y", "A": "8001", "C": "", "D": "0123", "E": "/home/me/.ktrdr/shared/data", "F": "2026-11-30T10:00:00Z"}
	data, err := Marshal("# one\n# two\n", vals)
	require.NoError(t, err)
	assert.Equal(t, "# one\n# two\nA=8001\nB=\"x y\"\nC=\"\"\nD=0123\nE=\"/home/me/.ktrdr/shared/data\"\nF=\"2026-11-30T10:00:00Z\"\n", string(data))
	got, err := Parse(data)
	require.NoError(t, err)
	assert.Equal(t, vals, got)

	for _, v := range []string{`a"b`, "a\nb", "$X", `a\b`, "a`b", "x!"} {
		_, err := Marshal("", map[string]string{"K": v})
		var ve *ValueError
		assert.ErrorAs(t, err, &ve, "%q", v)
	}
	_, err = Marshal("not a comment", nil)
	assert.Error(t, err)
}

func TestReadRefusesAHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".env.sandbox")
	require.NoError(t, os.WriteFile(path, bytes.Repeat([]byte("#\n"), MaxSize), 0o644))
	_, err := Read(path)
	var ee *Error
	require.ErrorAs(t, err, &ee)
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.Equal(t, path, ee.Path)
}

func TestParseDecimal(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{{"8001", true}, {"0", true}, {"65535", true}, {"+1", false}, {"01", false}, {" 1", false}, {"", false}, {"12345678901", false}} {
		_, ok := ParseDecimal(tt.in, 1<<40)
		assert.Equal(t, tt.ok, ok, tt.in)
	}
	_, ok := ParsePort("0")
	assert.False(t, ok)
	_, ok = ParsePort("65536")
	assert.False(t, ok)
}

// FuzzAgreement holds the package to its promise: whatever Parse accepts,
// godotenv and compose's dotenv parser read as the same keys and values.
// Nothing is skipped: an input either is refused here (and so by every
// command of the tool, which never passes such a file to compose) or all
// three agree on it exactly.
func FuzzAgreement(f *testing.F) {
	for _, s := range []string{
		"# Written by the sandbox tool\nINSTANCE_ID=\"ktrdr--a\"\nKTRDR_API_PORT=8001\n",
		`INSTANCE_ID="ktrdr--q1"KTRDR_API_PORT=8001`,
		"A=1\nB=\"x y\"\n",
		"A=\"a#b\"\n#c\n\tB=2",
		"A=a#b",
		"A=\"x\" # c",
		"A=x\u00a0",
		"A=\"\u0085\"",
		"export A=1",
		"A=1\r\n",
		"A:1\n",
		"A=\"x\"\"\"",
		"A=é\nB=\"日本\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				panic(fmt.Sprintf("a parser is still running after 10 s on %q", data))
			}
		}()
		mine, err := Parse(data)
		if err != nil {
			var se *SyntaxError
			require.ErrorAs(t, err, &se, "every refusal names a line")
			return
		}
		gd, err := godotenv.UnmarshalBytes(data)
		require.NoError(t, err, "godotenv refuses what Parse accepts: %q", data)
		assert.Equal(t, mine, gd, "godotenv reads %q differently", data)
		cd, err := dotenv.UnmarshalBytesWithLookup(data, nil)
		require.NoError(t, err, "compose refuses what Parse accepts: %q", data)
		assert.Equal(t, mine, cd, "compose reads %q differently", data)
		// And what Parse read, Marshal writes back in a form Parse reads alike.
		out, err := Marshal("", mine)
		require.NoError(t, err)
		again, err := Parse(out)
		require.NoError(t, err)
		assert.Equal(t, mine, again)
		if strings.Contains(string(data), "\r") {
			t.Fatalf("a carriage return was accepted: %q", data)
		}
	})
}
