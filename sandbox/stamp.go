package sandbox

import "time"

// FormatTime writes a time the way every record of the suite holds one
// (env files, the registry, merge state): UTC, RFC 3339, whole seconds.
func FormatTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

// ParseTime reads a time FormatTime wrote.
func ParseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }
