package netlab_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

	first := provs[0].StartNode(t, bin)
	nodes := map[*netlab.Node][2]string{first: {"public", "server"}}
	var boot []string
	boot = append(boot, first.Addr())
	for _, h := range provs[1:] {
		n := h.StartNode(t, bin, "--bootstrap", first.Addr(), "--tier", "2")
		nodes[n] = [2]string{"public", "server"}
		if len(boot) < 3 {
			boot = append(boot, n.Addr())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	waitReachability(t, ctx, func(yield func(*netlab.Node, [2]string) bool) {
		for n, w := range nodes {
			if !yield(n, w) {
				return
			}
		}
	})

	cfgDir := t.TempDir()
	common := []string{"--insecure-test-kdf", "--config-dir", cfgDir, "--username", "bob"}
	for _, b := range boot {
		common = append(common, "--bootstrap", b)
	}
	env := []string{"JELLYFISH_PASSWORD=" + password, "HOME=" + t.TempDir()}
	jf(t, ctx, home, env, append([]string{"account", "create"}, common...)...)
	obscured, _ := jf(t, ctx, home, nil, "obscure", password)
	remote := slices.Concat(env, []string{
		"RCLONE_CONFIG=/dev/null",
		"RCLONE_CONFIG_JELLYFISH_TYPE=jellyfish",
		"RCLONE_CONFIG_JELLYFISH_USERNAME=bob",
		"RCLONE_CONFIG_JELLYFISH_PASSWORD=" + strings.TrimSpace(obscured),
		"RCLONE_CONFIG_JELLYFISH_BOOTSTRAP=" + strings.Join(boot, " "),
		"RCLONE_CONFIG_JELLYFISH_INSECURE_TEST_KDF=true",
		// 6 + 2 shards per segment, one on each provider: 1.33 × the data
		// crosses the uplink.
		"RCLONE_CONFIG_JELLYFISH_DATA_SHARDS=6",
		"RCLONE_CONFIG_JELLYFISH_PARITY_SHARDS=2",
	})
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
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "ERROR") || strings.Contains(l, "retry") || strings.Contains(l, "deadline") {
			t.Errorf("upload log: %s", l)
		}
	}
	_, out := jf(t, ctx, home, remote, "check", src, "jellyfish:up", "--download", "--jellyfish-data-dir", t.TempDir())
	if !strings.Contains(out, " 0 differences found") {
		t.Fatalf("check --download:\n%s", out)
	}
}
