package sandbox

import (
	"fmt"
)

// MaxNameLen is the longest sandbox name.
const MaxNameLen = 40

// InvalidNameError reports a refused sandbox name.
type InvalidNameError struct {
	Name   string
	Reason string
}

func (e *InvalidNameError) Error() string {
	return fmt.Sprintf("invalid sandbox name %q: %s (use lowercase letters, digits and single hyphens, 1–%d characters, starting with a letter or digit, e.g. feat-a)",
		e.Name, e.Reason, MaxNameLen)
}

// ValidateName checks a sandbox name: lowercase ASCII letters, digits and
// single hyphens, 1–40 characters, starting with a letter or digit and not
// ending with a hyphen.
func ValidateName(name string) error {
	bad := func(reason string) error { return &InvalidNameError{Name: name, Reason: reason} }
	switch {
	case name == "":
		return bad("it is empty")
	case len(name) > MaxNameLen:
		return bad(fmt.Sprintf("it has %d characters", len(name)))
	case name[0] == '-':
		return bad("it starts with a hyphen")
	case name[len(name)-1] == '-':
		return bad("it ends with a hyphen")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if name[i-1] == '-' {
				return bad("it has a double hyphen")
			}
		case c >= 'A' && c <= 'Z':
			return bad("it has upper case")
		case c >= 0x80:
			return bad("it has non-ASCII characters")
		default:
			return bad(fmt.Sprintf("character %q is not allowed", rune(c)))
		}
	}
	return nil
}
