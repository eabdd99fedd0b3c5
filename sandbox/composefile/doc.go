// Package composefile reads a checkout's compose files as docker compose
// does, treating them as the untrusted input they are: files from a branch,
// someone else's or an agent's.
//
// The rule, for every file any loader path opens: the compose files given,
// the files they include (include: path, its env_file and the included
// project's default .env), the files their services extend (extends.file,
// any depth), and the env_file and label_file of every service, job and
// pre_start hook, in every profile. Each must be inside the checkout (after
// following symlinks), a regular file (no FIFO, device or folder) and at
// most MaxFile bytes; an include from a URL (git, OCI) is refused. Check
// walks that graph itself, with compose-go's own interpolation and the
// same variables, before compose-go or the compose CLI opens anything, so
// a refused file is never read: nothing outside the checkout is read,
// nothing hangs on a FIFO and nothing reads /dev/zero forever.
//
// Load is the one way the suite loads a checkout's compose model: Check,
// then compose-go with the same options everywhere (paths resolved, no
// service environment or label files merged in), so the ports plan, create,
// up, destroy and merge all see the same model.
package composefile
