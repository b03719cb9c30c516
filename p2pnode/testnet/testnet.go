package testnet

import (
	"context"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
)

// Network and Options are localnet's, so tests can name them from here.
type (
	Network = localnet.Network
	Options = localnet.Options
)

// New starts an n-node network for a test, in t.TempDir(), and closes it
// when the test ends. It fails the test if the network does not come up
// within a minute plus one second per node.
func New(t testing.TB, n int, opts Options) *Network {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute+time.Duration(n)*time.Second)
	defer cancel()
	nw, err := localnet.Start(ctx, t.TempDir(), n, opts)
	if err != nil {
		t.Fatalf("testnet: %v", err)
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("testnet: close: %v", err)
		}
	})
	return nw
}

// WaitFor is localnet.WaitFor: it calls cond every 20 ms until it returns
// true (nil) or ctx ends (ctx's error).
func WaitFor(ctx context.Context, cond func() bool) error { return localnet.WaitFor(ctx, cond) }
