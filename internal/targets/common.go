package targets

import (
	"github.com/magefile/mage/mg"
)

// fail turns err into a mage error with the given exit code and a hint for a
// person appended on its own line.
func fail(code int, err error, hint string) error {
	if hint == "" {
		return mg.Fatal(code, err.Error())
	}
	return mg.Fatalf(code, "%v\n  hint: %s", err, hint)
}
