//go:build !unix

package main

import "errors"

func lockFile(string) (func(), error) {
	return nil, errors.New("the end-to-end lock needs flock(2): run with -lock '' and no other user of the engine")
}
