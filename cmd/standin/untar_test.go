package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var untarTime = time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)

// te is one entry of a test tar stream: a regular file unless typ says
// otherwise (dir, symlink, ...), mode 0o644 (files) or 0o755 (dirs) unless set.
type te struct {
	name, body, link string
	typ              byte
	mode             int64
}

func dirE(name string) te        { return te{name: name, typ: tar.TypeDir} }
func fileE(name, body string) te { return te{name: name, body: body} }
func linkE(name, target string) te {
	return te{name: name, link: target, typ: tar.TypeSymlink}
}

// tarStream builds a complete tar stream (with its end-of-archive marker).
func tarStream(t testing.TB, entries ...te) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Linkname: e.link, ModTime: untarTime}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		require.NoError(t, tw.WriteHeader(hdr))
		if hdr.Size > 0 {
			_, err := io.WriteString(tw, e.body)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	return b.Bytes()
}

// gnuSparseStream is one old-style GNU sparse file of 8 GiB, all hole, in
// 1.5 KiB of stream: archive/tar would expand it into zeros.
func gnuSparseStream(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "huge", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: untarTime, Format: tar.FormatGNU}))
	require.NoError(t, tw.Close())
	blk := b.Bytes()
	copy(blk[483:495], "77777777777\x00") // realsize
	retype(blk, tar.TypeGNUSparse)
	return blk
}

// paxSparseStream is the same 8 GiB hole as a PAX 1.0 sparse file, whose
// records archive/tar's writer will not write: the PAX header is an
// ordinary entry given the 'x' type afterwards.
func paxSparseStream(t *testing.T) []byte {
	t.Helper()
	var recs strings.Builder
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", "huge"}, {"GNU.sparse.realsize", "8589934592"}} {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		fmt.Fprintf(&recs, "%d%s", len(rec)+2, rec) // every record here is 10 to 99 bytes long
	}
	smap := "1\n0\n8589934592\n" // one fragment: no data, then the hole to the end
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "PaxHeaders/huge", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(recs.Len()), Format: tar.FormatUSTAR}))
	_, err := io.WriteString(tw, recs.String())
	require.NoError(t, err)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "GNUSparseFile.0/huge", Typeflag: tar.TypeReg, Mode: 0o644, Size: 512, ModTime: untarTime, Format: tar.FormatUSTAR}))
	_, err = io.WriteString(tw, smap+strings.Repeat("\x00", 512-len(smap)))
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	out := b.Bytes()
	retype(out, tar.TypeXHeader)
	return out
}

// retype gives the header block at the start of blk another type.
func retype(blk []byte, typ byte) {
	blk[156] = typ
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk[:512] {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// snapshot describes every entry under dir (dir itself excluded) whose
// top-level name is not skip: type, permission bits, content or link target.
func snapshot(t testing.TB, dir, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if skip != "" && (rel == skip || strings.HasPrefix(rel, skip+string(filepath.Separator))) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link " + l
		case fi.IsDir():
			out[rel+"/"] = "dir " + fi.Mode().String()
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fi.Mode().String() + " " + string(b)
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

// untarFixture is a parent folder holding the target folder "dst" and,
// beside it, "outside/secret" that no stream may reach.
func untarFixture(t testing.TB) (parent, dst string) {
	t.Helper()
	parent = t.TempDir()
	dst = filepath.Join(parent, "dst")
	require.NoError(t, os.Mkdir(dst, 0o755))
	require.NoError(t, os.Mkdir(filepath.Join(parent, "outside"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(parent, "outside", "secret"), []byte("keep"), 0o600))
	return parent, dst
}

func TestUntar(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T, parent, dst string)
		stream  func(t *testing.T) []byte
		clean   bool
		wantErr string
		want    map[string]string
		stats   untarStats
	}{
		{
			name: "normal tree",
			stream: func(t *testing.T) []byte {
				return tarStream(t, dirE("a/"), fileE("a/one.txt", "1"), fileE("top.txt", "top"), te{name: "run.sh", body: "#!", mode: 0o755})
			},
			want: map[string]string{
				"a/": "dir drwxr-xr-x", "a/one.txt": "-rw-r--r-- 1", "top.txt": "-rw-r--r-- top", "run.sh": "-rwxr-xr-x #!",
			},
			stats: untarStats{files: 3, dirs: 1, bytes: 6},
		},
		{
			name: "nested dirs, with and without their own entries",
			stream: func(t *testing.T) []byte {
				return tarStream(t, dirE("./"), dirE("x/y/"), te{name: "x/y/z/", typ: tar.TypeDir, mode: 0o700}, fileE("x/y/z/deep", "d"), fileE("p/q/implicit", "i"))
			},
			want: map[string]string{
				"x/": "dir drwxr-xr-x", "x/y/": "dir drwxr-xr-x", "x/y/z/": "dir drwx------", "x/y/z/deep": "-rw-r--r-- d",
				"p/": "dir drwxr-xr-x", "p/q/": "dir drwxr-xr-x", "p/q/implicit": "-rw-r--r-- i",
			},
			stats: untarStats{files: 2, dirs: 3, bytes: 2},
		},
		{
			name: "symlinks keep their targets, even ones that leave the folder",
			stream: func(t *testing.T) []byte {
				return tarStream(t, fileE("f", "x"), linkE("rel", "f"), linkE("up", "../outside/secret"), linkE("abs", "/etc/passwd"))
			},
			want: map[string]string{
				"f": "-rw-r--r-- x", "rel": "link f", "up": "link ../outside/secret", "abs": "link /etc/passwd",
			},
			stats: untarStats{files: 1, links: 3, bytes: 1},
		},
		{
			name: "../escape is refused",
			stream: func(t *testing.T) []byte {
				return tarStream(t, fileE("ok", "1"), fileE("../outside/evil", "x"), fileE("after", "2"))
			},
			wantErr: `refused "../outside/evil": path leaves the folder`,
			want:    map[string]string{"ok": "-rw-r--r-- 1"},
			stats:   untarStats{files: 1, bytes: 1},
		},
		{
			name:    "a name that leaves through the middle is refused",
			stream:  func(t *testing.T) []byte { return tarStream(t, fileE("a/../../outside/evil", "x")) },
			wantErr: "path leaves the folder",
			want:    map[string]string{},
		},
		{
			name:    "absolute path is refused",
			stream:  func(t *testing.T) []byte { return tarStream(t, fileE("/tmp/evil", "x")) },
			wantErr: `refused "/tmp/evil": absolute path`,
			want:    map[string]string{},
		},
		{
			name: "a file under a symlinked dir from the stream is refused",
			stream: func(t *testing.T) []byte {
				return tarStream(t, dirE("sub/"), linkE("link", "sub"), fileE("link/f", "x"))
			},
			wantErr: `refused "link/f": link is a symbolic link`,
			want:    map[string]string{"sub/": "dir drwxr-xr-x", "link": "link sub"},
			stats:   untarStats{dirs: 1, links: 1},
		},
		{
			name: "a file under an existing symlink to outside is refused",
			setup: func(t *testing.T, parent, dst string) {
				require.NoError(t, os.Symlink(filepath.Join(parent, "outside"), filepath.Join(dst, "out")))
			},
			stream:  func(t *testing.T) []byte { return tarStream(t, fileE("out/secret", "overwritten")) },
			wantErr: "out is a symbolic link",
			want:    nil, // checked below: outside/secret unchanged
		},
		{
			name: "a dir entry replaces an existing symlink, not what it points to",
			setup: func(t *testing.T, parent, dst string) {
				require.NoError(t, os.Symlink("../outside", filepath.Join(dst, "d")))
			},
			stream: func(t *testing.T) []byte { return tarStream(t, dirE("d/"), fileE("d/secret", "mine")) },
			want:   map[string]string{"d/": "dir drwxr-xr-x", "d/secret": "-rw-r--r-- mine"},
			stats:  untarStats{files: 1, dirs: 1, bytes: 4},
		},
		{
			name: "setuid, setgid and sticky bits are dropped",
			stream: func(t *testing.T) []byte {
				return tarStream(t, te{name: "suid", body: "s", mode: 0o4755}, te{name: "sgid/", typ: tar.TypeDir, mode: 0o3775})
			},
			want:  map[string]string{"suid": "-rwxr-xr-x s", "sgid/": "dir drwxrwxr-x"},
			stats: untarStats{files: 1, dirs: 1, bytes: 1},
		},
		{
			name: "existing files and dirs are replaced",
			setup: func(t *testing.T, parent, dst string) {
				require.NoError(t, os.WriteFile(filepath.Join(dst, "f"), []byte("old"), 0o600))
				require.NoError(t, os.WriteFile(filepath.Join(dst, "was-file"), []byte("old"), 0o600))
				require.NoError(t, os.MkdirAll(filepath.Join(dst, "was-dir", "sub"), 0o755))
				require.NoError(t, os.Symlink("../outside/secret", filepath.Join(dst, "was-link")))
			},
			stream: func(t *testing.T) []byte {
				return tarStream(t, fileE("f", "new"), dirE("was-file/"), fileE("was-dir", "now a file"), fileE("was-link", "now a file"))
			},
			want: map[string]string{
				"f": "-rw-r--r-- new", "was-file/": "dir drwxr-xr-x", "was-dir": "-rw-r--r-- now a file", "was-link": "-rw-r--r-- now a file",
			},
			stats: untarStats{files: 3, dirs: 1, bytes: 23},
		},
		{
			name: "--clean removes what the stream does not hold, never DIR",
			setup: func(t *testing.T, parent, dst string) {
				require.NoError(t, os.MkdirAll(filepath.Join(dst, "keep", "gone-dir", "x"), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(dst, "keep", "gone"), []byte("x"), 0o644))
				require.NoError(t, os.WriteFile(filepath.Join(dst, "gone-top"), []byte("x"), 0o644))
				require.NoError(t, os.Symlink("../outside", filepath.Join(dst, "gone-link")))
			},
			stream: func(t *testing.T) []byte { return tarStream(t, fileE("keep/kept", "k"), fileE("top", "t")) },
			clean:  true,
			want:   map[string]string{"keep/": "dir drwxr-xr-x", "keep/kept": "-rw-r--r-- k", "top": "-rw-r--r-- t"},
			stats:  untarStats{files: 2, bytes: 2, removed: 4},
		},
		{
			name: "--clean with an empty stream empties DIR",
			setup: func(t *testing.T, parent, dst string) {
				require.NoError(t, os.WriteFile(filepath.Join(dst, "old"), nil, 0o644))
			},
			stream: func(t *testing.T) []byte { return tarStream(t) },
			clean:  true,
			want:   map[string]string{},
			stats:  untarStats{removed: 1},
		},
		{
			name:   "empty stream",
			stream: func(t *testing.T) []byte { return tarStream(t) },
			want:   map[string]string{},
		},
		{
			name: "no stream at all is an error and --clean removes nothing",
			setup: func(t *testing.T, parent, dst string) {
				require.NoError(t, os.WriteFile(filepath.Join(dst, "old"), nil, 0o644))
			},
			stream:  func(t *testing.T) []byte { return nil },
			clean:   true,
			wantErr: "end-of-archive marker",
			want:    map[string]string{"old": "-rw-r--r-- "},
		},
		{
			name: "a stream cut between two entries is an error and --clean removes nothing",
			setup: func(t *testing.T, parent, dst string) {
				require.NoError(t, os.WriteFile(filepath.Join(dst, "old"), nil, 0o644))
			},
			stream: func(t *testing.T) []byte {
				b := tarStream(t, te{name: "zeros", body: string(make([]byte, 1024))})
				return b[:512+1024] // header and content, no marker
			},
			clean:   true,
			wantErr: "end-of-archive marker",
			want:    map[string]string{"old": "-rw-r--r-- ", "zeros": "-rw-r--r-- " + string(make([]byte, 1024))},
			stats:   untarStats{files: 1, bytes: 1024},
		},
		{
			name:    "a stream cut inside a file is an error",
			stream:  func(t *testing.T) []byte { return tarStream(t, fileE("f", strings.Repeat("x", 2000)))[:1000] },
			wantErr: "unexpected EOF",
			want:    map[string]string{},
			stats:   untarStats{files: 1, bytes: 488},
		},
		{
			name: "hard links are refused",
			stream: func(t *testing.T) []byte {
				return tarStream(t, fileE("f", "x"), te{name: "h", link: "f", typ: tar.TypeLink})
			},
			wantErr: "hard links are not extracted",
			want:    map[string]string{"f": "-rw-r--r-- x"},
			stats:   untarStats{files: 1, bytes: 1},
		},
		{
			name:    "sparse files are refused before their holes are expanded",
			stream:  gnuSparseStream,
			wantErr: `refused "huge": sparse files are not extracted`,
			want:    map[string]string{},
		},
		{
			name:    "sparse files in PAX records are refused",
			stream:  paxSparseStream,
			wantErr: "sparse files are not extracted",
			want:    map[string]string{},
		},
		{
			name: "devices and fifos are skipped",
			stream: func(t *testing.T) []byte {
				return tarStream(t, te{name: "fifo", typ: tar.TypeFifo}, te{name: "null", typ: tar.TypeChar}, fileE("f", "x"))
			},
			want:  map[string]string{"f": "-rw-r--r-- x"},
			stats: untarStats{files: 1, bytes: 1},
		},
		{
			name: "a read-only dir is filled before it becomes read-only",
			stream: func(t *testing.T) []byte {
				return tarStream(t, te{name: "ro/", typ: tar.TypeDir, mode: 0o555}, te{name: "ro/f", body: "x", mode: 0o444})
			},
			want:  map[string]string{"ro/": "dir dr-xr-xr-x", "ro/f": "-r--r--r-- x"},
			stats: untarStats{files: 1, dirs: 1, bytes: 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent, dst := untarFixture(t)
			if tc.setup != nil {
				tc.setup(t, parent, dst)
			}
			before := snapshot(t, parent, "dst")
			var warn bytes.Buffer
			st, err := untar(dst, bytes.NewReader(tc.stream(t)), tc.clean, &warn)
			if tc.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
			}
			if tc.want != nil {
				assert.Equal(t, tc.want, snapshot(t, dst, ""))
			}
			assert.Equal(t, tc.stats, st)
			assert.Equal(t, before, snapshot(t, parent, "dst"), "nothing outside DIR changes")
			fi, err := os.Lstat(dst)
			require.NoError(t, err)
			assert.True(t, fi.IsDir(), "DIR itself stays")
			assert.NotContains(t, strings.Join(keys(snapshot(t, dst, "")), " "), ".untar-", "no temporary file left")
		})
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestUntarKeepsModTimes(t *testing.T) {
	_, dst := untarFixture(t)
	_, err := untar(dst, bytes.NewReader(tarStream(t, dirE("d/"), fileE("d/f", "x"), fileE("g", "y"))), false, io.Discard)
	require.NoError(t, err)
	for _, p := range []string{"d", "d/f", "g"} {
		fi, err := os.Stat(filepath.Join(dst, p))
		require.NoError(t, err)
		assert.True(t, fi.ModTime().Equal(untarTime), "%s: %v", p, fi.ModTime())
	}
}

func TestUntarDevicesWarn(t *testing.T) {
	_, dst := untarFixture(t)
	var warn bytes.Buffer
	_, err := untar(dst, bytes.NewReader(tarStream(t, te{name: "fifo", typ: tar.TypeFifo}, te{name: "blk", typ: tar.TypeBlock})), false, &warn)
	require.NoError(t, err)
	assert.Contains(t, warn.String(), `untar: skipping "fifo"`)
	assert.Contains(t, warn.String(), `untar: skipping "blk"`)
}

func TestFSUntarCommand(t *testing.T) {
	_, dst := untarFixture(t)
	require.NoError(t, os.WriteFile(filepath.Join(dst, "stale"), nil, 0o644))
	var out, errb bytes.Buffer
	code := fsMain([]string{"untar", "--clean", dst}, bytes.NewReader(tarStream(t, dirE("d/"), fileE("d/f", "abc"), linkE("l", "d/f"))), &out, &errb)
	assert.Equal(t, 0, code, errb.String())
	assert.Empty(t, out.String())
	assert.Equal(t, "untar: 2 files, 1 dirs, 3 bytes into "+dst+", 1 removed\n", errb.String())
	assert.NoFileExists(t, filepath.Join(dst, "stale"))

	errb.Reset()
	code = fsMain([]string{"untar", dst}, bytes.NewReader(tarStream(t, fileE("ok", "1"), fileE("../x", "2"))), &out, &errb)
	assert.Equal(t, 1, code)
	assert.Contains(t, errb.String(), "untar: 1 files, 0 dirs, 1 bytes into "+dst+"\n")
	assert.Contains(t, errb.String(), `standin fs: untar `+dst+`: refused "../x": path leaves the folder`)

	for _, args := range [][]string{{"untar"}, {"untar", "--clean"}, {"untar", "a", "b"}, {"untar", "--force", "a"}, {"tar"}} {
		errb.Reset()
		assert.Equal(t, 1, fsMain(args, strings.NewReader(""), &out, &errb), "%q", args)
		assert.Contains(t, errb.String(), "usage", "%q", args)
	}

	errb.Reset()
	code = fsMain([]string{"untar", filepath.Join(dst, "missing")}, bytes.NewReader(tarStream(t)), &out, &errb)
	assert.Equal(t, 1, code)
	assert.Contains(t, errb.String(), "missing")
}

func TestTarUntarRoundTrip(t *testing.T) {
	src := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(src, "a", "b", "c"), 0o750))
	require.NoError(t, os.Mkdir(filepath.Join(src, "empty"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(src, "a", "b", "c", "deep.txt"), []byte("deep"), 0o640))
	require.NoError(t, os.WriteFile(filepath.Join(src, "top.bin"), bytes.Repeat([]byte{0, 1, 2}, 5000), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\n"), 0o755))
	require.NoError(t, os.Symlink("a/b", filepath.Join(src, "link")))
	require.NoError(t, os.Symlink("/nowhere", filepath.Join(src, "dangling")))
	past := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, os.Chtimes(filepath.Join(src, "top.bin"), past, past))
	require.NoError(t, os.Chtimes(filepath.Join(src, "a", "b"), past, past))

	var stream, warn bytes.Buffer
	var out bytes.Buffer
	require.Equal(t, 0, fsMain([]string{"tar", src}, nil, &stream, &warn), warn.String())
	_, dst := untarFixture(t)
	st, err := untar(dst, &stream, false, &out)
	require.NoError(t, err)
	assert.Equal(t, untarStats{files: 3, dirs: 4, links: 2, bytes: 15000 + 4 + 10}, st)
	assert.Equal(t, snapshot(t, src, ""), snapshot(t, dst, ""))
	for _, p := range []string{"top.bin", "a/b"} {
		fi, err := os.Stat(filepath.Join(dst, p))
		require.NoError(t, err)
		assert.True(t, fi.ModTime().Equal(past), "%s: %v", p, fi.ModTime())
	}

	// A second sync with --clean mirrors deletions.
	require.NoError(t, os.RemoveAll(filepath.Join(src, "a", "b", "c")))
	require.NoError(t, os.Remove(filepath.Join(src, "link")))
	stream.Reset()
	require.NoError(t, tarDir(src, &stream, io.Discard))
	_, err = untar(dst, &stream, true, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, snapshot(t, src, ""), snapshot(t, dst, ""))
}

func FuzzUntar(f *testing.F) {
	f.Add([]byte{})
	f.Add(tarStream(f))
	f.Add(tarStream(f, dirE("a/"), fileE("a/f", "x"), linkE("l", "a")))
	f.Add(tarStream(f, linkE("l", "../outside"), fileE("l/secret", "x")))
	f.Add(tarStream(f, linkE("l", "."), dirE("l/"), fileE("l/../../outside/secret", "x")))
	f.Add(tarStream(f, fileE("../outside/secret", "x")))
	f.Add(tarStream(f, fileE("/tmp/x", "x")))
	f.Add(tarStream(f, te{name: "h", link: "../outside/secret", typ: tar.TypeLink}))
	f.Add(tarStream(f, te{name: "./", typ: tar.TypeDir, mode: 0o7777}, fileE("./f", "x")))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent, dst := untarFixture(t)
		// A link inside DIR to outside, as a previous sync may have left.
		require.NoError(t, os.Symlink("../outside", filepath.Join(dst, "out")))
		before := snapshot(t, parent, "dst")
		clean := len(data) > 0 && data[len(data)-1]&1 == 1
		_, _ = untar(dst, bytes.NewReader(data), clean, io.Discard)
		assert.Equal(t, before, snapshot(t, parent, "dst"), "nothing outside DIR changes")
		fi, err := os.Lstat(dst)
		require.NoError(t, err)
		assert.True(t, fi.IsDir(), "DIR itself stays")
	})
}
