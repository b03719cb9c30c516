package faults_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNetworkGoneMidSync stops every node of the network while a `jellyfish
// sync` of 40 files of 4 MiB runs (a cron backup whose network went away).
// The sync must exit non-zero within a minute, say that the network cannot
// be reached, and retry nothing; once the network is back, the next sync
// completes and every file, those stored before the loss included, reads
// back intact.
func TestNetworkGoneMidSync(t *testing.T) {
	e := newEnv(t, 8, map[string]string{"segment_size": "1M"})
	src := t.TempDir()
	want := map[string]string{}
	for i := range 40 {
		data := randomBytes(t, 4<<20+i)
		name := fmt.Sprintf("f%02d.bin", i)
		writeFile(t, src, name, data)
		want[name] = blake3Hex(data)
	}
	c := startWith(t, e.conf, "sync", src, remoteName+":backup", "-v")
	waitFor(t, 60*time.Second, "the sync under way", func() bool { return e.storedBytes() > 8<<20 || c.exited() })
	if c.exited() {
		t.Fatalf("the sync ended before the network went away: %v", c.err)
	}
	stopped := time.Now()
	live := e.net.Net.Live()
	for _, i := range live {
		if err := e.net.Net.Kill(i); err != nil {
			t.Fatal(err)
		}
	}
	err := c.wait()
	took := time.Since(stopped)
	stderr := c.stderr.String()
	t.Logf("the sync exited %v after the network went away (%s): %v", took.Round(time.Millisecond), stopped.Format("15:04:05.000"), err)
	if err == nil {
		t.Fatalf("the sync succeeded without a network\n%s", stderr)
	}
	if took > 60*time.Second {
		lines := strings.Split(stderr, "\n")
		t.Fatalf("the sync took %v to give up, want under a minute; its last lines:\n%s", took, strings.Join(lines[max(0, len(lines)-80):], "\n"))
	}
	if !strings.Contains(stderr, "the network cannot be reached") {
		t.Fatalf("the sync's errors do not say the network is gone:\n%s", stderr)
	}
	if strings.Contains(stderr, "low level retry") {
		t.Fatalf("the sync retried without a network:\n%s", stderr)
	}
	// The network comes back: the next sync completes, and every file,
	// those stored before the loss included, reads back intact.
	ctx := context.Background()
	for _, i := range live {
		if err := e.net.Net.Restart(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	e.useLiveBootstrap()
	if _, stderr, err := runWith(t, e.conf, "sync", src, remoteName+":backup"); err != nil {
		t.Fatalf("the sync once the network is back: %v\n%s", err, stderr)
	}
	out, stderr, err := runWith(t, e.conf, "hashsum", "blake3", "--download", remoteName+":backup")
	if err != nil {
		t.Fatalf("hashsum: %v\n%s", err, stderr)
	}
	sums := parseHashsum(t, out)
	if len(sums) != len(want) {
		t.Fatalf("%d files after the second sync, want %d", len(sums), len(want))
	}
	for name, h := range want {
		if sums[name] != h {
			t.Fatalf("%s reads back with hash %q, want %q", name, sums[name], h)
		}
	}
}
