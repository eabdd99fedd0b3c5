package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// The grep and cat personalities: the text tools that shell pipes in
// healthchecks and `docker exec … sh` sessions lean on
// (`curl -fsS …/health | grep -q ok`, `cat /etc/hostname`), with the real
// tools' exit statuses.

// Exit statuses of grep.
const (
	grepMatch   = 0
	grepNoMatch = 1
	grepTrouble = 2
)

// grepOptions is what grep's command line asks for.
type grepOptions struct {
	quiet, noMessages, ignoreCase, invert, count, lineNumbers, wholeLine, words bool
	syntax                                                                      byte // 'G' basic, 'E' extended, 'F' fixed strings
	patterns                                                                    []string
	files                                                                       []string
}

// parseGrepArgs reads `grep [-qsivcnxwEFG] [-e PATTERN]… [PATTERN] [FILE…]`.
func parseGrepArgs(args []string) (grepOptions, error) {
	o := grepOptions{syntax: 'G'}
	havePattern := false
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		for j := 1; j < len(a); j++ {
			switch f := a[j]; f {
			case 'q':
				o.quiet = true
			case 's':
				o.noMessages = true
			case 'i', 'y':
				o.ignoreCase = true
			case 'v':
				o.invert = true
			case 'c':
				o.count = true
			case 'n':
				o.lineNumbers = true
			case 'x':
				o.wholeLine = true
			case 'w':
				o.words = true
			case 'E', 'F', 'G':
				o.syntax = f
			case 'e':
				switch {
				case j+1 < len(a):
					o.patterns = append(o.patterns, a[j+1:])
				case i+1 < len(args):
					i++
					o.patterns = append(o.patterns, args[i])
				default:
					return o, fmt.Errorf("option -e needs a pattern")
				}
				havePattern = true
				j = len(a)
			default:
				return o, fmt.Errorf("invalid option -- '%c' (the ktrdr stand-in's grep knows -q -s -i -v -c -n -x -w -E -F -G -e)", f)
			}
		}
	}
	rest := args[i:]
	if !havePattern {
		if len(rest) == 0 {
			return o, fmt.Errorf("no pattern given")
		}
		o.patterns, rest = []string{rest[0]}, rest[1:]
	}
	o.files = rest
	return o, nil
}

// basicToExtended rewrites a POSIX basic regular expression for Go's
// regexp: \( \) \{ \} \| \+ \? are the operators, and ( ) { } | + ? are
// plain characters.
func basicToExtended(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p) && strings.IndexByte("(){}|+?", p[i+1]) >= 0:
			b.WriteByte(p[i+1])
			i++
		case c == '\\' && i+1 < len(p):
			b.WriteByte(c)
			b.WriteByte(p[i+1])
			i++
		case strings.IndexByte("(){}|+?", c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// compile turns the patterns into one expression.
func (o grepOptions) compile() (*regexp.Regexp, error) {
	alts := make([]string, len(o.patterns))
	for i, p := range o.patterns {
		switch o.syntax {
		case 'F':
			p = regexp.QuoteMeta(p)
		case 'G':
			p = basicToExtended(p)
		}
		alts[i] = "(?:" + p + ")"
	}
	expr := strings.Join(alts, "|")
	switch {
	case o.wholeLine:
		expr = "^(?:" + expr + ")$"
	case o.words:
		expr = `\b(?:` + expr + `)\b`
	}
	if o.ignoreCase {
		expr = "(?i)" + expr
	}
	return regexp.Compile(expr)
}

// grepMain is `grep [OPTION…] PATTERN [FILE…]` (stdin without a FILE or
// for "-"): status 0 when a line was selected, 1 when none, 2 on trouble.
func grepMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseGrepArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "grep: %v\nusage: grep [-qsivcnxwEFG] [-e PATTERN]… [PATTERN] [FILE…]\n", err)
		return grepTrouble
	}
	re, err := o.compile()
	if err != nil {
		fmt.Fprintf(stderr, "grep: pattern %q: %v\n", strings.Join(o.patterns, "\n"), err)
		return grepTrouble
	}
	files := o.files
	if len(files) == 0 {
		files = []string{"-"}
	}
	selected, trouble := false, false
	for _, name := range files {
		var in io.Reader = stdin
		var f *os.File
		if name != "-" {
			if f, err = os.Open(toolPath(ctx, name)); err != nil {
				if !o.noMessages {
					fmt.Fprintf(stderr, "grep: %s: %v\n", name, errUnwrapPath(err))
				}
				trouble = true
				continue
			}
			in = f
		}
		prefix := ""
		if len(files) > 1 {
			prefix = name + ":"
		}
		n, err := grepStream(re, o, in, prefix, stdout)
		if f != nil {
			f.Close()
		}
		if n > 0 {
			selected = true
			if o.quiet {
				return grepMatch // like grep -q: the first match is enough
			}
		}
		if err != nil {
			if !o.noMessages {
				fmt.Fprintf(stderr, "grep: %s: %v\n", name, err)
			}
			trouble = true
		}
	}
	switch {
	case trouble && !(o.quiet && selected):
		return grepTrouble
	case selected:
		return grepMatch
	}
	return grepNoMatch
}

// grepStream writes in's selected lines (or their count) and returns how
// many there were; with quiet it stops at the first.
func grepStream(re *regexp.Regexp, o grepOptions, in io.Reader, prefix string, out io.Writer) (int, error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	n := 0
	for line := 1; sc.Scan(); line++ {
		if re.MatchString(sc.Text()) == o.invert {
			continue
		}
		n++
		switch {
		case o.quiet:
			return n, nil
		case o.count:
		case o.lineNumbers:
			fmt.Fprintf(out, "%s%d:%s\n", prefix, line, sc.Text())
		default:
			fmt.Fprintf(out, "%s%s\n", prefix, sc.Text())
		}
	}
	if o.count && !o.quiet {
		fmt.Fprintf(out, "%s%d\n", prefix, n)
	}
	return n, sc.Err()
}

// catMain is `cat [-u] [FILE…]` (stdin without a FILE or for "-"): status
// 1 when a file could not be read, after copying the others.
func catMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	code := 0
	var files []string
	for i, a := range args {
		if a == "--" {
			files = append(files, args[i+1:]...)
			break
		}
		if a == "-u" {
			continue // unbuffered: every write here goes straight through
		}
		if len(a) > 1 && a[0] == '-' {
			fmt.Fprintf(stderr, "cat: invalid option %s (the ktrdr stand-in's cat knows only -u)\n", a)
			return 1
		}
		files = append(files, a)
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, name := range files {
		if name == "-" {
			if _, err := io.Copy(stdout, stdin); err != nil {
				fmt.Fprintf(stderr, "cat: stdin: %v\n", err)
				code = 1
			}
			continue
		}
		f, err := os.Open(toolPath(ctx, name))
		if err != nil {
			fmt.Fprintf(stderr, "cat: %s: %v\n", name, errUnwrapPath(err))
			code = 1
			continue
		}
		_, err = io.Copy(stdout, f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "cat: %s: %v\n", name, errUnwrapPath(err))
			code = 1
		}
	}
	return code
}

// errUnwrapPath drops the "open NAME:" of a *PathError, which the tools'
// messages already name.
func errUnwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
