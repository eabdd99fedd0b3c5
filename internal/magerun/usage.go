package magerun

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/magefile/mage/parse"
)

// ExitUsage is the exit code of a command line that names no target of the
// magefiles, or gives a target an argument or flag it cannot take
// (EX_USAGE of sysexits.h). Mage's own program exits 2 then, which targets
// use for failures of their own; magerun checks the command line first.
const ExitUsage = 64

// signatures are the targets of one compiled program as mage parsed them,
// kept beside the program (<key>.targets.json) so that a call can check its
// command line without parsing the magefiles again.
type signatures struct {
	Targets map[string]targetSig `json:"targets"` // by lower-case name
	Aliases map[string]string    `json:"aliases"` // lower-case alias → lower-case target name
}

type targetSig struct {
	Name string   `json:"name"` // as mage lists it: sandbox:initShared
	Args []argSig `json:"args"`
}

type argSig struct {
	Name     string `json:"name"`
	Type     string `json:"type"` // string, int, float64, bool, time.Duration
	Optional bool   `json:"optional"`
}

const signaturesSuffix = ".targets.json"

// parseSignatures parses the magefiles (base names files in dir) and the
// packages they import with //mage:import, as mage does when it builds.
func parseSignatures(goCmd, dir string, files []string, multiline bool) (*signatures, error) {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = filepath.Base(f)
	}
	info, err := parse.PrimaryPackage(goCmd, dir, names, multiline)
	if err != nil {
		return nil, fmt.Errorf("read the targets of the magefiles in %s: %w", dir, err)
	}
	s := &signatures{Targets: map[string]targetSig{}, Aliases: map[string]string{}}
	add := func(f *parse.Function) {
		t := targetSig{Name: lowerFirst(f.TargetName())}
		for _, a := range f.Args {
			t.Args = append(t.Args, argSig{Name: a.Name, Type: a.Type, Optional: a.Optional})
		}
		s.Targets[strings.ToLower(f.TargetName())] = t
	}
	for _, f := range info.Funcs {
		add(f)
	}
	for _, imp := range info.Imports {
		for _, f := range imp.Info.Funcs {
			add(f)
		}
	}
	for alias, f := range info.Aliases {
		s.Aliases[strings.ToLower(alias)] = strings.ToLower(f.TargetName())
	}
	return s, nil
}

// lowerFirst writes a target name as mage's list does: the first word of
// each part in lower case (Sandbox:InitShared → sandbox:initShared,
// Sandbox:URL → sandbox:url).
func lowerFirst(name string) string {
	parts := strings.Split(name, ":")
	for i, p := range parts {
		switch {
		case firstWord.MatchString(p):
			m := firstWord.FindStringSubmatch(p)
			parts[i] = strings.ToLower(m[1]) + m[2]
		case firstAbbrev.MatchString(p):
			m := firstAbbrev.FindStringSubmatch(p)
			parts[i] = strings.ToLower(m[1]) + m[2]
		default:
			parts[i] = strings.ToLower(p)
		}
	}
	return strings.Join(parts, ":")
}

// Mage's rules for the first word of a name (mage/main.go).
var (
	firstWord   = regexp.MustCompile(`^([[:upper:]][^[:upper:]]+)([[:upper:]].*)$`)
	firstAbbrev = regexp.MustCompile(`^([[:upper:]]+)([[:upper:]][^[:upper:]].*)$`)
)

// writeSignatures writes s to path atomically.
func writeSignatures(path string, s *signatures) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := path + ".tmp-" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write the targets' signatures %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("put the targets' signatures in place at %s: %w", path, err)
	}
	return nil
}

// readSignatures reads the signatures kept beside a program; nil when there
// are none (the command line is then left to mage).
func readSignatures(path string) *signatures {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var s signatures
	if json.Unmarshal(data, &s) != nil || s.Targets == nil {
		return nil
	}
	return &s
}

// UsageError is a command line that the compiled magefiles would refuse.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

// check parses args (targets, each followed by its arguments and -name=value
// flags) exactly as mage's generated program does, and reports the first
// thing it would refuse, naming the target, the flag and the type expected.
func (s *signatures) check(args []string) error {
	for x := 0; x < len(args); {
		given := args[x]
		x++
		name := strings.ToLower(given)
		if t, ok := s.Aliases[name]; ok {
			name = t
		}
		t, ok := s.Targets[name]
		if !ok {
			if strings.HasPrefix(given, "-") && x > 1 {
				return usagef("%s is not a flag of the target before it (go tool mage -h <target> lists its flags), nor a target", given)
			}
			return usagef("unknown target %q (go tool mage -l lists them)", given)
		}
		var required, optional []argSig
		for _, a := range t.Args {
			if a.Optional {
				optional = append(optional, a)
			} else {
				required = append(required, a)
			}
		}
		if x+len(required) > len(args) {
			var want []string
			for _, a := range required {
				want = append(want, "<"+a.Name+">")
			}
			return usagef("%s needs %s: go tool mage %s %s", t.Name, strings.Join(want, " "), t.Name, strings.Join(want, " "))
		}
		for _, a := range required {
			if err := checkValue(a.Type, args[x]); err != nil {
				return usagef("%s: argument <%s> %q is not %s", t.Name, a.Name, args[x], err)
			}
			x++
		}
		if len(optional) == 0 {
			continue
		}
		for x < len(args) && strings.HasPrefix(args[x], "-") {
			if err := checkFlag(t, optional, args[x]); err != nil {
				return err
			}
			x++
		}
	}
	return nil
}

// checkFlag checks one -name=value (or bare -name of a bool) of target t.
func checkFlag(t targetSig, optional []argSig, flag string) error {
	name, value, hasValue := strings.Cut(flag[1:], "=")
	i := slices.IndexFunc(optional, func(a argSig) bool { return strings.EqualFold(a.Name, name) })
	if i < 0 {
		var names []string
		for _, a := range optional {
			names = append(names, "-"+a.Name)
		}
		return usagef("%s has no flag -%s; its flags: %s", t.Name, name, strings.Join(names, ", "))
	}
	a := optional[i]
	if !hasValue {
		if a.Type == "bool" {
			return nil
		}
		return usagef("%s: flag -%s needs a value, %s: -%s=<%s>", t.Name, a.Name, describe(a.Type), a.Name, a.Type)
	}
	if err := checkValue(a.Type, value); err != nil {
		return usagef("%s: flag -%s=%s: %q is not %s", t.Name, a.Name, value, value, err)
	}
	return nil
}

// checkValue parses v as mage's program would parse a value of type typ;
// the error is the description of what was expected.
func checkValue(typ, v string) error {
	var err error
	switch typ {
	case "int":
		_, err = strconv.Atoi(v)
	case "float64":
		_, err = strconv.ParseFloat(v, 64)
	case "bool":
		_, err = strconv.ParseBool(v)
	case "time.Duration":
		_, err = time.ParseDuration(v)
	}
	if err != nil {
		return errors.New(describe(typ))
	}
	return nil
}

func describe(typ string) string {
	switch typ {
	case "int":
		return "an integer (int)"
	case "float64":
		return "a number (float64)"
	case "bool":
		return "true or false (bool)"
	case "time.Duration":
		return "a duration such as 90s, 5m or 1h30m (time.Duration)"
	}
	return "a " + typ
}

// removeOrphanSignatures is part of prune: signatures whose program is gone.
func removeOrphanSignatures(dir, name string) {
	key, ok := strings.CutSuffix(name, signaturesSuffix)
	if !ok || !isKey(key) {
		return
	}
	if _, err := os.Stat(filepath.Join(dir, exeName(key))); errors.Is(err, fs.ErrNotExist) {
		os.Remove(filepath.Join(dir, name))
	}
}
