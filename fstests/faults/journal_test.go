package faults_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// copiedRE matches rclone's log line for a file it copied.
var copiedRE = regexp.MustCompile(`INFO  : (.+): Copied \(new\)`)

// copiedFiles returns the files a copy's log says were copied.
func copiedFiles(stderr string) []string {
	var out []string
	for _, m := range copiedRE.FindAllStringSubmatch(stderr, -1) {
		out = append(out, m[1])
	}
	return out
}

// journalSource writes a folder of tiny, packed and large files and
// returns it with each file's hash.
func journalSource(t *testing.T) (string, map[string]string) {
	src := t.TempDir()
	want := map[string]string{}
	for i := range 60 {
		var data []byte
		switch {
		case i%20 == 7:
			data = randomBytes(t, 2<<20+i) // an object of its own
		case i%2 == 0:
			data = randomBytes(t, 100+i) // inline-sized
		default:
			data = randomBytes(t, 30<<10+i) // packed
		}
		name := fmt.Sprintf("d%d/f%02d.bin", i%4, i)
		writeFile(t, src, name, data)
		want[name] = blake3Hex(data)
	}
	return src, want
}

// killAfterCopied starts a copy of src to dest and kills it with SIGKILL
// once its log shows at least n files copied, and before its first flush
// if it can. It returns the files the log said were copied.
func killAfterCopied(t *testing.T, c *child, n int) []string {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d files copied", n), func() bool {
		return len(copiedFiles(c.stderr.String())) >= n || c.exited()
	})
	if !c.kill() {
		t.Fatalf("the copy ended before the kill: %v\n%s", c.err, c.stderr.String())
	}
	return copiedFiles(c.stderr.String())
}

// checkFromOtherDevice reads dest back with a device that never ran on
// this slot directory and checks every file in copied.
func checkFromOtherDevice(t *testing.T, e *env, dest string, copied []string, want map[string]string) {
	t.Helper()
	out, stderr, err := runWith(t, e.conf, "--jellyfish-data-dir", t.TempDir(), "hashsum", "blake3", "--download", remoteName+":"+dest)
	if err != nil {
		t.Fatalf("hashsum from another device: %v\n%s", err, stderr)
	}
	sums := parseHashsum(t, out)
	for _, name := range copied {
		if sums[name] != want[name] {
			t.Errorf("%s was reported copied before the kill, but another device reads hash %q (want %q)", name, sums[name], want[name])
		}
	}
}

// TestKilledBeforeFlush kills a copy right after rclone logged files as
// copied, before their change was stored on the network. The next command
// of the account on the machine must store them, and another device must
// then read every one of them.
func TestKilledBeforeFlush(t *testing.T) {
	e := newEnv(t, 8, nil)
	src, want := journalSource(t)
	c := startWith(t, e.conf, "-v", "copy", src, remoteName+":same-slot")
	copied := killAfterCopied(t, c, 8)
	flushed := strings.Contains(c.stderr.String(), "jellyfish: flushed")
	t.Logf("killed after %d files were reported copied (a flush had run: %v)", len(copied), flushed)
	// The next command on this machine, in the same slot.
	if _, stderr, err := runWith(t, e.conf, "-v", "lsf", remoteName+":"); err != nil {
		t.Fatalf("next command: %v\n%s", err, stderr)
	} else if !flushed && !strings.Contains(stderr, "left unstored") {
		t.Logf("the next command did not report recovered changes:\n%s", stderr)
	}
	checkFromOtherDevice(t, e, "same-slot", copied, want)
}

// TestOrphanedJournalAdopted kills a copy that ran in the second slot of a
// machine (the first was held by another process), then runs the next
// command when only the first slot is free: it must store what the
// killed process left in the second slot's journal.
func TestOrphanedJournalAdopted(t *testing.T) {
	e := newEnv(t, 8, nil)
	src, want := journalSource(t)
	userDir := filepath.Join(configValue(t, e.conf, "data_dir"), e.acct.User)
	slot0 := filepath.Join(userDir, "slot-0")
	if err := os.MkdirAll(slot0, 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(slot0, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	c := startWith(t, e.conf, "-v", "copy", src, remoteName+":other-slot")
	copied := killAfterCopied(t, c, 8)
	if _, err := os.Stat(filepath.Join(userDir, "slot-1", "journal")); err != nil {
		t.Fatalf("the killed copy did not run in slot 1: %v", err)
	}
	lock.Close() // slot 0 is free again: the next command takes it
	_, stderr, err := runWith(t, e.conf, "-v", "lsf", remoteName+":")
	if err != nil {
		t.Fatalf("next command: %v\n%s", err, stderr)
	}
	t.Logf("killed after %d files were reported copied", len(copied))
	checkFromOtherDevice(t, e, "other-slot", copied, want)
	if n, _ := dirSize(filepath.Join(userDir, "slot-1", "journal")); n != 0 {
		t.Errorf("slot 1's journal still holds %d bytes after it was adopted", n)
	}
}

// dirSize returns the bytes of the files in dir.
func dirSize(dir string) (int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && !fi.IsDir() {
			n += fi.Size()
		}
	}
	return n, nil
}

// TestFinalFlushFails copies small files while every provider refuses
// shard puts: the copy itself succeeds (packed and inline files are kept
// in the journal until a flush), but its final flush cannot store them.
// The process must exit non-zero and say which changes are not stored
// yet; once the providers accept puts again, the next command on the
// machine stores them and another device reads every file.
func TestFinalFlushFails(t *testing.T) {
	e, tp := newTappedEnv(t, 8, nil)
	src, want := flushSource(t)
	tp.refuse.Store(true)
	_, stderr, err := runWith(t, e.conf, "-v", "copy", src, remoteName+":refused")
	tp.refuse.Store(false)
	if err == nil {
		t.Fatalf("the copy exited 0 although no flush could store its changes:\n%s", stderr)
	}
	copied := copiedFiles(stderr)
	if len(copied) != len(want) {
		t.Fatalf("%d files reported copied, want %d:\n%s", len(copied), len(want), stderr)
	}
	if !strings.Contains(stderr, "15 "+notStoredMsg) {
		t.Fatalf("the copy did not say that its 15 changes (14 files and their folder) are not stored:\n%s", stderr)
	}
	t.Logf("the copy ended with %v:\n%s", err, lastLines(stderr, 3))
	if _, stderr, err := runWith(t, e.conf, "-v", "lsf", remoteName+":"); err != nil {
		t.Fatalf("next command: %v\n%s", err, stderr)
	} else if !recoveredRE.MatchString(stderr) {
		t.Errorf("the next command did not report storing the changes left behind:\n%s", stderr)
	}
	checkFromOtherDevice(t, e, "refused", copied, want)
}
