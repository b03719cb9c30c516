package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

func TestNetworkOf(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"/ip4/203.0.113.77/tcp/4001", "ip4:203.0.113.0/24"},
		{"/ip4/203.0.113.1/udp/4001/quic-v1", "ip4:203.0.113.0/24"},
		{"/ip4/127.5.0.1/tcp/1", "ip4:127.5.0.0/24"},
		{"/ip6/2001:db8:aaaa:bbbb::1/tcp/4001", "ip6:2001:db8:aaaa::/48"},
		{"/ip6/::ffff:198.51.100.9/tcp/4001", "ip4:198.51.100.0/24"},
		{"/ip4/192.0.2.10/tcp/4001/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf/p2p-circuit", "ip4:192.0.2.0/24"},
		{"/dns4/example.com/tcp/4001", ""},
	} {
		if got := client.NetworkOf(ma.StringCast(c.addr)); got != c.want {
			t.Errorf("NetworkOf(%s) = %q, want %q", c.addr, got, c.want)
		}
	}
}

// TestProvidersOnDistinctLoopbackNetworks: eight providers, four listening
// in 127.1.0.0/24 and four each in a /24 of its own (Linux routes all of
// 127/8 to the loopback interface). The client groups them by the network
// it reaches them at. Nodes 4 and 5 name an account that lists them:
// their owner is verified. Node 6 names it too but is not listed, and
// node 7 names it in a record claiming tier 40 (2^40 GiB): neither gets
// an owner, and node 7's capacity counts as tier 20's.
func TestProvidersOnDistinctLoopbackNetworks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ip := func(i int) string {
		if i < 4 {
			return fmt.Sprintf("127.1.0.%d", i+1)
		}
		return fmt.Sprintf("127.%d.0.1", i)
	}
	nw, fleet, err := provider.StartTestnet(ctx, t.TempDir(), 8, provider.TestnetConfig{Base: localnet.Options{
		Configure: func(i int, cfg *node.Config) {
			cfg.ListenAddrs = []ma.Multiaddr{ma.StringCast("/ip4/" + ip(i) + "/tcp/0")}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	for i := range 8 {
		for _, a := range nw.Node(i).Addrs() {
			if got, want := client.NetworkOf(a), client.NetworkOf(ma.StringCast("/ip4/"+ip(i))); got != want {
				t.Fatalf("node %d listens at %s, not in %s", i, a, want)
			}
		}
	}
	c, err := client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: nw.Node(0).Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := account.NewManager(c.Records(), account.InsecureTestKDF())
	acct, err := m.Create(ctx, "olga", "orbit lantern gravel mosaic")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Update(ctx, acct, account.Edits(account.AddNode(nw.ID(4)), account.AddNode(nw.ID(5)))); err != nil {
		t.Fatal(err)
	}
	for i := 4; i < 8; i++ {
		info := fleet.Provider(i).Info()
		info.Owner = []byte(acct.ID())
		if i == 7 {
			info.Tier = record.MaxTier
		}
		if _, err := nw.Node(i).PublishNodeRecord(ctx, info); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}

	byID := map[peer.ID]client.ProviderInfo{}
	if err := localnet.WaitFor(ctx, func() bool {
		provs, err := c.Providers(ctx)
		if err != nil {
			return false
		}
		clear(byID)
		for _, p := range provs {
			byID[p.ID] = p
		}
		return len(byID) == 8 && byID[nw.ID(7)].Info.Tier == record.MaxTier && byID[nw.ID(4)].Owner != ""
	}); err != nil {
		t.Fatalf("providers: %d of 8, or their new records not seen: %v", len(byID), err)
	}
	for i := range 8 {
		p := byID[nw.ID(i)]
		want := client.NetworkOf(ma.StringCast("/ip4/" + ip(i)))
		if p.Network != want {
			t.Errorf("node %d: network %q, want %q", i, p.Network, want)
		}
		wantOwner := peer.ID("")
		if i == 4 || i == 5 {
			wantOwner = acct.ID()
		}
		if p.Owner != wantOwner {
			t.Errorf("node %d: owner %q, want %q (claims %q)", i, p.Owner, wantOwner, peer.ID(p.Info.Owner))
		}
		wantCap := uint64(1) // tier 0
		if i == 7 {
			wantCap = 1 << client.MaxBelievedTier
		}
		if p.CapacityGiB != wantCap {
			t.Errorf("node %d: %d GiB, want %d", i, p.CapacityGiB, wantCap)
		}
	}
}

// TestNetworkTagIsProtocolPrefix: the login salt names the network by the
// DHT protocol prefix; changing one without the other would leave the
// salt naming a network the node does not speak.
func TestNetworkTagIsProtocolPrefix(t *testing.T) {
	if account.NetworkTag != node.ProtocolPrefix {
		t.Fatalf("account.NetworkTag %q, node.ProtocolPrefix %q", account.NetworkTag, node.ProtocolPrefix)
	}
}

// TestSmallNetworkSkipsTheRefreshWait: Providers waits for the routing
// table's refresh unless a lookup of the client's own ID finds fewer peers
// than a bucket holds. A client that knows one node of eight finds it
// small; one that knows one node of thirty does not, however few peers its
// table holds when it asks.
func TestSmallNetworkSkipsTheRefreshWait(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tc := range []struct {
		nodes int
		small bool
	}{{8, true}, {30, false}} {
		nw, err := localnet.Start(ctx, t.TempDir(), tc.nodes, localnet.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: nw.Node(0).Addrs()})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.SmallNetwork(ctx); got != tc.small {
			t.Errorf("%d nodes: small network %v, want %v", tc.nodes, got, tc.small)
		}
		c.Close()
		nw.Close()
	}
}
