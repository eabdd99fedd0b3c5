package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// The sh personality: just enough of a POSIX shell for healthchecks written
// as ["CMD-SHELL", "…"], which Docker runs as /bin/sh -c "…".
//
// Supported: `sh -c STRING [NAME [ARG…]]`; words split like a POSIX shell
// with '…', "…" and backslash escapes; $VAR, ${VAR}, ${VAR:-word},
// ${VAR-word}, ${VAR:+word}, ${VAR+word}, $?, $0…$9 (unquoted expansions
// are split on blanks); the operators &&, || and ; (and newlines), `!`
// before a command, # comments, NAME=value assignments (alone, or before a
// command for that command only); the builtins exit [N], true, false, :,
// echo [-n], exec CMD…; and the stand-in's own tools (curl, wget,
// pg_isready, sh, standin) by name or by any path ending in one.
//
// Everything else (pipes, redirections, background jobs, subshells and
// groups, command substitution, arithmetic, if/for/while/case, other
// ${…} forms, $@ $* $# $$ $! $-) is refused with status 2 before anything
// runs, so a healthcheck never silently means something else. Unknown
// commands print "sh: NAME: not found" and give status 127.

// Exit statuses of the shell.
const (
	shSyntax   = 2
	shNotFound = 127
)

// shWord is one word of a command: literal and parameter parts.
type shWord []shPart

type shPart struct {
	lit    string
	param  *shParam // nil for a literal
	quoted bool     // inside '…' or "…" or escaped: not split, keeps an empty word
}

// shParam is $NAME, ${NAME} or ${NAME<op>word}.
type shParam struct {
	name string
	op   string // "", ":-", "-", ":+", "+"
	word shWord // the word after op
}

// shCommand is one simple command; op says how it joins the one before it
// in its and-or list ("" first, "&&" or "||").
type shCommand struct {
	op     string
	negate bool
	assign []shAssign
	words  []shWord
}

type shAssign struct {
	name  string
	value shWord
}

// shList is one and-or list; a script is lists run one after another.
type shList []shCommand

// shSyntaxError is a script the stand-in shell does not run.
type shSyntaxError struct{ msg string }

func (e *shSyntaxError) Error() string { return e.msg }

func shRefuse(format string, a ...any) error {
	return &shSyntaxError{msg: fmt.Sprintf(format, a...)}
}

const shOnly = "the ktrdr stand-in shell runs only words, quotes, $VAR, &&, || and ;"

// shParser reads a script one byte at a time; every loop advances pos or
// returns, so no input can make it spin.
type shParser struct {
	src string
	pos int
}

func (p *shParser) peek(off int) byte {
	if p.pos+off < len(p.src) {
		return p.src[p.pos+off]
	}
	return 0
}

func (p *shParser) eof() bool { return p.pos >= len(p.src) }

// Token kinds between words.
const (
	shTokWord = iota
	shTokAnd
	shTokOr
	shTokSemi
	shTokNewline
	shTokEOF
)

type shToken struct {
	kind int
	word shWord
	raw  string // the word's source text, for reserved-word checks
}

// parseShell parses a whole script.
func parseShell(src string) ([]shList, error) {
	p := &shParser{src: src}
	var (
		lists []shList
		cur   shList
		op    string // pending && or ||
		cmd   *shCommand
	)
	endCommand := func() error {
		if cmd == nil {
			return nil
		}
		if len(cmd.words) == 0 && cmd.negate {
			return shRefuse("syntax error: `!' without a command")
		}
		cur = append(cur, *cmd)
		cmd = nil
		return nil
	}
	for {
		tok, err := p.next()
		if err != nil {
			return nil, err
		}
		switch tok.kind {
		case shTokWord:
			if cmd == nil {
				cmd = &shCommand{op: op}
				op = ""
			}
			if len(cmd.words) == 0 && len(tok.word) == 1 && !tok.word[0].quoted && tok.word[0].param == nil {
				switch w := tok.raw; w {
				case "!":
					cmd.negate = !cmd.negate
					continue
				case "{", "}", "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done",
					"case", "esac", "function", "select", "[[", "]]":
					return nil, shRefuse("%q is not supported: %s", w, shOnly)
				}
			}
			if len(cmd.words) == 0 {
				if name, value, ok := splitAssignment(tok); ok {
					cmd.assign = append(cmd.assign, shAssign{name: name, value: value})
					continue
				}
			}
			cmd.words = append(cmd.words, tok.word)
		case shTokAnd, shTokOr:
			name := map[int]string{shTokAnd: "&&", shTokOr: "||"}[tok.kind]
			if cmd == nil {
				return nil, shRefuse("syntax error: %q without a command before it", name)
			}
			if err := endCommand(); err != nil {
				return nil, err
			}
			op = name
			// A newline may follow && or ||.
			for p.skipBlanks(); p.peek(0) == '\n'; p.skipBlanks() {
				p.pos++
			}
		case shTokSemi, shTokNewline, shTokEOF:
			if op != "" {
				return nil, shRefuse("syntax error: %q without a command after it", op)
			}
			if cmd == nil && tok.kind == shTokSemi {
				return nil, shRefuse("syntax error: \";\" without a command before it")
			}
			if err := endCommand(); err != nil {
				return nil, err
			}
			if len(cur) > 0 {
				lists = append(lists, cur)
				cur = nil
			}
			if tok.kind == shTokEOF {
				return lists, nil
			}
		}
	}
}

// splitAssignment recognises NAME=value: the word's first part is an
// unquoted literal starting with a name and '='.
func splitAssignment(tok shToken) (string, shWord, bool) {
	first := tok.word[0]
	if first.quoted || first.param != nil {
		return "", nil, false
	}
	name, rest, ok := strings.Cut(first.lit, "=")
	if !ok || !validName(name) {
		return "", nil, false
	}
	value := shWord{}
	if rest != "" {
		value = append(value, shPart{lit: rest})
	}
	return name, append(value, tok.word[1:]...), true
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && !isAlpha(c) && (i == 0 || !isDigit(c)) {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// skipBlanks skips spaces, tabs, backslash-newlines and comments.
func (p *shParser) skipBlanks() {
	for !p.eof() {
		switch c := p.peek(0); {
		case c == ' ' || c == '\t' || c == '\r':
			p.pos++
		case c == '\\' && p.peek(1) == '\n':
			p.pos += 2
		case c == '#':
			for !p.eof() && p.peek(0) != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

// next returns the next token, or an error for what the shell refuses.
func (p *shParser) next() (shToken, error) {
	p.skipBlanks()
	if p.eof() {
		return shToken{kind: shTokEOF}, nil
	}
	switch c := p.peek(0); c {
	case '\n':
		p.pos++
		return shToken{kind: shTokNewline}, nil
	case ';':
		if p.peek(1) == ';' {
			return shToken{}, shRefuse("syntax error: \";;\" (case) is not supported: %s", shOnly)
		}
		p.pos++
		return shToken{kind: shTokSemi}, nil
	case '&':
		if p.peek(1) == '&' {
			p.pos += 2
			return shToken{kind: shTokAnd}, nil
		}
		return shToken{}, shRefuse("background jobs (&) are not supported: %s", shOnly)
	case '|':
		if p.peek(1) == '|' {
			p.pos += 2
			return shToken{kind: shTokOr}, nil
		}
		return shToken{}, shRefuse("pipes (|) are not supported: %s", shOnly)
	case '<', '>':
		return shToken{}, shRefuse("redirections (%c) are not supported: %s", c, shOnly)
	case '(', ')':
		return shToken{}, shRefuse("subshells (parentheses) are not supported: %s", shOnly)
	}
	start := p.pos
	w, err := p.word(false, false)
	if err != nil {
		return shToken{}, err
	}
	return shToken{kind: shTokWord, word: w, raw: p.src[start:p.pos]}, nil
}

// word reads one word (or, inBrace, the word of ${NAME:-word} up to its
// closing brace; inDQ when that brace is itself inside "…").
func (p *shParser) word(inBrace, inDQ bool) (shWord, error) {
	var w shWord
	var lit strings.Builder
	litQuoted := false
	flush := func() {
		if lit.Len() > 0 {
			w = append(w, shPart{lit: lit.String(), quoted: litQuoted})
			lit.Reset()
		}
	}
	add := func(s string, quoted bool) {
		if lit.Len() > 0 && litQuoted != quoted {
			flush()
		}
		litQuoted = quoted
		lit.WriteString(s)
	}
	for !p.eof() {
		c := p.peek(0)
		if inBrace && c == '}' {
			break
		}
		if !inBrace && strings.IndexByte(" \t\r\n;&|<>()", c) >= 0 {
			break
		}
		switch {
		case inDQ && c == '"':
			return nil, shRefuse("syntax error: nested double quote inside ${…} in double quotes is not supported")
		case c == '\\':
			switch n := p.peek(1); {
			case p.pos+1 >= len(p.src):
				add(`\`, true)
				p.pos++
			case n == '\n':
				p.pos += 2
			case inDQ && strings.IndexByte("$`\"\\}", n) < 0:
				add(`\`+string(n), true)
				p.pos += 2
			default:
				add(string(n), true)
				p.pos += 2
			}
		case c == '\'' && !inDQ:
			end := strings.IndexByte(p.src[p.pos+1:], '\'')
			if end < 0 {
				return nil, shRefuse("syntax error: unterminated single quote")
			}
			add(p.src[p.pos+1:p.pos+1+end], true)
			if end == 0 {
				flush()
				w = append(w, shPart{quoted: true}) // '' keeps an empty word
			}
			p.pos += end + 2
		case c == '"' && !inDQ:
			p.pos++
			parts, err := p.doubleQuoted()
			if err != nil {
				return nil, err
			}
			flush()
			w = append(w, parts...)
		case c == '`':
			return nil, shRefuse("command substitution (`) is not supported: %s", shOnly)
		case c == '$':
			part, err := p.dollar(inDQ)
			if err != nil {
				return nil, err
			}
			if part.param == nil {
				add(part.lit, inDQ)
				continue
			}
			flush()
			part.quoted = inDQ
			w = append(w, part)
		default:
			add(string(c), inDQ)
			p.pos++
		}
	}
	flush()
	return w, nil
}

// doubleQuoted reads after an opening " up to and past the closing one.
func (p *shParser) doubleQuoted() (shWord, error) {
	w := shWord{{quoted: true}} // "" keeps an empty word
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			w = append(w, shPart{lit: lit.String(), quoted: true})
			lit.Reset()
		}
	}
	for !p.eof() {
		switch c := p.peek(0); c {
		case '"':
			p.pos++
			flush()
			return w, nil
		case '\\':
			n := p.peek(1)
			switch {
			case p.pos+1 >= len(p.src):
				lit.WriteByte('\\')
				p.pos++
			case n == '\n':
				p.pos += 2
			case strings.IndexByte("$`\"\\", n) >= 0:
				lit.WriteByte(n)
				p.pos += 2
			default:
				lit.WriteByte('\\')
				p.pos++
			}
		case '`':
			return nil, shRefuse("command substitution (`) is not supported: %s", shOnly)
		case '$':
			part, err := p.dollar(true)
			if err != nil {
				return nil, err
			}
			if part.param == nil {
				lit.WriteString(part.lit)
				continue
			}
			flush()
			part.quoted = true
			w = append(w, part)
		default:
			lit.WriteByte(c)
			p.pos++
		}
	}
	return nil, shRefuse("syntax error: unterminated double quote")
}

// dollar reads a $ expansion; a $ that starts none is a literal "$".
func (p *shParser) dollar(inDQ bool) (shPart, error) {
	p.pos++ // the $
	c := p.peek(0)
	switch {
	case p.eof():
		return shPart{lit: "$"}, nil
	case c == '(':
		return shPart{}, shRefuse("command substitution and arithmetic ($( … )) are not supported: %s", shOnly)
	case c == '{':
		p.pos++
		start := p.pos
		for !p.eof() && (p.peek(0) == '_' || isAlpha(p.peek(0)) || (p.pos > start && isDigit(p.peek(0)))) {
			p.pos++
		}
		name := p.src[start:p.pos]
		if name == "" && (p.peek(0) == '?' || isDigit(p.peek(0))) {
			p.pos++
			name = p.src[start:p.pos]
		}
		if name == "" {
			return shPart{}, shRefuse("${%s is not supported: %s", p.rest(), shOnly)
		}
		par := &shParam{name: name}
		switch {
		case p.peek(0) == '}':
			p.pos++
			return shPart{param: par}, nil
		case strings.HasPrefix(p.src[p.pos:], ":-"), strings.HasPrefix(p.src[p.pos:], ":+"):
			par.op = p.src[p.pos : p.pos+2]
		case p.peek(0) == '-', p.peek(0) == '+':
			par.op = p.src[p.pos : p.pos+1]
		default:
			return shPart{}, shRefuse("${%s%s is not supported (only ${NAME}, ${NAME:-word}, ${NAME-word}, ${NAME:+word}, ${NAME+word})", name, p.rest())
		}
		p.pos += len(par.op)
		w, err := p.word(true, inDQ)
		if err != nil {
			return shPart{}, err
		}
		if p.peek(0) != '}' {
			return shPart{}, shRefuse("syntax error: missing } in ${%s%s", name, par.op)
		}
		p.pos++
		par.word = w
		return shPart{param: par}, nil
	case c == '_' || isAlpha(c):
		start := p.pos
		for !p.eof() && (p.peek(0) == '_' || isAlpha(p.peek(0)) || isDigit(p.peek(0))) {
			p.pos++
		}
		return shPart{param: &shParam{name: p.src[start:p.pos]}}, nil
	case c == '?' || isDigit(c):
		p.pos++
		return shPart{param: &shParam{name: string(c)}}, nil
	case strings.IndexByte("@*#$!-", c) >= 0:
		return shPart{}, shRefuse("$%c is not supported: %s", c, shOnly)
	}
	return shPart{lit: "$"}, nil
}

func (p *shParser) rest() string {
	r := p.src[p.pos:]
	if len(r) > 20 {
		r = r[:20] + "…"
	}
	return r
}

// shell runs parsed scripts.
type shell struct {
	ctx    context.Context
	getenv func(string) string
	vars   map[string]string // assignments made by the script
	args   []string          // $0, $1, …
	status int               // $?
	stdout io.Writer
	stderr io.Writer
	// external runs a command that is not a builtin; it reports false
	// when there is no such command.
	external func(ctx context.Context, name string, args []string, getenv func(string) string, stdout, stderr io.Writer) (int, bool)
}

type shExit struct{ code int }

// lookup returns a parameter's value and whether it is set. The
// environment cannot tell an empty variable from an unset one: both count
// as unset.
func (s *shell) lookup(name string) (string, bool) {
	if name == "?" {
		return strconv.Itoa(s.status), true
	}
	if len(name) == 1 && isDigit(name[0]) {
		if i := int(name[0] - '0'); i < len(s.args) {
			return s.args[i], true
		}
		return "", false
	}
	if v, ok := s.vars[name]; ok {
		return v, true
	}
	v := s.getenv(name)
	return v, v != ""
}

// expand turns words into fields: unquoted expansions are split on blanks,
// and a word that expands to nothing unquoted disappears.
func (s *shell) expand(words []shWord) []string {
	var fields []string
	for _, w := range words {
		fields = s.expandWord(w, fields, true)
	}
	return fields
}

// expandWord appends w's fields to fields; with split false (assignments)
// it appends exactly one field.
func (s *shell) expandWord(w shWord, fields []string, split bool) []string {
	var cur strings.Builder
	has := false // cur is a field even if empty
	appendSplit := func(val string) {
		for _, r := range val {
			if r == ' ' || r == '\t' || r == '\n' {
				if has {
					fields = append(fields, cur.String())
					cur.Reset()
					has = false
				}
				continue
			}
			cur.WriteRune(r)
			has = true
		}
	}
	// emit expands parts; inExpansion marks a ${NAME:-word} word, whose
	// unquoted literal text is split like a value.
	var emit func(parts shWord, quotedCtx, inExpansion bool)
	emit = func(parts shWord, quotedCtx, inExpansion bool) {
		for _, part := range parts {
			quoted := part.quoted || quotedCtx || !split
			if part.param == nil {
				if !quoted && inExpansion {
					appendSplit(part.lit)
					continue
				}
				cur.WriteString(part.lit)
				has = has || quoted || part.lit != ""
				continue
			}
			val, set := s.lookup(part.param.name)
			var useWord bool
			switch part.param.op {
			case ":-":
				useWord = !set || val == ""
			case "-":
				useWord = !set
			case ":+":
				useWord, val = set && val != "", ""
			case "+":
				useWord, val = set, ""
			}
			if useWord {
				if quoted {
					has = true // "${X:-}" is an empty field
				}
				emit(part.param.word, quoted, true)
				continue
			}
			if quoted {
				cur.WriteString(val)
				has = true
				continue
			}
			appendSplit(val)
		}
	}
	emit(w, false, false)
	if has || !split {
		fields = append(fields, cur.String())
	}
	return fields
}

// run runs the script and returns its exit status.
func (s *shell) run(lists []shList) int {
	for _, l := range lists {
		for _, c := range l {
			if (c.op == "&&" && s.status != 0) || (c.op == "||" && s.status == 0) {
				continue
			}
			code, exit := s.command(c)
			if c.negate {
				code = boolStatus(code != 0)
			}
			s.status = code
			if exit {
				return code
			}
		}
	}
	return s.status
}

func boolStatus(ok bool) int {
	if ok {
		return 0
	}
	return 1
}

// command runs one simple command; exit reports that the shell must stop.
func (s *shell) command(c shCommand) (int, bool) {
	fields := s.expand(c.words)
	assigned := map[string]string{}
	for _, a := range c.assign {
		assigned[a.name] = s.expandWord(a.value, nil, false)[0]
	}
	if len(fields) == 0 {
		for k, v := range assigned {
			s.vars[k] = v
		}
		return 0, false
	}
	getenv := func(k string) string {
		if v, ok := assigned[k]; ok {
			return v
		}
		if v, ok := s.vars[k]; ok {
			return v
		}
		return s.getenv(k)
	}
	return s.exec(fields, getenv)
}

func (s *shell) exec(fields []string, getenv func(string) string) (int, bool) {
	name, args := fields[0], fields[1:]
	switch name {
	case "exit":
		code := s.status
		if len(args) > 0 {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 0 {
				fmt.Fprintf(s.stderr, "sh: exit: Illegal number: %s\n", args[0])
				return shSyntax, true
			}
			code = n & 0xff
		}
		return code, true
	case "true", ":":
		return 0, false
	case "false":
		return 1, false
	case "echo":
		nl := "\n"
		if len(args) > 0 && args[0] == "-n" {
			nl, args = "", args[1:]
		}
		fmt.Fprint(s.stdout, strings.Join(args, " ")+nl)
		return 0, false
	case "exec":
		if len(args) == 0 {
			return 0, false
		}
		code, _ := s.exec(args, getenv)
		return code, true
	}
	if code, ok := s.external(s.ctx, name, args, getenv, s.stdout, s.stderr); ok {
		return code, false
	}
	fmt.Fprintf(s.stderr, "sh: %s: not found\n", name)
	return shNotFound, false
}

// shMain is `sh -c STRING [NAME [ARG…]]`.
func shMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "-c" {
		fmt.Fprintf(stderr, "sh: only `sh -c STRING [NAME [ARG…]]` is supported by the ktrdr stand-in (got %q)\n", args)
		return shSyntax
	}
	lists, err := parseShell(args[1])
	if err != nil {
		fmt.Fprintf(stderr, "sh: %v\n", err)
		return shSyntax
	}
	positional := append([]string{"sh"}, args[2:]...)
	if len(args) > 2 {
		positional = args[2:]
	}
	s := &shell{ctx: ctx, getenv: getenv, vars: map[string]string{}, args: positional, stdout: stdout, stderr: stderr,
		external: shTool}
	return s.run(lists)
}

// shTool runs the stand-in's own tools from the shell.
func shTool(ctx context.Context, name string, args []string, getenv func(string) string, stdout, stderr io.Writer) (int, bool) {
	base := filepath.Base(name)
	if base == "standin" {
		return run(ctx, append([]string{name}, args...), getenv, stdout, stderr), true
	}
	return runTool(ctx, base, args, getenv, stdout, stderr)
}
