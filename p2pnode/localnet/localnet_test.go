package localnet_test

import (
	"context"
	"testing"
	"time"

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
