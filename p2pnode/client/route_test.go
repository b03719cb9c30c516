package client_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// TestShardsFindHolders: a shard client reaches holders whose addresses
// its host does not know, as a fresh process does in a network larger
// than a routing table: the holder's node record names them. A holder
// whose known address is wrong (it moved) is found the same way, and a
// node with no record at all is found by a DHT lookup.
func TestShardsFindHolders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nw, c := routeNet(t, ctx, 5)
	sh, err := c.Shards(newIdentity(t))
	if err != nil {
		t.Fatal(err)
	}
	h := c.Node().Host()
	data := bytes.Repeat([]byte("a holder found by its record "), 1000)
	id := codec.IDOf(data)
	for _, i := range []int{2, 3} {
		if _, err := sh.Put(ctx, nw.ID(i), id, data, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// forget cuts the client off from p and leaves addrs (none: nothing)
	// as all its host knows of p.
	forget := func(p peer.ID, addrs ...ma.Multiaddr) {
		t.Helper()
		if err := h.Network().ClosePeer(p); err != nil {
			t.Fatal(err)
		}
		if err := localnet.WaitFor(ctx, func() bool { return h.Network().Connectedness(p) != network.Connected }); err != nil {
			t.Fatal(err)
		}
		h.Peerstore().ClearAddrs(p)
		h.Peerstore().AddAddrs(p, addrs, peerstore.TempAddrTTL)
	}
	get := func(p peer.ID) {
		t.Helper()
		rc, _, err := sh.Get(ctx, p, id)
		if err != nil {
			t.Fatalf("get from %s: %v", p.ShortString(), err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get from %s: %d bytes, err %v", p.ShortString(), len(got), err)
		}
	}

	forget(nw.ID(2))
	get(nw.ID(2))

	// A port nothing listens on: the dial fails, and the record names
	// the holder's real addresses.
	dead, err := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/9")
	if err != nil {
		t.Fatal(err)
	}
	forget(nw.ID(3), dead)
	get(nw.ID(3))

	// A DHT server with no node record.
	plain, err := node.New(ctx, node.Config{
		DataDir:        t.TempDir(),
		ListenAddrs:    []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		BootstrapPeers: nw.Node(1).Addrs(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := localnet.WaitFor(ctx, func() bool { return nw.Node(4).DHT().RoutingTable().Find(plain.ID()) != "" }); err != nil {
		t.Fatal("the record-less node never joined the routing tables")
	}
	forget(plain.ID())
	if err := c.ShardHost().Connect(ctx, peer.AddrInfo{ID: plain.ID()}); err != nil {
		t.Fatalf("connect to a node with no record, by a DHT lookup: %v", err)
	}
}

// TestHoldersBehindNATWithoutPunching: holders whose records give relayed
// addresses only are behind NATs, reached by a hole punch alone. A client
// that can take part in none (here: on loopback it knows no public
// address of its own) says so, and waits for its hole punching once, not
// once per holder. The holders are identities with a node record and
// nothing else, so no DHT answer can give the client another address.
func TestHoldersBehindNATWithoutPunching(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nw, c := routeNet(t, ctx, 4)
	relay := nw.Node(1).Addrs()[0].Encapsulate(ma.StringCast("/p2p-circuit"))
	var holders []peer.ID
	for range 2 {
		priv := newIdentity(t)
		id, err := peer.IDFromPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		body, err := record.NodeInfo{Addrs: []ma.Multiaddr{relay}}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		key := record.NodeKey(id)
		rec := record.Record{Kind: record.KindNode, Seq: 1, Expires: time.Now().Add(time.Hour), Body: body}
		raw, err := rec.Sign(key, priv)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Records().Put(ctx, key, raw); err != nil {
			t.Fatal(err)
		}
		holders = append(holders, id)
	}
	sh, err := c.Shards(newIdentity(t))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	c.SetRoutingClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	// stat moves the clock on by `by`, asks holder n, and checks the
	// searches and waits for hole punching counted since the start.
	stat := func(n int, by time.Duration, searches, waits int64) {
		t.Helper()
		mu.Lock()
		now = now.Add(by)
		mu.Unlock()
		_, err := sh.Stat(ctx, holders[n], codec.IDOf([]byte("anything")))
		if err == nil || !strings.Contains(err.Error(), "behind a NAT") {
			t.Fatalf("stat at holder %d behind a NAT: %v", n, err)
		}
		if s, w := c.HolderSearches(), c.PunchWaits(); s != searches || w != waits {
			t.Fatalf("stat at holder %d: %d searches and %d waits for hole punching, want %d and %d", n, s, w, searches, waits)
		}
	}
	stat(0, 0, 1, 1)
	stat(0, 0, 1, 1) // the answer is kept
	stat(1, 0, 2, 1) // another holder: searched, not waited for
	// Past findHolderMemo the answer is searched again; within punchRetry
	// the wait is not made again.
	stat(0, 31*time.Second, 3, 1)
	// Past punchRetry the wait is made again.
	stat(1, 30*time.Second, 4, 2)
}

// routeNet starts n providers, waits until each published its node
// record, and joins a client without the TCP reads host to them.
func routeNet(t *testing.T, ctx context.Context, n int) (*localnet.Network, *client.Client) {
	t.Helper()
	nw, fleet, err := provider.StartTestnet(ctx, t.TempDir(), n, provider.TestnetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	waitPublished(t, ctx, fleet, n)
	c, err := client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: nw.Node(0).Addrs(), NoTCPReads: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return nw, c
}

// waitPublished waits until each of the n providers has published its
// node record.
func waitPublished(t *testing.T, ctx context.Context, fleet *provider.Fleet, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-fleet.Provider(i).Published():
		case <-ctx.Done():
			t.Fatalf("provider %d never published its node record", i)
		}
	}
}
