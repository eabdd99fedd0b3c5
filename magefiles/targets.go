//go:build mage

package main

// The targets live in internal/targets, an ordinary package that go vet and
// go test see; mage lists and runs them as if they were defined here.

import (
	//mage:import
	_ "github.com/ktrdr/sandboxkit/internal/targets"
)
