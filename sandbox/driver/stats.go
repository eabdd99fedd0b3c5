package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// What running containers use, as the engine reports it: `docker stats
// --no-stream` for every running container of an engine in one call (it
// takes about a second: the engine samples each container twice to give a
// CPU figure), and `docker info` for the engine's total memory.

// ContainerStats is one running container's use.
type ContainerStats struct {
	ID          string  // the full container id (the key to join docker ps with)
	CPUPercent  float64 // 100 is one core
	MemoryBytes int64
}

// Usage is what a set of containers uses, summed.
type Usage struct {
	CPUPercent  float64 // 100 is one core; a stack may use more than 100
	MemoryBytes int64
	Containers  int // how many of them docker stats reported
}

// statsFormat makes docker stats print one JSON object per container with
// only the fields ParseStats reads.
const statsFormat = `{"ID":{{json .ID}},"CPUPerc":{{json .CPUPerc}},"MemUsage":{{json .MemUsage}}}`

// Stats returns what every running container of the engine uses, by full
// container id, from one `docker stats --no-stream` call.
func Stats(ctx context.Context, r Runner) (map[string]ContainerStats, error) {
	out, err := r.Run(ctx, Cmd{Name: "docker", Args: []string{"stats", "--no-stream", "--no-trunc", "--format", statsFormat}})
	if err != nil {
		return nil, fmt.Errorf("ask the engine what its containers use (docker stats): %w", err)
	}
	return ParseStats(out)
}

// StartStats runs Stats in the background. wait returns its answer (and may
// be called more than once); cancel stops the call without waiting for it.
func StartStats(ctx context.Context, r Runner) (wait func() (map[string]ContainerStats, error), cancel func()) {
	ctx, cancel = context.WithCancel(ctx)
	type answer struct {
		stats map[string]ContainerStats
		err   error
	}
	done := make(chan answer, 1)
	go func() {
		s, err := Stats(ctx, r)
		done <- answer{s, err}
	}()
	var got *answer
	return func() (map[string]ContainerStats, error) {
		if got == nil {
			a := <-done
			got = &a
			cancel()
		}
		return got.stats, got.err
	}, cancel
}

// ParseStats reads the output of Stats: one JSON object per line. A value
// docker could not read ("--", a container that stopped during the call)
// counts as nothing used.
func ParseStats(out []byte) (map[string]ContainerStats, error) {
	stats := map[string]ContainerStats{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var row struct{ ID, CPUPerc, MemUsage string }
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			return nil, fmt.Errorf("parse docker stats line %q: %w", firstLine(line), err)
		}
		if row.ID == "" {
			return nil, fmt.Errorf("parse docker stats line %q: no container id", firstLine(line))
		}
		cpu, err := ParsePercent(row.CPUPerc)
		if err != nil {
			return nil, fmt.Errorf("parse docker stats line %q: %w", firstLine(line), err)
		}
		used, _, _ := strings.Cut(row.MemUsage, "/") // "12.5MiB / 23.4GiB": use / limit
		mem, err := ParseSize(used)
		if errors.Is(err, errNoValue) {
			mem, err = 0, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse docker stats line %q: memory: %w", firstLine(line), err)
		}
		stats[row.ID] = ContainerStats{ID: row.ID, CPUPercent: cpu, MemoryBytes: mem}
	}
	return stats, nil
}

// Usage sums what the stack's running containers use; Containers counts
// those docker stats reported.
func (s *StackState) Usage(stats map[string]ContainerStats) Usage {
	var u Usage
	if s == nil {
		return u
	}
	for _, id := range s.RunningIDs {
		if c, ok := stats[id]; ok {
			u.CPUPercent += c.CPUPercent
			u.MemoryBytes += c.MemoryBytes
			u.Containers++
		}
	}
	return u
}

// Total sums what every container of stats uses.
func Total(stats map[string]ContainerStats) Usage {
	var u Usage
	for _, c := range stats {
		u.CPUPercent += c.CPUPercent
		u.MemoryBytes += c.MemoryBytes
		u.Containers++
	}
	return u
}

// errNoValue is docker's "--": a figure it could not read.
var errNoValue = errors.New("no value (--)")

// ParsePercent reads docker's percentages: "1.25%", "0.00%"; "--" (not
// known) is 0.
func ParsePercent(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "--" || s == "" {
		return 0, nil
	}
	num := strings.TrimSpace(strings.TrimSuffix(s, "%"))
	if !plainNumber(num) {
		return 0, fmt.Errorf("percentage %q is not a number", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, fmt.Errorf("percentage %q is not a number", s)
	}
	return v, nil
}

// sizeUnits are the units ParseSize knows, by their lower-case spelling:
// the binary ones (KiB, MiB …, and docker's one-letter k, m, g, t) are
// powers of 1024, the decimal ones (kB, MB, GB …) powers of 1000.
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tib": 1 << 40, "p": 1 << 50, "pib": 1 << 50,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15,
}

// ParseSize reads a size as docker prints it or a person writes it: a
// number of bytes ("2147483648") or a number with a unit, any case, a space
// allowed between: "12.5MiB", "512MB", "2GiB", "2g" (binary, as docker run
// -m), "1.2kB", "0B". "--" is errNoValue. Negative sizes, and sizes over
// 8 EiB, are errors.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "--" {
		return 0, errNoValue
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, kB, MB, GB, KiB, MiB, GiB …)", s, s[i:])
	}
	if !plainNumber(num) {
		return 0, fmt.Errorf("size %q is not a number with a unit", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	b := math.Round(v * mult)
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(b), nil
}

// plainNumber reports whether s is digits with at most one dot and at
// least one digit (no sign, exponent, hex, Inf or NaN).
func plainNumber(s string) bool {
	digits, dots := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// FormatSize renders bytes as docker does for memory: binary units, one
// decimal ("1.5GiB", "512MiB", "0B").
func FormatSize(n int64) string {
	if n < 0 {
		return "-" + FormatSize(-n)
	}
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	v, exp := float64(n), 0
	for v >= unit && exp < 5 {
		v /= unit
		exp++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	if strings.HasSuffix(s, ".0") {
		s = s[:len(s)-2]
	}
	return s + []string{"", "KiB", "MiB", "GiB", "TiB", "PiB"}[exp]
}

// EngineMemory is what `docker info` says of an engine's memory.
type EngineMemory struct {
	Total             int64 // the memory of the engine's host (or VM)
	ContainersRunning int
}

// infoFormat prints only what EngineInfo reads.
const infoFormat = `{{json .MemTotal}} {{json .ContainersRunning}}`

// EngineInfo asks the engine for its total memory and how many containers
// run, from one `docker info` call.
func EngineInfo(ctx context.Context, r Runner) (EngineMemory, error) {
	out, err := r.Run(ctx, Cmd{Name: "docker", Args: []string{"info", "--format", infoFormat}})
	if err != nil {
		return EngineMemory{}, fmt.Errorf("ask the engine for its memory (docker info): %w", err)
	}
	return ParseEngineInfo(out)
}

// ParseEngineInfo reads the output of EngineInfo: "25276071936 3".
func ParseEngineInfo(out []byte) (EngineMemory, error) {
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return EngineMemory{}, fmt.Errorf("docker info printed %q, not its total memory and running containers", firstLine(string(out)))
	}
	total, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || total <= 0 {
		return EngineMemory{}, fmt.Errorf("docker info printed %q as the total memory", f[0])
	}
	running, err := strconv.Atoi(f[1])
	if err != nil || running < 0 {
		return EngineMemory{}, fmt.Errorf("docker info printed %q as the running containers", f[1])
	}
	return EngineMemory{Total: total, ContainersRunning: running}, nil
}
