package faults_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKillNodeMidSync kills a provider node while `jellyfish sync` runs in
// a child process, lets that sync end (it may succeed or fail), then runs
// the sync again, which must succeed, and `check --download`, which must
// find no difference: every file, read back from the surviving nodes,
// matches the source byte for byte.
func TestKillNodeMidSync(t *testing.T) {
	e := newEnv(t, 8, map[string]string{"segment_size": "1M"})
	src := filepath.Join(t.TempDir(), "src")
	var total int
	for i := range 40 {
		var size int
		switch {
		case i%10 == 0:
			size = 0
		case i%7 == 0:
			size = (2 << 20) + i*1000
		case i%3 == 0:
			size = 300<<10 + i
		default:
			size = 1000 * i
		}
		total += size
		writeFile(t, src, fmt.Sprintf("d%d/sub%d/f%02d.bin", i%4, i%3, i), randomBytes(t, size))
	}

	// Not one of the first three nodes: those are the config's bootstrap
	// peers.
	const victim = 5
	before := e.storedBytes()
	c := e.start("sync", src, remoteName+":tree")
	// Kill the node once a quarter of the data (twice over, k = m) is on
	// the providers.
	waitFor(t, 60*time.Second, "the sync to store a quarter of the data", func() bool {
		return e.storedBytes() >= before+int64(total)/2 || c.exited()
	})
	if c.exited() {
		t.Fatalf("the sync ended before the node was killed: %v\n%s", c.err, c.stderr.String())
	}
	if err := e.net.Net.Kill(victim); err != nil {
		t.Fatal(err)
	}
	firstErr := c.wait()
	t.Logf("first sync, node %d killed mid-way: %v (after %v)", victim, firstErr, time.Since(c.start).Round(time.Millisecond))
	if firstErr != nil {
		t.Logf("first sync's log:\n%s", c.stderr.String())
	}

	if _, stderr, err := e.run("sync", src, remoteName+":tree"); err != nil {
		t.Fatalf("second sync: %v\n%s", err, stderr)
	}
	out, stderr, err := e.run("check", src, remoteName+":tree", "--download")
	if err != nil {
		t.Fatalf("check --download: %v\n%s%s", err, out, stderr)
	}
	if !strings.Contains(stderr, "0 differences found") || !strings.Contains(stderr, "40 matching files") {
		t.Fatalf("check --download did not report 40 matching files and no difference:\n%s", stderr)
	}
	// check also compares BLAKE3 hashes, which both sides have.
	if _, stderr, err := e.run("check", src, remoteName+":tree"); err != nil {
		t.Fatalf("check: %v\n%s", err, stderr)
	}
}
