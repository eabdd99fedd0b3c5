// Package magerun runs this project's mage targets safely when many
// processes start them at once in one checkout, and fast when nothing
// changed.
//
// Mage itself (v1.17) regenerates magefiles/mage_output_file.go and
// recompiles on every call whenever a Go build cache exists, so two calls
// at once in one checkout race on that generated file (magefile/mage#247),
// and every call pays for a compile. magerun keeps mage's flags, target
// semantics and generated program, and changes only where and when the
// program is built:
//
//   - The key of a build is a SHA-256 over the magefiles, every file of the
//     packages of this module that they import (transitively, found by
//     parsing imports, test files excluded), go.mod, go.sum, the mage
//     version, the Go toolchain and the build-relevant environment (GOOS,
//     GOARCH, GOFLAGS, CGO_ENABLED, GOEXPERIMENT, the go command, mage's
//     -multiline). A changed magefile or library file is a new key, so it
//     takes effect on the next call.
//   - The program of a key is built once into the user's cache folder
//     ($XDG_CACHE_HOME or ~/.cache, then ktrdr-sandbox/mage/), under a file
//     lock held only by builders of that key. Mage generates its main file
//     in a private staging copy of the magefiles there, which a go.work
//     joins to this module, so nothing is ever written into the work tree
//     and `git status` stays clean. The binary is renamed into place: a
//     reader sees the whole program or none, also after a kill -9.
//   - A call whose program exists takes no lock and runs no go command: it
//     hashes the inputs and executes the cached program in place of itself
//     (exec on Unix), so signals, standard streams and the exit code are the
//     target's own.
//
// The command line is checked before the program runs: at build time the
// targets' signatures (names, arguments, flags and their types, as mage
// parses them) are kept beside the program (<key>.targets.json), and a call
// that names no target, misses an argument, or gives an unknown flag or a
// value of the wrong type exits ExitUsage (64) with a message naming the
// target, the flag and the type expected. Mage's program would exit 2,
// which targets use for their own failures. Mage's own flags that do not
// parse exit 64 too.
//
// Mage's own commands (-version, -init, -clean, -install, -autocomplete)
// are passed to mage unchanged; -compile builds through the same staging
// copy. Cached programs unused for two weeks are removed after a build.
//
// When the workspace build fails (a module that builds only from its
// vendor folder, say), the magefiles are built in the module itself, mage's
// generated main file given to go through -overlay: still nothing is
// written into the work tree.
//
// What the key does not see: files a package embeds from its sub-folders,
// code reached through a replace directive to a local folder, a vendor
// folder, and a go.work of your own. After changing those, -f rebuilds. A
// file saved while a build runs is caught: the key is computed again after
// the build, and a program whose sources changed meanwhile runs once
// without being cached.
package magerun
