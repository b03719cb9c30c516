package netlab_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/fstests/netlab"
)

// TestSlowUplink uploads 32 MiB from a home host whose uplink carries
// 5 Mbit/s (and, where the kernel has netem, a 40 ms round trip and 0.5 %
// loss each way) to eight providers on the internet. The upload must complete: shard transfers share the
// uplink, and each must still meet the holders' minimum rate.
func TestSlowUplink(t *testing.T) {
	if testing.Short() {
		t.Skip("a 32 MiB upload over a 5 Mbit/s link")
	}
	lab := netlab.New(t)
	var provs []*netlab.Host
	for i := range 8 {
		provs = append(provs, lab.Public(fmt.Sprintf("dc%d", i+1)))
	}
	home := lab.Home("home", netlab.PortRestricted)
	const up = 5_000_000
	home.Shape(netlab.Link{Up: up, Down: 50_000_000, RTT: 40 * time.Millisecond, Loss: 0.5})

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	_, boot := startProviders(t, ctx, provs, "--tier", "2")
	// 6 + 2 shards per segment, one on each provider: 1.33 × the data
	// crosses the uplink.
	remote := newRemote(t, ctx, home, "bob", boot, 6, 2)
	src := t.TempDir()
	data := make([]byte, 32<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(src, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, stderr := jf(t, ctx, home, remote, "copy", src, "jellyfish:up", "--jellyfish-data-dir", t.TempDir(), "-v", "--stats", "0")
	took := time.Since(start)
	sent := float64(len(data)) * 8 / 6
	t.Logf("32 MiB stored in %v: %.1f Mbit/s of shards over a %d Mbit/s uplink", took.Round(100*time.Millisecond), sent*8/took.Seconds()/1e6, up/1_000_000)
	for _, l := range logProblems(stderr) {
		t.Errorf("upload log: %s", l)
	}
	_, out := jf(t, ctx, home, remote, "check", src, "jellyfish:up", "--download", "--jellyfish-data-dir", t.TempDir())
	if !strings.Contains(out, " 0 differences found") {
		t.Fatalf("check --download:\n%s", out)
	}
}
