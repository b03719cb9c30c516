package netlab_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/fstests/netlab"
)

// TestPortMapping: a node behind a home router that offers UPnP and
// NAT-PMP maps its port itself (no --announce, no forward set by hand),
// is found public, serves the DHT and is given shards; a node behind the
// same kind of router without them stays a client.
func TestPortMapping(t *testing.T) {
	if testing.Short() {
		t.Skip("a six-host network")
	}
	lab := netlab.New(t)
	var pubs []*netlab.Host
	for i := range 4 {
		pubs = append(pubs, lab.Public(fmt.Sprintf("pub%d", i+1)))
	}
	mapped := lab.Home("upnp", netlab.PortRestricted)
	mapped.UPnP()
	plain := lab.Home("plain", netlab.PortRestricted)

	first := pubs[0].StartNode(t, bin)
	want := map[*netlab.Node][2]string{first: {"public", "server"}}
	boot := []string{first.Addr()}
	for _, h := range pubs[1:] {
		n := h.StartNode(t, bin, "--bootstrap", first.Addr())
		want[n] = [2]string{"public", "server"}
		boot = append(boot, n.Addr())
	}
	mappedNode := mapped.StartNode(t, bin, "--bootstrap", first.Addr())
	want[mappedNode] = [2]string{"public", "server"}
	want[plain.StartNode(t, bin, "--bootstrap", first.Addr())] = [2]string{"private", "client"}
	// The mapping comes a few seconds after start, and AutoNAT tests an
	// address it did not have at its first probe on its next round, 90 s
	// later.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	waitReachability(t, ctx, func(yield func(*netlab.Node, [2]string) bool) {
		for n, w := range want {
			if !yield(n, w) {
				return
			}
		}
	})
	s, err := mappedNode.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	routerAddr := fmt.Sprintf("/ip4/%s/", mapped.PublicIP)
	if !slices.ContainsFunc(s.Network.AnnouncedAddrs, func(a string) bool { return strings.HasPrefix(a, routerAddr) }) {
		t.Fatalf("the mapped node announces %v, none at its router's address %s", s.Network.AnnouncedAddrs, mapped.PublicIP)
	}

	// A client behind the plain router stores a file: the mapped node,
	// reachable through its own mapping, takes its share.
	cfgDir := t.TempDir()
	common := []string{"--insecure-test-kdf", "--config-dir", cfgDir, "--username", "carol"}
	for _, b := range boot {
		common = append(common, "--bootstrap", b)
	}
	env := []string{"JELLYFISH_PASSWORD=" + password, "HOME=" + t.TempDir()}
	jf(t, ctx, plain, env, append([]string{"account", "create"}, common...)...)
	obscured, _ := jf(t, ctx, plain, nil, "obscure", password)
	remote := slices.Concat(env, []string{
		"RCLONE_CONFIG=/dev/null",
		"RCLONE_CONFIG_JELLYFISH_TYPE=jellyfish",
		"RCLONE_CONFIG_JELLYFISH_USERNAME=carol",
		"RCLONE_CONFIG_JELLYFISH_PASSWORD=" + strings.TrimSpace(obscured),
		"RCLONE_CONFIG_JELLYFISH_BOOTSTRAP=" + strings.Join(boot, " "),
		"RCLONE_CONFIG_JELLYFISH_INSECURE_TEST_KDF=true",
		// Five providers, one shard of each segment on each.
		"RCLONE_CONFIG_JELLYFISH_DATA_SHARDS=3",
		"RCLONE_CONFIG_JELLYFISH_PARITY_SHARDS=2",
	})
	src := t.TempDir()
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	if err := os.WriteFile(filepath.Join(src, "f.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	jf(t, ctx, plain, remote, "copy", src, "jellyfish:m", "--jellyfish-data-dir", t.TempDir())
	if s, err = mappedNode.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Storage.Shards == 0 {
		t.Fatalf("the mapped node holds no shard")
	}
	_, out := jf(t, ctx, plain, remote, "check", src, "jellyfish:m", "--download", "--jellyfish-data-dir", t.TempDir())
	if !strings.Contains(out, " 0 differences found") {
		t.Fatalf("check --download:\n%s", out)
	}
	t.Logf("the mapped node holds %d shards; announced %v", s.Storage.Shards, s.Network.AnnouncedAddrs)
}
