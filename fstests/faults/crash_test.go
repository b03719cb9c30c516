package faults_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCrashMidUpload overwrites a file with `jellyfish copyto` in a child
// process and kills the child with SIGKILL at several points of the
// upload. After every kill a new process must read the old contents byte
// for byte, or the new ones if the kill came after the change was flushed;
// the account's other files must be unchanged.
func TestCrashMidUpload(t *testing.T) {
	const segment = 1 << 20
	e := newEnv(t, 8, map[string]string{"segment_size": "1M"})
	src := t.TempDir()
	oldData := randomBytes(t, 3*segment+12345)
	newData := randomBytes(t, 24*segment+777)
	oldPath := writeFile(t, src, "old.bin", oldData)
	newPath := writeFile(t, src, "new.bin", newData)
	others := map[string][]byte{
		"others/a.txt":        []byte("a small file\n"),
		"others/empty":        nil,
		"others/deep/b.bin":   randomBytes(t, 300<<10),
		"others/deep/c.bin":   randomBytes(t, segment+1),
		"dir/sibling-of-file": []byte("next to the file being overwritten\n"),
	}
	othersDir := filepath.Join(t.TempDir(), "others")
	for name, data := range others {
		writeFile(t, othersDir, name, data)
	}
	e.mustRun("copy", othersDir, remoteName+":")
	e.mustRun("copyto", oldPath, remoteName+":dir/file")

	want := map[string]string{}
	for name, data := range others {
		want[name] = blake3Hex(data)
	}
	oldHash, newHash := blake3Hex(oldData), blake3Hex(newData)

	// check reads the file and the account's hashes in new processes.
	// mayBeNew says whether the new contents are acceptable.
	check := func(what string, mayBeNew bool) (isNew bool) {
		t.Helper()
		out, stderr, err := e.run("-vv", "cat", remoteName+":dir/file")
		if err != nil {
			t.Fatalf("%s: cat after the kill: %v\n%s", what, err, stderr)
		}
		switch {
		case bytes.Equal(out, oldData):
		case bytes.Equal(out, newData) && mayBeNew:
			isNew = true
		case bytes.Equal(out, newData):
			t.Fatalf("%s: the new contents are visible although the upload never finished", what)
		default:
			t.Fatalf("%s: read %d bytes that are neither the old (%d) nor the new (%d) contents", what, len(out), len(oldData), len(newData))
		}
		sums := parseHashsum(t, e.mustRun("hashsum", "blake3", remoteName+":"))
		fileWant := oldHash
		if isNew {
			fileWant = newHash
		}
		if sums["dir/file"] != fileWant {
			t.Fatalf("%s: listed hash of dir/file %q does not match the contents read (%q)", what, sums["dir/file"], fileWant)
		}
		for name, h := range want {
			if sums[name] != h {
				t.Fatalf("%s: %s has hash %q, want %q", what, name, sums[name], h)
			}
		}
		if len(sums) != len(want)+1 {
			t.Fatalf("%s: account lists %d files, want %d: %v", what, len(sums), len(want)+1, sums)
		}
		return isNew
	}
	check("before any kill", false)

	// The new contents occupy at least twice their size on the providers
	// (k = m); the fractions below are of that.
	full := int64(2 * len(newData))
	for _, frac := range []float64{0, 0.25, 0.5, 0.9} {
		what := fmt.Sprintf("kill at %.0f%% of the upload", frac*100)
		before := e.storedBytes()
		c := e.start("copyto", newPath, remoteName+":dir/file")
		if frac > 0 {
			target := before + int64(frac*float64(full))
			waitFor(t, 60*time.Second, what, func() bool { return e.storedBytes() >= target || c.exited() })
		}
		if !c.kill() {
			t.Fatalf("%s: the upload ended before the kill: %v\n%s", what, c.err, c.stderr.String())
		}
		t.Logf("%s: killed after %v, %d of %d bytes stored", what, time.Since(c.start).Round(time.Millisecond), e.storedBytes()-before, full)
		check(what, false)
	}

	// Every shard stored: the change may or may not have been flushed.
	{
		what := "kill once every shard is stored"
		before := e.storedBytes()
		c := e.start("-vv", "copyto", newPath, remoteName+":dir/file")
		waitFor(t, 60*time.Second, what, func() bool { return e.storedBytes() >= before+full || c.exited() })
		c.kill()
		isNew := check(what, true)
		t.Logf("%s: read the %s contents", what, map[bool]string{false: "old", true: "new"}[isNew])
		if isNew {
			// The flush won the race with the kill. Put the old contents
			// back, so that the next copy has something to change
			// (otherwise it finds the file up to date and never flushes).
			e.mustRun("copyto", oldPath, remoteName+":dir/file")
			check("the old contents put back", false)
		}
	}

	// Killed once the flush is logged: the new contents must be there.
	{
		what := "kill after the flush"
		c := e.start("-vv", "copyto", newPath, remoteName+":dir/file")
		waitFor(t, 60*time.Second, what, func() bool {
			return strings.Contains(c.stderr.String(), "jellyfish: flushed") || c.exited()
		})
		c.kill()
		if !strings.Contains(c.stderr.String(), "jellyfish: flushed") {
			t.Fatalf("%s: the upload ended without a flush: %v\n%s", what, c.err, c.stderr.String())
		}
		if !check(what, true) {
			t.Fatalf("%s: the old contents are still visible after the flush", what)
		}
	}
}

// parseHashsum parses `hashsum` output into path → hash.
func parseHashsum(t *testing.T, out []byte) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		h, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("hashsum line %q", line)
		}
		sums[name] = h
	}
	return sums
}

// TestCrashMidPack kills a `copy` of many small files (packed together)
// while their packs are being stored, at two points. Whatever the next
// process lists must read back byte for byte: a file is never listed
// before its pack is stored. A second copy then completes the folder.
func TestCrashMidPack(t *testing.T) {
	e := newEnv(t, 8, map[string]string{"pack_size": "1M"})
	src := t.TempDir()
	want := map[string]string{}
	total := 0
	for i := range 80 {
		data := randomBytes(t, 30<<10+i*97)
		name := fmt.Sprintf("p%d/f%02d.bin", i%5, i)
		writeFile(t, src, name, data)
		want[name] = blake3Hex(data)
		total += len(data)
	}
	for run, frac := range []float64{0.25, 0.75} {
		dest := fmt.Sprintf("small-%d", run)
		before := e.storedBytes()
		c := e.start("copy", src, remoteName+":"+dest)
		// k = m: the packs occupy about twice the files' size once stored.
		target := before + int64(frac*float64(2*total))
		waitFor(t, 60*time.Second, fmt.Sprintf("%.0f%% of the packs stored", frac*100), func() bool { return e.storedBytes() >= target || c.exited() })
		if !c.kill() {
			t.Fatalf("the copy ended before the kill: %v\n%s", c.err, c.stderr.String())
		}
		// The root, not dest: the kill may come before anything is flushed.
		sums := map[string]string{}
		for name, h := range parseHashsum(t, e.mustRun("hashsum", "blake3", "--download", remoteName+":")) {
			if rest, ok := strings.CutPrefix(name, dest+"/"); ok {
				sums[rest] = h
			}
		}
		for name, h := range sums {
			if want[name] != h {
				t.Fatalf("after the kill at %.0f%% %s reads back with hash %q, want %q", frac*100, name, h, want[name])
			}
		}
		t.Logf("after the kill at %.0f%% %d of %d files were listed, each intact", frac*100, len(sums), len(want))
		e.mustRun("copy", src, remoteName+":"+dest)
		sums = parseHashsum(t, e.mustRun("hashsum", "blake3", "--download", remoteName+":"+dest))
		if len(sums) != len(want) {
			t.Fatalf("after the second copy %d files, want %d", len(sums), len(want))
		}
		for name, h := range want {
			if sums[name] != h {
				t.Fatalf("after the second copy %s has hash %q, want %q", name, sums[name], h)
			}
		}
	}
}
