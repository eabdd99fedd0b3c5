package text

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPlural(t *testing.T) {
	assert.Equal(t, "file", Plural(1, "file", "files"))
	assert.Equal(t, "files", Plural(0, "file", "files"))
	assert.Equal(t, "files", Plural(2, "file", "files"))
}

func TestListSome(t *testing.T) {
	assert.Equal(t, "a, b", ListSome([]string{"a", "b"}, 2))
	assert.Equal(t, "a and 2 more", ListSome([]string{"a", "b", "c"}, 1))
	assert.Equal(t, "", ListSome(nil, 3))
}
