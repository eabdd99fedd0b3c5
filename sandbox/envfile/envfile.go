// Package envfile reads and writes a sandbox's env file (.env.sandbox) in
// the one form that every program reading it understands alike.
//
// Three parsers read the file: this package (for the sandbox tool and the
// API URL resolver), godotenv (what the file was first written with) and
// compose's own dotenv parser (compose-go's, which decides the ports a
// stack publishes). They disagree on many inputs: a quoted value followed by
// another key on the same line, escapes, "export", inline comments, spaces
// around "=". So this package accepts only a strict subset on which all
// three agree, and refuses anything else with the line and the reason,
// everywhere: a file the tool refuses is never handed to compose. A fuzz
// test (FuzzAgreement) checks the claim against both other parsers.
//
// The form, line by line:
//
//	# a comment: '#' first, after nothing but spaces or tabs
//	(an empty line, or one of spaces and tabs)
//	KEY=value        unquoted: no spaces, quotes, '\', '$', '`', '#' or '!'
//	KEY="a value"    double-quoted: the same, but spaces and '#' allowed
//	KEY='a value'    single-quoted: the same as double-quoted
//	KEY=value # c    any of these, then spaces and a comment (after an
//	                 unquoted value, one without a second '#')
//
// A KEY is a letter or '_' then letters, digits or '_', starting the line.
// Nothing else may follow a value. A key appears once. The file is UTF-8
// without control characters (so no carriage returns), at most MaxSize bytes.
//
// The package uses only the standard library: the ktrdr CLI reaches it
// through the resolver.
package envfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxSize is the largest env file read (the tool writes about 1 KiB).
const MaxSize = 1 << 20

// Error reports an env file that cannot be used: unreadable, not in the
// form above, or with a key whose value is wrong.
type Error struct {
	Path string
	Key  string // "" when the whole file is at fault
	Err  error
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("sandbox env file %s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("sandbox env file %s: key %s: %v", e.Path, e.Key, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// SyntaxError is a line that is not in the form every reader agrees on.
type SyntaxError struct {
	Line   int // 1-based
	Reason string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d: %s (the tool writes KEY=value or KEY=\"value\" lines; see the sandbox README)", e.Line, e.Reason)
}

// ErrTooLarge is wrapped by the *Error for a file above MaxSize.
var ErrTooLarge = fmt.Errorf("larger than %d bytes: not an env file the tool wrote", MaxSize)

// Read reads and parses the env file at path. Every error is an *Error
// naming the file.
func Read(path string) (map[string]string, error) {
	data, err := ReadBytes(path)
	if err != nil {
		return nil, err
	}
	vals, err := Parse(data)
	if err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	return vals, nil
}

// ReadBytes returns the content of the env file at path, refusing one
// larger than MaxSize. Every error is an *Error naming the file.
func ReadBytes(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	if len(data) > MaxSize {
		return nil, &Error{Path: path, Err: ErrTooLarge}
	}
	return data, nil
}

// Parse parses an env file's content. An input outside the form is a
// *SyntaxError.
func Parse(data []byte) (map[string]string, error) {
	src := string(data) // one copy: keys and values are slices of it
	vals := make(map[string]string, 32)
	for n := 1; src != ""; n++ {
		line := src
		if i := strings.IndexByte(src, '\n'); i >= 0 {
			line, src = src[:i], src[i+1:]
		} else {
			src = ""
		}
		key, v, skip, reason := parseLine(line)
		if reason == "" && !skip {
			if _, dup := vals[key]; dup {
				reason = fmt.Sprintf("%s is set again (first on line %d)", key, firstLineOf(string(data), key))
			}
		}
		if reason != "" {
			return nil, &SyntaxError{Line: n, Reason: reason}
		}
		if !skip {
			vals[key] = v
		}
	}
	return vals, nil
}

// parseLine parses one line: a KEY=value, or a line to skip (blank or a
// comment), or the reason it is neither.
func parseLine(line string) (key, v string, skip bool, reason string) {
	if !utf8.ValidString(line) {
		return "", "", false, "not UTF-8"
	}
	if i := strings.IndexFunc(line, func(r rune) bool { return unicode.IsControl(r) && r != '\t' }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(line[i:])
		return "", "", false, fmt.Sprintf("control character %U", r)
	}
	rest := strings.TrimLeft(line, " \t")
	if rest == "" || rest[0] == '#' {
		return "", "", true, ""
	}
	if len(rest) != len(line) {
		return "", "", false, "space before the key"
	}
	eq := strings.IndexByte(line, '=')
	if eq < 0 {
		return "", "", false, "no '=' after the key"
	}
	key = line[:eq]
	if !ValidKey(key) {
		return "", "", false, fmt.Sprintf("%q is not a key (a letter or '_', then letters, digits or '_', directly followed by '=')", key)
	}
	raw := line[eq+1:]
	if quote := raw[:min(len(raw), 1)]; quote == `"` || quote == "'" {
		q := raw[1:]
		end := strings.Index(q, quote)
		if end < 0 {
			return "", "", false, fmt.Sprintf("the value of %s has no closing quote on its line", key)
		}
		if after := q[end+1:]; after != "" && !isComment(after) {
			return "", "", false, fmt.Sprintf("text after the closing quote of %s (only \" # a comment\" may follow)", key)
		}
		v = q[:end]
		if r, bad := badRune(v, true); bad {
			return "", "", false, fmt.Sprintf("the value of %s holds %s", key, describe(r))
		}
		return key, v, false, ""
	}
	v = raw
	if i := strings.IndexByte(raw, ' '); i > 0 && isComment(raw[i:]) {
		// godotenv ends such a value at the last " #", compose at the
		// first: one '#' only.
		if strings.Count(raw[i:], "#") > 1 {
			return "", "", false, fmt.Sprintf("a comment after the unquoted value of %s holds a second '#'", key)
		}
		v = raw[:i]
	}
	if r, bad := badRune(v, false); bad {
		return "", "", false, fmt.Sprintf("the value of %s holds %s (quote a value with spaces or '#')", key, describe(r))
	}
	return key, v, false, ""
}

// firstLineOf returns the number of the first line of src that sets key.
func firstLineOf(src, key string) int {
	n := 0
	for line := range strings.Lines(src) {
		n++
		if strings.HasPrefix(line, key+"=") {
			return n
		}
	}
	return 0
}

// isComment reports whether s is a comment after a value: spaces, then '#'
// and anything.
func isComment(s string) bool {
	t := strings.TrimLeft(s, " ")
	return len(t) < len(s) && strings.HasPrefix(t, "#")
}

// ValidKey reports whether k can be a key of the file.
func ValidKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// badRune returns the first rune of v that the form does not allow in a
// value (quoted: inside double quotes).
func badRune(v string, quoted bool) (rune, bool) {
	for _, r := range v {
		switch {
		case r == '"', r == '\'', r == '\\', r == '$', r == '`', r == '!':
			return r, true
		case r == ' ' && quoted, r == '#' && quoted:
		case r == '#', unicode.IsSpace(r), unicode.IsControl(r), r == utf8.RuneError:
			return r, true
		case !unicode.IsPrint(r) && !unicode.IsGraphic(r):
			return r, true
		}
	}
	return 0, false
}

func describe(r rune) string {
	if r == ' ' {
		return "a space"
	}
	if unicode.IsPrint(r) {
		return fmt.Sprintf("%q", r)
	}
	return fmt.Sprintf("%U", r)
}

// ValueError is a value that the file cannot hold in the agreed form.
type ValueError struct {
	Key, Value string
	Rune       rune
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("the value %q of %s holds %s, which an env file cannot hold so that the tool, godotenv and compose read it alike", e.Value, e.Key, describe(e.Rune))
}

// Marshal returns the file's content for vals, keys sorted, after header
// (comment lines, each starting with "# ", may be ""). Values of decimal
// digits are written bare, others in double quotes. A key or value outside
// the form is an error, so what Marshal writes Parse reads back unchanged.
func Marshal(header string, vals map[string]string) ([]byte, error) {
	var b bytes.Buffer
	for l := range strings.Lines(header) {
		if !strings.HasPrefix(l, "#") {
			return nil, fmt.Errorf("env file header line %q does not start with '#'", strings.TrimRight(l, "\n"))
		}
		b.WriteString(strings.TrimRight(l, "\n"))
		b.WriteByte('\n')
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := vals[k]
		if !ValidKey(k) {
			return nil, fmt.Errorf("%q is not an env file key", k)
		}
		if r, bad := badRune(v, true); bad {
			return nil, &ValueError{Key: k, Value: v, Rune: r}
		}
		b.WriteString(k)
		b.WriteByte('=')
		if v != "" && strings.Trim(v, "0123456789") == "" {
			b.WriteString(v)
		} else {
			b.WriteByte('"')
			b.WriteString(v)
			b.WriteByte('"')
		}
		b.WriteByte('\n')
	}
	if b.Len() > MaxSize {
		return nil, ErrTooLarge
	}
	return b.Bytes(), nil
}

// ParseDecimal parses s as a number in its one canonical form, the one
// strconv.Itoa writes: decimal digits, no sign, no leading zero, no spaces.
// "+8001", "08001" and " 8001" are refused, so that a value always reads
// back as it was written. It refuses numbers above max.
func ParseDecimal(s string, max int) (int, bool) {
	if s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > max {
		return 0, false
	}
	return n, true
}

// ParsePort parses a port number, 1–65535, in its canonical form.
func ParsePort(s string) (int, bool) {
	n, ok := ParseDecimal(s, 65535)
	return n, ok && n >= 1
}

// IsSyntax reports whether err is (or wraps) a *SyntaxError.
func IsSyntax(err error) bool {
	var se *SyntaxError
	return errors.As(err, &se)
}
