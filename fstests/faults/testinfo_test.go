package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rclone/rclone/fs/fserrors"
	"github.com/rclone/rclone/fs/operations"
)

// infoRefusedRE matches `test info`'s note of a name length it could not
// write, and the error.
var infoRefusedRE = regexp.MustCompile(`Couldn't write file with name length (\d+): (.*)`)

// TestRcloneTestInfo runs rclone's `test info --all` against the backend:
// names with every control character, invalid UTF-8 and a backslash
// look-alike at three positions, names up to 16,384 characters of 1 to 4
// bytes, unnormalised UTF-8, a streamed upload and all base32768
// characters. It must exit 0, find the limits Jellyfish documents (names
// of up to 1,024 bytes, paths of up to 4,096, anything but NUL and '/'),
// and refuse the longer names with an error that names the limit. The
// files it keeps must then list and read the same from another device:
// such names survive the log batches and checkpoints.
func TestRcloneTestInfo(t *testing.T) {
	e := newEnv(t, 8, map[string]string{"checkpoint_every": "2"})
	out, stderr, err := runWith(t, e.conf, "-v", "test", "info", "--all", "--keep-test-files", remoteName+":x")
	if err != nil {
		t.Fatalf("test info: %v\n%s\n%s", err, out, stderr)
	}
	t.Logf("test info says:\n%s", out)
	for _, want := range []string{
		"stringNeedsEscaping = []rune{\n\t'/', '\\x00'\n}",
		"maxFileLength = 1024 // for 1 byte unicode characters",
		"maxFileLength = 512 // for 2 byte unicode characters",
		"maxFileLength = 341 // for 3 byte unicode characters",
		"maxFileLength = 256 // for 4 byte unicode characters",
		"canWriteUnnormalized = true",
		"canReadUnnormalized   = true",
		"canStream = true",
		"base32768isOK = true",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("test info's report lacks %q", want)
		}
	}
	refused := infoRefusedRE.FindAllStringSubmatch(stderr, -1)
	if len(refused) == 0 {
		t.Error("test info never met a name too long")
	}
	for _, m := range refused {
		if !strings.Contains(m[2], "longer than the 1024 bytes Jellyfish stores") && !strings.Contains(m[2], "longer than the 4096 bytes Jellyfish stores") {
			t.Errorf("a name of %s characters was refused with %q, which does not name the limit", m[1], m[2])
		}
	}
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "ERROR") || strings.Contains(l, "CRITICAL") {
			t.Errorf("test info logged: %s", l)
		}
	}

	// The files it kept, from this machine and from another device.
	list := func(args ...string) []string {
		t.Helper()
		out, stderr, err := runWith(t, e.conf, append(args, "lsjson", "-R", "--files-only", "--hash", remoteName+":x")...)
		if err != nil {
			t.Fatalf("lsjson %v: %v\n%s", args, err, stderr)
		}
		var items []struct {
			Path   string
			Size   int64
			Hashes map[string]string
		}
		if err := json.Unmarshal(out, &items); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, it := range items {
			b, _ := json.Marshal([]any{it.Path, it.Size, it.Hashes["blake3"]})
			lines = append(lines, string(b))
		}
		slices.Sort(lines)
		return lines
	}
	here := list()
	there := list("--jellyfish-data-dir", t.TempDir())
	// 126 control and ASCII characters (not NUL or '/') and 4 others, at
	// three positions each; test info removes its base32768 files itself.
	if len(here) < 3*(126+4) {
		t.Fatalf("test info kept %d files, want at least its %d control character files", len(here), 3*(126+4))
	}
	if !slices.Equal(here, there) {
		t.Fatalf("another device lists %d files differently from the %d this machine lists", len(there), len(here))
	}
	if _, stderr, err := runWith(t, e.conf, "--jellyfish-data-dir", t.TempDir(), "check", "--download", remoteName+":x", remoteName+":x"); err != nil {
		t.Fatalf("reading the kept files back: %v\n%s", err, stderr)
	}
	t.Logf("%d files with such names list and read the same from another device", len(here))
}

// TestNameLimits writes, in this process, files whose names are at and
// over the limits (a name of 1,024 bytes, a path of 4,096; one byte more,
// and a NUL) among ordinary ones. Each one over is refused alone, before
// anything is stored, with an error that names the limit and that rclone
// does not retry; the others are stored, flushed and read back by another
// device.
func TestNameLimits(t *testing.T) {
	e := newEnv(t, 8, nil)
	ctx := context.Background()
	f := e.newFs(ctx)
	// deep returns a path of n bytes in elements of 200.
	deep := func(n int) string {
		b := []byte(strings.Repeat(strings.Repeat("d", 199)+"/", n/200+1)[:n])
		if b[n-1] == '/' {
			b[n-1] = 'e'
		}
		return string(b)
	}
	if len(deep(4096)) != 4096 || len(deep(4097)) != 4097 {
		t.Fatal("deep builds paths of the wrong length")
	}
	cases := []struct {
		name string
		err  string // "" when the write must succeed
	}{
		{"ok-1.txt", ""},
		{strings.Repeat("n", 1024), ""},
		{strings.Repeat("n", 1025), "name of 1025 bytes is longer than the 1024 bytes Jellyfish stores"},
		{"ok-2.txt", ""},
		{deep(4096), ""},
		{deep(4097), "path of 4097 bytes is longer than the 4096 bytes Jellyfish stores"},
		{"nul\x00name", "holds a NUL byte"},
		{"ok-3.txt", ""},
	}
	want := map[string]bool{}
	for _, c := range cases {
		before := e.storedBytes()
		data := randomBytes(t, 20000) // larger than inline_max: packed
		_, err := operations.Rcat(ctx, f, c.name, io.NopCloser(bytes.NewReader(data)), time.Now(), nil)
		short := c.name
		if len(short) > 40 {
			short = short[:40] + "…"
		}
		switch {
		case c.err == "" && err != nil:
			t.Fatalf("%q (%d bytes): %v", short, len(c.name), err)
		case c.err == "":
			want[c.name] = true
		case err == nil:
			t.Fatalf("%q (%d bytes) was accepted", short, len(c.name))
		case !strings.Contains(err.Error(), c.err):
			t.Errorf("%q (%d bytes) was refused with %q, which does not say %q", short, len(c.name), err, c.err)
		case !fserrors.IsNoRetryError(err):
			t.Errorf("%q (%d bytes) was refused with an error rclone would retry: %v", short, len(c.name), err)
		case e.storedBytes() != before:
			t.Errorf("%q (%d bytes) was refused after %d bytes were stored", short, len(c.name), e.storedBytes()-before)
		default:
			t.Logf("%q (%d bytes): %v", short, len(c.name), err)
		}
		if c.err != "" {
			if err := f.Mkdir(ctx, c.name); err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("mkdir %q (%d bytes): %v, want an error saying %q", short, len(c.name), err, c.err)
			}
		}
	}
	if err := f.Features().Shutdown(ctx); err != nil {
		t.Fatalf("flush after the refused writes: %v", err)
	}
	out, stderr, err := runWith(t, e.conf, "--jellyfish-data-dir", t.TempDir(), "lsjson", "-R", "--files-only", remoteName+":")
	if err != nil {
		t.Fatalf("lsjson from another device: %v\n%s", err, stderr)
	}
	var items []struct{ Path string }
	if err := json.Unmarshal(out, &items); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, it := range items {
		got[it.Path] = true
	}
	if len(got) != len(want) {
		t.Errorf("another device lists %d files, want %d", len(got), len(want))
	}
	for name := range want {
		if !got[name] {
			t.Errorf("another device does not list the %d-byte path %.40q", len(name), name)
		}
	}
}
