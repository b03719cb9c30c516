package client_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
)

// TestReadsOverTCP: on real providers over loopback, a get first goes
// through the client's host and starts the reads host's TCP dial; once
// that is connected, gets go over it (the holder sees the reads host's
// peer over TCP) and return the same bytes. A holder listening on QUIC
// only has no TCP address: its gets keep using the client's host.
func TestReadsOverTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nw, _, err := provider.StartTestnet(ctx, t.TempDir(), 4, provider.TestnetConfig{Base: localnet.Options{
		Configure: func(i int, cfg *node.Config) {
			if i == 3 {
				cfg.ListenAddrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")}
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	c, err := client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: nw.Node(0).Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ReadsOnLoopback()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := c.Shards(key)
	if err != nil {
		t.Fatal(err)
	}
	get := func(p peer.ID, id codec.ShardID, want []byte) {
		t.Helper()
		rc, _, err := sh.Get(ctx, p, id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes, not the %d stored", len(got), len(want))
		}
	}
	data := bytes.Repeat([]byte("jellyfish reads over TCP "), 40_000)
	id := codec.IDOf(data)
	for _, i := range []int{1, 3} {
		if err := c.Node().Host().Connect(ctx, peer.AddrInfo{ID: nw.ID(i), Addrs: nw.Node(i).Addrs()}); err != nil {
			t.Fatal(err)
		}
		if _, err := sh.Put(ctx, nw.ID(i), id, data, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}

	holder := nw.ID(1)
	get(holder, id, data)
	if n := c.ReadStreams(); n != 0 {
		t.Fatalf("the first get went over the reads host (%d streams) before it was connected", n)
	}
	if err := localnet.WaitFor(ctx, func() bool { _, ok := c.ReadsHost(holder); return ok }); err != nil {
		t.Fatalf("the reads host never connected to the holder: %v", err)
	}
	// The reads host's ID is known once it connected; the holder may
	// register its end of the connection a moment after the dialler.
	readsID, _ := c.ReadsHost(holder)
	localnet.WaitFor(ctx, func() bool { return len(nw.Node(1).Host().Network().ConnsToPeer(readsID)) > 0 })
	conns := nw.Node(1).Host().Network().ConnsToPeer(readsID)
	if len(conns) != 1 {
		t.Fatalf("holder has %d connections from the reads host", len(conns))
	}
	if _, err := conns[0].RemoteMultiaddr().ValueForProtocol(ma.P_TCP); err != nil {
		t.Fatalf("reads connection is not TCP: %s", conns[0].RemoteMultiaddr())
	}
	for range 3 {
		get(holder, id, data)
	}
	if n := c.ReadStreams(); n != 3 {
		t.Fatalf("%d gets over the reads host, want 3", n)
	}

	// The QUIC-only holder.
	get(nw.ID(3), id, data)
	get(nw.ID(3), id, data)
	if _, ok := c.ReadsHost(nw.ID(3)); ok {
		t.Fatal("the reads host connected to a holder with no TCP address")
	}
	if n := c.ReadStreams(); n != 3 {
		t.Fatalf("%d gets over the reads host, want still 3", n)
	}

	// The reads connection gone (the holder closed it): gets go back to
	// the client's host at once, and nothing is lost.
	if err := nw.Node(1).Host().Network().ClosePeer(readsID); err != nil {
		t.Fatal(err)
	}
	if err := localnet.WaitFor(ctx, func() bool { _, ok := c.ReadsHost(holder); return !ok }); err != nil {
		t.Fatal(err)
	}
	get(holder, id, data)
}
