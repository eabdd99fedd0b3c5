package driver

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// standinToolLinks are the names under which the stand-in image also offers
// its binary, so healthchecks written for the real images (curl, wget,
// pg_isready, grep and cat in pipes, and /bin/sh for ["CMD-SHELL", …]) run
// unchanged in a FROM-scratch image, and `docker exec … sh` finds a shell.
var standinToolLinks = []string{"usr/bin/curl", "usr/bin/wget", "usr/bin/pg_isready", "usr/bin/grep", "usr/bin/cat",
	"usr/bin/sh", "bin/sh", "bin/grep", "bin/cat", "app/.venv/bin/alembic"}

// StandinImageExists reports whether the image (e.g. "ktrdr-standin:dev") is
// present in the local Docker engine, using `docker image inspect`.
func StandinImageExists(ctx context.Context, r Runner, image string) (bool, error) {
	_, err := r.Run(ctx, Cmd{Name: "docker", Args: []string{"image", "inspect", "--format", "{{.Id}}", image}})
	if err == nil {
		return true, nil
	}
	var ee *ExitError
	if errors.As(err, &ee) && strings.Contains(strings.ToLower(ee.Stderr), "no such image") {
		return false, nil
	}
	return false, fmt.Errorf("check whether image %s exists: %w", image, err)
}

// BuildStandinImage builds the stand-in image without a registry or a
// Dockerfile: it compiles pkg (e.g. "./cmd/standin") in repoRoot as a
// static Linux binary (CGO_ENABLED=0, -trimpath, -ldflags=-s -w), packs it
// in memory as /standin with hardlinks (standinToolLinks: /usr/bin/curl,
// /usr/bin/wget, /usr/bin/pg_isready, grep, cat and sh in /usr/bin and /bin)
// and an empty /tmp (mode 1777), and pipes that tar to
// `docker import` with ENTRYPOINT ["/standin"] and LABEL sandbox.standin=1.
// The image the tag named before is removed when nothing uses it
// (RemoveReplacedStandin), so that rebuilds leave no <none> images behind.
// progress, when not nil, receives one line per step and the tools' output.
func BuildStandinImage(ctx context.Context, r Runner, repoRoot, pkg, image string, progress io.Writer) error {
	return BuildStandinImageFor(ctx, r, repoRoot, pkg, image, "", progress)
}

// BuildStandinImageFor is BuildStandinImage for CPU architecture goarch
// (GOARCH; "" is this machine's), for an engine on another kind of host.
func BuildStandinImageFor(ctx context.Context, r Runner, repoRoot, pkg, image, goarch string, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	tmp, err := os.MkdirTemp("", "standin-build-")
	if err != nil {
		return fmt.Errorf("build stand-in image %s: create temp folder: %w", image, err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "standin")

	if err := compileStandin(ctx, r, repoRoot, pkg, bin, goarch, progress); err != nil {
		return fmt.Errorf("build stand-in image %s: %w", image, err)
	}
	layer, err := standinLayer(bin)
	if err != nil {
		return fmt.Errorf("build stand-in image %s: pack %s: %w", image, bin, err)
	}

	before, err := ImageID(ctx, r, image)
	if err != nil {
		return fmt.Errorf("build stand-in image %s: %w", image, err)
	}

	fmt.Fprintf(progress, "importing %s (%d bytes)\n", image, len(layer))
	imp := Cmd{
		Name: "docker",
		Args: []string{"import",
			"--change", `ENTRYPOINT ["/standin"]`,
			"--change", "LABEL " + StandinLabel + "=1",
			"-", image},
		Stdin:  bytes.NewReader(layer),
		Stdout: progress,
		Stderr: progress,
	}
	if _, err := r.Run(ctx, imp); err != nil {
		return fmt.Errorf("build stand-in image %s: docker import of the %s binary: %w", image, pkg, err)
	}
	fmt.Fprintf(progress, "built %s\n", image)
	if err := RemoveReplacedStandin(ctx, r, image, before, progress); err != nil {
		// The new image stands: the old one is only left over.
		fmt.Fprintf(progress, "note: %v\n", err)
	}
	return nil
}

// compileStandin compiles pkg in repoRoot as the static Linux binary bin
// for goarch ("" is this machine's).
func compileStandin(ctx context.Context, r Runner, repoRoot, pkg, bin, goarch string, progress io.Writer) error {
	fmt.Fprintf(progress, "building %s in %s (static linux binary)\n", pkg, repoRoot)
	build := Cmd{
		Name:   "go",
		Args:   []string{"build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg},
		Dir:    repoRoot,
		Env:    append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+orString(goarch, runtime.GOARCH)),
		Stdout: progress,
		Stderr: progress,
	}
	if _, err := r.Run(ctx, build); err != nil {
		return fmt.Errorf("compile %s in %s: %w", pkg, repoRoot, err)
	}
	return nil
}

// StandinLabel marks the images this package builds (LABEL sandbox.standin=1).
const StandinLabel = "sandbox.standin"

// RemoveReplacedStandin removes the stand-in image old, which tag named
// before a build or a load gave the tag another image, when it is left
// over: the tag names another image now, no tag names old, it carries
// StandinLabel (this package built it), and no container, running or
// stopped, was made from it. It never forces: Docker itself refuses an image
// a container uses. Each image kept and why, or removed, is a line on
// progress; an error says which step failed.
func RemoveReplacedStandin(ctx context.Context, r Runner, tag, old string, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	if old == "" {
		return nil
	}
	now, err := ImageID(ctx, r, tag)
	if err != nil || now == old {
		return err // the tag still names it: nothing was replaced
	}
	out, err := r.Run(ctx, Cmd{Name: "docker", Args: []string{"image", "inspect", "--format", "{{json .}}", old}})
	if err != nil {
		var ee *ExitError
		if errors.As(err, &ee) && strings.Contains(strings.ToLower(ee.Stderr), "no such image") {
			return nil // already gone
		}
		return fmt.Errorf("look up image %s, which %s named before: %w", old, tag, err)
	}
	var img struct {
		RepoTags []string
		Config   struct{ Labels map[string]string }
	}
	if err := json.Unmarshal(out, &img); err != nil {
		return fmt.Errorf("read docker's description of image %s: %w", old, err)
	}
	switch {
	case len(img.RepoTags) > 0:
		fmt.Fprintf(progress, "kept image %s, which %s named before: %s names it\n", old, tag, strings.Join(img.RepoTags, ", "))
		return nil
	case img.Config.Labels[StandinLabel] != "1":
		fmt.Fprintf(progress, "kept image %s, which %s named before: it lacks the label %s=1, so this suite did not build it\n", old, tag, StandinLabel)
		return nil
	}
	out, err = r.Run(ctx, Cmd{Name: "docker", Args: []string{"ps", "-a", "-q", "--no-trunc", "--filter", "ancestor=" + old}})
	if err != nil {
		return fmt.Errorf("list the containers made from image %s, which %s named before: %w", old, tag, err)
	}
	if users := strings.Fields(string(out)); len(users) > 0 {
		which, use, them := "container", "uses", "it is"
		if len(users) > 1 {
			which, use, them = "containers", "use", "they are"
		}
		fmt.Fprintf(progress, "kept image %s, which %s named before: %s %s %s it (docker image rm %s removes it once %s gone)\n",
			old, tag, which, strings.Join(shortIDs(users), ", "), use, old, them)
		return nil
	}
	if _, err := r.Run(ctx, Cmd{Name: "docker", Args: []string{"image", "rm", old}}); err != nil {
		var ee *ExitError
		if errors.As(err, &ee) && strings.Contains(ee.Stderr, "conflict") {
			fmt.Fprintf(progress, "kept image %s, which %s named before: %s\n", old, tag, strings.TrimSpace(ee.Stderr))
			return nil
		}
		return fmt.Errorf("remove image %s, which %s named before: %w", old, tag, err)
	}
	fmt.Fprintf(progress, "removed image %s, which %s named before (no container used it)\n", old, tag)
	return nil
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ImageID returns the id of image on the runner's engine ("" when it lacks it).
func ImageID(ctx context.Context, r Runner, image string) (string, error) {
	out, err := r.Run(ctx, Cmd{Name: "docker", Args: []string{"image", "inspect", "--format", "{{.Id}}", image}})
	if err != nil {
		var ee *ExitError
		if errors.As(err, &ee) && strings.Contains(strings.ToLower(ee.Stderr), "no such image") {
			return "", nil
		}
		return "", fmt.Errorf("look up image %s: %w", image, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// standinLayer returns the image's root file system as a tar.
func standinLayer(bin string) ([]byte, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	mtime := time.Unix(0, 0).UTC()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeReg, Name: "standin", Mode: 0o755, Size: int64(len(data))},
		{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777},
		{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "usr/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "usr/bin/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "app/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "app/.venv/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "app/.venv/bin/", Mode: 0o755},
	}
	for _, l := range standinToolLinks {
		hdrs = append(hdrs, &tar.Header{Typeflag: tar.TypeLink, Name: l, Linkname: "standin", Mode: 0o755})
	}
	for _, h := range hdrs {
		h.ModTime, h.Format = mtime, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("write tar entry %s: %w", h.Name, err)
		}
		if h.Name == "standin" {
			if _, err := tw.Write(data); err != nil {
				return nil, fmt.Errorf("write tar entry %s: %w", h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
