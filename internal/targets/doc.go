// Package targets holds the mage targets of the sandbox suite (the Sandbox,
// Stack and Merge namespaces), imported by magefiles/ with //mage:import.
// A target is thin: it parses its flags, calls the library (sandbox/ and
// sandbox/merge) and prints the result; the one place where library errors
// become exit codes and hints for people is the table in exitcodes.go.
//
// Mage turns every exported function and every method of an exported
// mg.Namespace type of this package into a target: keep everything else
// unexported.
package targets
