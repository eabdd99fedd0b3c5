//go:build !linux

package sandbox

// processHolders cannot name listening processes without /proc: every port
// maps to the zero holder, "an unknown process".
func processHolders(ports []int) map[int]PortHolder {
	res := make(map[int]PortHolder, len(ports))
	for _, p := range ports {
		res[p] = PortHolder{}
	}
	return res
}
