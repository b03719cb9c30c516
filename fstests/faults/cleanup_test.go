package faults_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCleanupAcrossProcesses: one process writes, another deletes, and
// `cleanup` runs in later processes, as from cron. The contents the delete
// let go are remembered in the device slot, so a later cleanup frees them
// once cleanup_grace has passed; a pack is dropped after two cleanups that
// far apart found nothing in it referenced. A cleanup state that does not
// open is ignored with a message, never trusted.
func TestCleanupAcrossProcesses(t *testing.T) {
	e := newEnv(t, 8, nil)
	// Every process runs as the same device (children otherwise rotate
	// over several data dirs).
	dataDir := t.TempDir()
	run := func(args ...string) (string, error) {
		_, stderr, err := runWith(t, e.conf, append([]string{"--jellyfish-data-dir", dataDir}, args...)...)
		return stderr, err
	}
	mustRun := func(args ...string) {
		t.Helper()
		if stderr, err := run(args...); err != nil {
			t.Fatalf("jellyfish %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
	}
	src := t.TempDir()
	writeFile(t, src, "big.bin", randomBytes(t, 3<<20))
	for i := range 6 {
		writeFile(t, src, fmt.Sprintf("small/f%d.bin", i), randomBytes(t, 40<<10))
	}
	mustRun("copy", src, remoteName+":")
	written := e.storedBytes()
	mustRun("delete", remoteName+":")

	const grace = "2s"
	cleanup := func() string {
		stderr, err := run("-v", "--jellyfish-cleanup-grace", grace, "cleanup", remoteName+":")
		if err != nil {
			t.Fatalf("cleanup: %v\n%s", err, stderr)
		}
		return stderr
	}
	// The first cleanup looks at the pack; the deleted object may or may
	// not have waited long enough yet.
	cleanup()
	time.Sleep(2500 * time.Millisecond)
	stderr := cleanup()
	if !strings.Contains(stderr, "repacked 1 packs") {
		t.Errorf("the second cleanup did not drop the pack:\n%s", stderr)
	}
	// Only the (tiny) log and checkpoint objects are left.
	if left := e.storedBytes(); left > written/10 {
		t.Fatalf("%d of %d bytes still stored after the cleanups:\n%s", left, written, stderr)
	}

	// A state file that does not open is ignored, and cleanup still runs.
	state := filepath.Join(dataDir, "faults", "slot-0", "cleanup.state")
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no cleanup state in the slot: %v", err)
	}
	if err := os.WriteFile(state, []byte("JFcs\x01 not sealed by this account"), 0o600); err != nil {
		t.Fatal(err)
	}
	if stderr := cleanup(); !strings.Contains(stderr, "cleanup state ignored") {
		t.Fatalf("a corrupt cleanup state was not reported:\n%s", stderr)
	}
}
