package merge

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// topLevelKeys are the keys -accept may name without a service.
var topLevelKeys = []string{"name", "volumes", "networks", "secrets", "configs"}

var (
	serviceRE = regexp.MustCompile(`^(\*|[a-zA-Z0-9][a-zA-Z0-9._-]*)$`)
	fieldRE   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// ParseAccept splits a comma-separated -accept value into its entries and
// checks each: <service>.<field> (db.image, backend.environment), *.<field>
// for that field of every service, or a top-level key (name, volumes,
// networks, secrets, configs). Duplicates and empty entries are dropped.
func ParseAccept(s string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" || slices.Contains(out, e) {
			continue
		}
		if err := checkAccept(e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func checkAccept(e string) error {
	i := strings.LastIndex(e, ".")
	if i < 0 {
		if slices.Contains(topLevelKeys, e) {
			return nil
		}
		return fmt.Errorf("accept %q: want <service>.<field> (such as db.image), *.<field>, or one of %s", e, strings.Join(topLevelKeys, ", "))
	}
	svc, field := e[:i], e[i+1:]
	if !serviceRE.MatchString(svc) || !fieldRE.MatchString(field) {
		return fmt.Errorf("accept %q: want <service>.<field> (such as db.image) or *.<field>", e)
	}
	return nil
}

// covers reports whether the accept entry e covers d. A dropped service is
// covered only by an entry that names it: *.service does not drop services.
func covers(e string, d Difference) bool {
	switch {
	case d.Service == "":
		return e == d.Field
	case d.Dropped():
		return e == d.Key()
	}
	return e == d.Key() || e == "*."+d.Field
}

// applyAccept marks the differences that an entry of given or recorded
// covers, and returns the entries of given that cover none: an accepted
// change that is not there is a mistake worth stopping for (a typo, or a
// file other than the one meant). recorded entries (from the merge state)
// may cover nothing.
func applyAccept(diffs []Difference, given, recorded []string) (unused []string) {
	used := map[string]bool{}
	for i := range diffs {
		for _, e := range slices.Concat(given, recorded) {
			if covers(e, diffs[i]) {
				diffs[i].Accepted = true
				used[e] = true
			}
		}
	}
	for _, e := range given {
		if !used[e] {
			unused = append(unused, e)
		}
	}
	return unused
}
