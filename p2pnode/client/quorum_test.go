package client_test

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio/pbio"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/testnet"
)

// cutOff is a connection gater that refuses the peers it is told to.
type cutOff struct {
	mu  sync.Mutex
	out map[peer.ID]bool
}

func (g *cutOff) set(ps []peer.ID, cut bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range ps {
		g.out[p] = cut
	}
}

func (g *cutOff) ok(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.out[p]
}

func (g *cutOff) InterceptPeerDial(p peer.ID) bool                 { return g.ok(p) }
func (g *cutOff) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.ok(p) }
func (g *cutOff) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *cutOff) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.ok(p)
}
func (g *cutOff) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return g.ok(c.RemotePeer()), 0
}

// headRecord signs a head record of identity for a fixed device at seq.
func headRecord(t *testing.T, identity crypto.PrivKey, seq uint64) (string, []byte) {
	t.Helper()
	id, err := peer.IDFromPrivateKey(identity)
	if err != nil {
		t.Fatal(err)
	}
	key := account.HeadKey(id, account.DeviceID{7})
	r := record.Record{Kind: account.KindHead, Seq: seq, Expires: time.Now().Add(time.Hour), Body: []byte{byte(seq)}}
	raw, err := r.Sign(key, identity)
	if err != nil {
		t.Fatal(err)
	}
	return key, raw
}

func newIdentity(t *testing.T) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// quorumNet is six server nodes knowing every record kind, and a seeder
// client that places records on chosen nodes only, with direct PUT_VALUEs
// (as an attacker, or churn, would leave them).
type quorumNet struct {
	nw   *testnet.Network
	seed *client.Client
	pm   *pb.ProtocolMessenger
}

func newQuorumNet(t *testing.T, ctx context.Context) *quorumNet {
	t.Helper()
	nw := testnet.New(t, 6, testnet.Options{
		Configure: func(_ int, cfg *node.Config) { cfg.RecordKinds = account.RecordKinds() },
	})
	seed, err := client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: nw.Node(0).Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seed.Close() })
	// The seed puts on and asks chosen nodes directly: it knows their
	// addresses from the start, not once its table refresh found them.
	for i := range 6 {
		seed.Node().Host().Peerstore().AddAddrs(nw.ID(i), nw.Node(i).Addrs(), peerstore.PermanentAddrTTL)
	}
	pm, err := pb.NewProtocolMessenger(seed.Node().DHT().MessageSender())
	if err != nil {
		t.Fatal(err)
	}
	return &quorumNet{nw: nw, seed: seed, pm: pm}
}

// place puts value at key on nodes idx only.
func (q *quorumNet) place(t *testing.T, ctx context.Context, key string, value []byte, idx ...int) {
	t.Helper()
	for _, i := range idx {
		if err := q.pm.PutValue(ctx, q.nw.ID(i), &recpb.Record{Key: []byte(key), Value: value}); err != nil {
			t.Fatalf("put on node %d: %v", i, err)
		}
	}
}

// served returns the sequence number node i serves at key, 0 for none.
func (q *quorumNet) served(ctx context.Context, i int, key string) uint64 {
	rec, _, err := q.pm.GetValue(ctx, q.nw.ID(i), key)
	if err != nil || rec == nil || rec.GetValue() == nil {
		return 0
	}
	r, err := record.Decode(rec.GetValue())
	if err != nil {
		return 0
	}
	return r.Seq
}

// reconnect connects c to the nodes idx again.
func (q *quorumNet) reconnect(t *testing.T, ctx context.Context, c *client.Client, idx ...int) {
	t.Helper()
	for _, i := range idx {
		if err := c.Node().Host().Connect(ctx, peer.AddrInfo{ID: q.nw.ID(i), Addrs: q.nw.Node(i).Addrs()}); err != nil {
			t.Fatalf("reconnect node %d: %v", i, err)
		}
	}
}

// reader starts a client knowing all six nodes, with the given gater.
func (q *quorumNet) reader(t *testing.T, ctx context.Context, g *cutOff) *client.Client {
	t.Helper()
	c, err := client.New(ctx, client.Config{
		DataDir: t.TempDir(), Bootstrap: q.nw.Node(0).Addrs(),
		Configure: func(cfg *node.Config) {
			if g != nil {
				cfg.ConnectionGater = g
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := testnet.WaitFor(ctx, func() bool { return c.Node().DHT().RoutingTable().Size() == 6 }); err != nil {
		t.Fatalf("reader's routing table: %d peers", c.Node().DHT().RoutingTable().Size())
	}
	return c
}

// TestQuorumReadFindsNewestAmongStale: of the six peers closest to a head
// key (all of this network), two serve an old record, three none, one the
// newest. A reader gets the newest, and the peers that lacked it are sent
// it (the read's fix-up).
func TestQuorumReadFindsNewestAmongStale(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	q := newQuorumNet(t, ctx)
	identity := newIdentity(t)
	key, old := headRecord(t, identity, 1)
	_, newest := headRecord(t, identity, 2)
	q.place(t, ctx, key, old, 0, 1)
	q.place(t, ctx, key, newest, 5)

	c := q.reader(t, ctx, nil)
	got, err := c.Records().Get(ctx, key)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if r, _ := record.Decode(got); r == nil || r.Seq != 2 {
		t.Fatalf("read %+v, want the record of seq 2 that one peer of six serves", r)
	}
	if err := testnet.WaitFor(ctx, func() bool {
		for i := range 6 {
			if q.served(ctx, i, key) != 2 {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatalf("after the read not every peer serves seq 2: %v", err)
	}
}

// TestNotFoundNeedsAQuorum: a head record is held by four of six nodes.
// With those four cut off from the reader, the two it can reach answer
// that they hold nothing, and the reader holds connections to them; the
// read must not say "not found" (before, it did: any connection left
// after the lookup made kad-dht's "not found" believed). It says "too few
// answers", which matches account.ErrUnreachable. Once the four are back
// the record is read; a key nobody holds is "not found" with all six
// answering.
func TestNotFoundNeedsAQuorum(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	q := newQuorumNet(t, ctx)
	key, val := headRecord(t, newIdentity(t), 5)
	q.place(t, ctx, key, val, 2, 3, 4, 5)

	g := &cutOff{out: map[peer.ID]bool{}}
	c := q.reader(t, ctx, g)
	absent, _ := headRecord(t, newIdentity(t), 1)
	if _, err := c.Records().Get(ctx, absent); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("get of a key nobody holds: %v, want ErrNotFound", err)
	}

	holders := []peer.ID{q.nw.ID(2), q.nw.ID(3), q.nw.ID(4), q.nw.ID(5)}
	g.set(holders, true)
	for _, p := range holders {
		_ = c.Node().Host().Network().ClosePeer(p)
	}
	_, err := c.Records().Get(ctx, key)
	if errors.Is(err, account.ErrNotFound) || !errors.Is(err, client.ErrTooFewAnswers) || !errors.Is(err, account.ErrUnreachable) {
		t.Fatalf("get with the holders cut off: %v, want ErrTooFewAnswers (unreachable), never ErrNotFound", err)
	}
	if len(c.Node().Host().Network().Peers()) == 0 {
		t.Fatal("the reader has no connection left: the test no longer shows that a connection is not an answer")
	}
	t.Logf("holders cut off: %v", err)

	g.set(holders, false)
	q.reconnect(t, ctx, c, 2, 3, 4, 5)
	if err := testnet.WaitFor(ctx, func() bool { return c.Node().DHT().RoutingTable().Size() == 6 }); err != nil {
		t.Fatalf("routing table after reconnecting: %d", c.Node().DHT().RoutingTable().Size())
	}
	got, err := c.Records().Get(ctx, key)
	if err != nil {
		t.Fatalf("get with the holders back: %v", err)
	}
	if r, _ := record.Decode(got); r == nil || r.Seq != 5 {
		t.Fatalf("read %+v, want seq 5", r)
	}
}

// silentPeer starts a host that speaks the DHT protocol for lookups
// (FIND_NODE answered with closer, the given peers) but never answers a
// GET_VALUE: a hostile peer among the closest, holding reads up.
func silentPeer(t *testing.T, closer []peer.AddrInfo) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); h.Close() })
	h.SetStreamHandler(protocol.ID(node.ProtocolPrefix+"/kad/1.0.0"), func(s network.Stream) {
		defer s.Reset()
		r, w := pbio.NewDelimitedReader(s, 1<<20), pbio.NewDelimitedWriter(s)
		for {
			var m pb.Message
			if err := r.ReadMsg(&m); err != nil {
				return
			}
			if m.GetType() == pb.Message_GET_VALUE {
				<-done
				return
			}
			resp := &pb.Message{Type: m.GetType(), Key: m.GetKey(), CloserPeers: pb.RawPeerInfosToPBPeers(closer)}
			if err := w.WriteMsg(resp); err != nil {
				return
			}
		}
	})
	return h
}

// TestSilentPeerDelaysReadBoundedly: one of the seven peers closest to a
// head key answers lookups but never a GET_VALUE. Once three peers have
// answered, the rest get 2 s (node.ReadRecord's grace), so the read
// returns the record within a few seconds. Without the grace every read
// of the key waits out the adapter's 20 s timeout.
func TestSilentPeerDelaysReadBoundedly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	q := newQuorumNet(t, ctx)
	key, val := headRecord(t, newIdentity(t), 3)
	q.place(t, ctx, key, val, 0, 1, 2, 3, 4, 5)
	var real []peer.AddrInfo
	for i := range 6 {
		real = append(real, peer.AddrInfo{ID: q.nw.ID(i), Addrs: q.nw.Node(i).Addrs()})
	}
	silent := silentPeer(t, real)
	c := q.reader(t, ctx, nil)
	if err := c.Node().Host().Connect(ctx, peer.AddrInfo{ID: silent.ID(), Addrs: silent.Addrs()}); err != nil {
		t.Fatal(err)
	}
	rt := c.Node().DHT().RoutingTable()
	if err := testnet.WaitFor(ctx, func() bool { return rt.Find(silent.ID()) != "" }); err != nil {
		t.Fatal("the silent peer never joined the reader's routing table")
	}
	start := time.Now()
	got, err := c.Records().Get(ctx, key)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if r, _ := record.Decode(got); r == nil || r.Seq != 3 {
		t.Fatalf("read %+v, want seq 3", r)
	}
	t.Logf("read with a silent peer among the closest took %v", took)
	if took < time.Second || took > 6*time.Second {
		t.Fatalf("read took %v: want the 2 s grace, not the read's whole timeout (nor no wait at all)", took)
	}
}

// TestOwnCopyIsNotAnAnswer: the reader's own node stores an old record
// of a key (seq 1), four of six nodes the newest (seq 2). With those four
// cut off, the two the reader reaches answer that they hold nothing: too
// few answers to know, so the read says so, and never passes off the
// reader's own old copy as the newest (it did: a device then saw an old
// head of another, and none of its latest files, with every node holding
// the new one). Once the four are back, seq 2 is read.
func TestOwnCopyIsNotAnAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	q := newQuorumNet(t, ctx)
	identity := newIdentity(t)
	key, old := headRecord(t, identity, 1)
	_, newest := headRecord(t, identity, 2)
	q.place(t, ctx, key, newest, 2, 3, 4, 5)

	g := &cutOff{out: map[peer.ID]bool{}}
	c := q.reader(t, ctx, g)
	absent, _ := headRecord(t, newIdentity(t), 1)
	if _, err := c.Records().Get(ctx, absent); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("get of a key nobody holds: %v, want ErrNotFound", err)
	}
	// The reader's own copy: put while it reaches nobody (the put fails,
	// the copy stays), then two nodes without the record come back.
	all := make([]peer.ID, 6)
	for i := range all {
		all[i] = q.nw.ID(i)
	}
	g.set(all, true)
	for _, p := range all {
		_ = c.Node().Host().Network().ClosePeer(p)
	}
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	_ = c.Node().PutRecord(pctx, key, old)
	pcancel()
	g.set(all[:2], false)
	q.reconnect(t, ctx, c, 0, 1)
	// The table takes the two back once identify has run on the new
	// connections.
	if err := testnet.WaitFor(ctx, func() bool { return c.Node().DHT().RoutingTable().Size() >= 2 }); err != nil {
		t.Fatalf("routing table after reconnecting two: %d", c.Node().DHT().RoutingTable().Size())
	}
	holders := all[2:]
	got, err := c.Records().Get(ctx, key)
	if err == nil {
		r, _ := record.Decode(got)
		t.Fatalf("get with the holders of seq 2 cut off returned %+v, want ErrTooFewAnswers", r)
	}
	if !errors.Is(err, client.ErrTooFewAnswers) || !errors.Is(err, account.ErrUnreachable) {
		t.Fatalf("get with the holders of seq 2 cut off: %v, want ErrTooFewAnswers (unreachable)", err)
	}

	g.set(holders, false)
	q.reconnect(t, ctx, c, 2, 3, 4, 5)
	got, err = c.Records().Get(ctx, key)
	if err != nil {
		t.Fatalf("get with the holders back: %v", err)
	}
	if r, _ := record.Decode(got); r == nil || r.Seq != 2 {
		t.Fatalf("read %+v, want seq 2", r)
	}
}
