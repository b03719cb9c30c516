package localnet_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
)

// TestStartAndClose runs a network the way the commands do, without the
// testing harness: Start, Close, and a failed Start leaving nothing.
func TestStartAndClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	nw, err := localnet.Start(ctx, dir, 2, localnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if nw.Dir() != dir || nw.Len() != 2 || len(nw.Live()) != 2 {
		t.Fatalf("network: dir %s len %d live %v", nw.Dir(), nw.Len(), nw.Live())
	}
	if err := nw.Close(); err != nil {
		t.Fatal(err)
	}
	if len(nw.Live()) != 0 {
		t.Fatalf("live after Close: %v", nw.Live())
	}
	// A cancelled context fails Start and leaves nothing behind.
	cancelled, cancel2 := context.WithCancel(ctx)
	cancel2()
	if _, err := localnet.Start(cancelled, t.TempDir(), 2, localnet.Options{}); err == nil {
		t.Fatal("Start with a cancelled context succeeded")
	}
}

// TestTCPOnlyFanout starts nodes listening on TCP alone, each bootstrapped
// to two random nodes already up: every node listens on TCP only, again
// after a restart, and every routing table fills.
func TestTCPOnlyFanout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nw, err := localnet.Start(ctx, t.TempDir(), 8, localnet.Options{TCPOnly: true, BootstrapFanout: 2, MinRoutingTable: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	if err := nw.Restart(ctx, 5); err != nil {
		t.Fatal(err)
	}
	for _, i := range nw.Live() {
		for _, a := range nw.Node(i).Host().Network().ListenAddresses() {
			if _, err := a.ValueForProtocol(ma.P_UDP); err == nil {
				t.Fatalf("node %d listens on %s", i, a)
			}
		}
	}
	if err := nw.WaitRoutingTables(ctx, 3); err != nil {
		t.Fatal(err)
	}
}

// TestWaitRoutingTablesSaysWhichAreShort: a wait that runs out names the
// nodes whose tables are short and how many peers each holds.
func TestWaitRoutingTablesSaysWhichAreShort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nw, err := localnet.Start(ctx, t.TempDir(), 3, localnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer wcancel()
	err = nw.WaitRoutingTables(wctx, 3) // three nodes: two peers each at most
	if err == nil {
		t.Fatal("a wait for more peers than the network has succeeded")
	}
	for i := range 3 {
		if want := fmt.Sprintf("node %d: 2 peers", i); !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}
