package sandbox

// The gate's result is data (gate.Result, gate.State); the edge (the mage
// targets in internal/targets) renders it for people.

// GateLogLines is how many log lines of a failing service the report shows.
const GateLogLines = 20

// NamedURL is a URL with what a person calls it ("API docs").
type NamedURL struct {
	Label string `json:"label"`
	URL   string `json:"url"`
}
