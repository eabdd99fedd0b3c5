package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/gofrs/flock"
)

// LockWait is how long a command waits for another one's lock (the
// registry's, the subnet pool's).
var LockWait = time.Minute

// lockFile takes the exclusive lock of the file at path (what, e.g.
// "registry /x/instances.json", names it in errors; holder says who may
// hold it), waiting at most LockWait. A lock file that is a symlink (or a
// folder, a pipe…) was not made by this tool: opening it would create or
// touch its target, so it is refused.
func lockFile(ctx context.Context, path, what, holder string) (unlock func(), err error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		reason := describe(path, fi)
		if fi.IsDir() {
			reason = "it is a folder"
		}
		return nil, &UnsafePathError{Op: "lock", Path: path, Reason: reason}
	}
	flag := os.O_CREATE | os.O_RDONLY
	switch runtime.GOOS {
	case "aix", "solaris", "illumos": // as flock.New: these cannot write-lock a read-only file
		flag = os.O_CREATE | os.O_RDWR
	}
	fl := flock.New(path, flock.SetFlag(flag|oNoFollow))
	wctx, cancel := context.WithTimeout(ctx, LockWait)
	defer cancel()
	ok, err := fl.TryLockContext(wctx, 10*time.Millisecond)
	if err != nil || !ok {
		if ctx.Err() == nil && wctx.Err() != nil {
			return nil, fmt.Errorf("lock %s: %s has held %s for over %s (a hung docker?); try again when it ends", what, holder, path, LockWait)
		}
		return nil, fmt.Errorf("lock %s: %w", what, errors.Join(err, ctx.Err()))
	}
	return func() { fl.Unlock() }, nil
}
