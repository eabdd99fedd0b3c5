package driver

import (
	"archive/tar"
	"bytes"
	"context"
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
// pg_isready, and /bin/sh for ["CMD-SHELL", …]) run unchanged in a
// FROM-scratch image.
var standinToolLinks = []string{"usr/bin/curl", "usr/bin/wget", "usr/bin/pg_isready", "usr/bin/sh", "bin/sh"}

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
// in memory as /standin with hardlinks /usr/bin/curl, /usr/bin/wget,
// /usr/bin/pg_isready, /usr/bin/sh and /bin/sh and an empty /tmp (mode
// 1777), and pipes that tar to
// `docker import` with ENTRYPOINT ["/standin"] and LABEL sandbox.standin=1.
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
		return fmt.Errorf("build stand-in image %s: compile %s in %s: %w", image, pkg, repoRoot, err)
	}
	layer, err := standinLayer(bin)
	if err != nil {
		return fmt.Errorf("build stand-in image %s: pack %s: %w", image, bin, err)
	}

	fmt.Fprintf(progress, "importing %s (%d bytes)\n", image, len(layer))
	imp := Cmd{
		Name: "docker",
		Args: []string{"import",
			"--change", `ENTRYPOINT ["/standin"]`,
			"--change", "LABEL sandbox.standin=1",
			"-", image},
		Stdin:  bytes.NewReader(layer),
		Stdout: progress,
		Stderr: progress,
	}
	if _, err := r.Run(ctx, imp); err != nil {
		return fmt.Errorf("build stand-in image %s: docker import of the %s binary: %w", image, pkg, err)
	}
	fmt.Fprintf(progress, "built %s\n", image)
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
