// Package driver runs the programs the sandbox suite drives: git, docker
// and Docker Compose, always as a program with arguments, never a shell
// string, through the Runner seam that unit tests replace with a fake.
//
// Compose drives the Compose v2 CLI for one stack at a time: every call
// passes -p <project>, --env-file <absolute path> and absolute -f paths,
// with the app's variables scrubbed from its environment so that a shell's
// exports cannot change which stack is touched. StackStates asks docker
// once for every sandbox's containers. ContextRunner sends docker and
// compose calls to another engine through a Docker context. The stand-in
// image is built from this module's own Go program, with no registry.
//
// It knows nothing of slots, the registry or the stack model: package
// sandbox decides what to run, this package runs it.
package driver
