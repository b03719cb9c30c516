package netlab_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/fstests/netlab"
)

// TestBenchWANSlowHolder is bench-wan's slow-holder case: eight providers
// at 1 Gbit/s, a home host at 50 Mbit/s up uploading 6 + 2 shards per
// segment (one on each provider), WAN_HOLDER_SIZE twice: first with every
// provider at full speed, then with one provider's links shaped to
// 256 kbit/s. It prints
//
//	wan slow-holder: seconds=T baseline=B ratio=R short=N
//
// where R = B/T (1: the slow holder held nothing back) and N counts the
// segments stored short of 8 shards (the slow holder's puts cancelled as
// stragglers once their segments had 7).
func TestBenchWANSlowHolder(t *testing.T) {
	if os.Getenv("JELLYFISH_BENCH_WAN") == "" {
		t.Skip("part of make bench-wan")
	}
	size := envSize(t, "WAN_HOLDER_SIZE", 64<<20)
	lab := netlab.New(t)
	var provs []*netlab.Host
	for i := range 8 {
		h := lab.Public(fmt.Sprintf("dc%d", i+1))
		provs = append(provs, h)
	}
	home := lab.Home("home", netlab.PortRestricted)
	home.Shape(netlab.Link{Up: 50_000_000, Down: 250_000_000})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nodes, boot := startProviders(t, ctx, provs)
	remote := newRemote(t, ctx, home, "holder", boot, 6, 2)
	timeout := transferTime(float64(size)*8/6, 50_000_000)

	base := storeFile(t, home, remote, nodes, randomFile(t, size), "jellyfish:base", timeout)
	// One holder slows to 256 kbit/s each way: its puts cannot keep the
	// holder's own minimum rate.
	provs[len(provs)-1].Shape(netlab.Link{Up: 256_000, Down: 256_000})
	slow := storeFile(t, home, remote, nodes, randomFile(t, size), "jellyfish:slow", timeout)
	fmt.Printf("wan slow-holder: seconds=%.1f baseline=%.1f ratio=%.2f short=%d\n",
		slow.took.Seconds(), base.took.Seconds(), base.took.Seconds()/slow.took.Seconds(), slow.short)
	t.Logf("baseline: %d segments short; with the slow holder: %d short, it stored %d bytes", base.short, slow.short, slow.perNode[nodes[len(nodes)-1]])
	for _, l := range append(base.problems, slow.problems...) {
		t.Errorf("upload log: %s", l)
	}
}
