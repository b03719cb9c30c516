package node_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	kb "github.com/libp2p/go-libp2p-kbucket"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/testnet"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func loopback() []ma.Multiaddr {
	return []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0"), ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestIdentityCreatedOnceAndPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), node.IdentityFile)
	k1, err := node.LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("identity mode %v, want 0600", st.Mode().Perm())
	}
	if k1.Type() != crypto.Ed25519 {
		t.Fatalf("key type %v", k1.Type())
	}
	k2, err := node.LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("second load returned a different key")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := node.LoadOrCreateIdentity(path); err == nil {
		t.Fatal("world-readable identity accepted")
	}
}

func TestNodeKeepsIdentityAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t, 30*time.Second)
	n1, err := node.New(ctx, node.Config{DataDir: dir, ListenAddrs: loopback()})
	if err != nil {
		t.Fatal(err)
	}
	id := n1.ID()
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	n2, err := node.New(ctx, node.Config{DataDir: dir, ListenAddrs: loopback()})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	if n2.ID() != id {
		t.Fatalf("restarted with %s, want %s", n2.ID(), id)
	}
}

// TestNewFailureLeavesNothingRunning starts a node on a port that is
// taken: New must fail and release the database, so a second New on the
// same data directory succeeds.
func TestNewFailureLeavesNothingRunning(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	// A plain listener (no SO_REUSEPORT) makes the port unusable for libp2p.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken, err := manet.FromNetAddr(l.Addr())
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if _, err := node.New(ctx, node.Config{DataDir: dir, ListenAddrs: []ma.Multiaddr{taken}}); err == nil {
		t.Fatal("New on a taken port succeeded")
	}
	n, err := node.New(ctx, node.Config{DataDir: dir, ListenAddrs: loopback()})
	if err != nil {
		t.Fatalf("New after a failed New: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := node.New(ctx, node.Config{}); !errors.Is(err, node.ErrConfig) {
		t.Fatalf("empty config: %v", err)
	}
	bad := node.Config{DataDir: t.TempDir(), BootstrapPeers: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")}}
	if _, err := node.New(ctx, bad); !errors.Is(err, node.ErrConfig) {
		t.Fatalf("bootstrap address without peer ID: %v", err)
	}
	if _, err := node.New(ctx, node.Config{DataDir: t.TempDir(), ConnGrace: -time.Second}); !errors.Is(err, node.ErrConfig) {
		t.Fatalf("negative connection grace: %v", err)
	}
}

// TestBootstrapSelfLookup joins nodes with BootstrapSelfLookup, each to
// the one before: Bootstrap returns once the node looked itself up, so the
// nodes it reached know it and it knows them, without any refresh.
func TestBootstrapSelfLookup(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	var nodes []*node.Node
	for i := range 6 {
		cfg := node.Config{DataDir: t.TempDir(), ListenAddrs: loopback()[:1], BootstrapSelfLookup: true,
			ConnLow: 2, ConnHigh: 4, ConnGrace: time.Second}
		if i > 0 {
			cfg.BootstrapPeers = nodes[i-1].Addrs()
		}
		n, err := node.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		if err := n.Bootstrap(ctx); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		nodes = append(nodes, n)
	}
	last := nodes[len(nodes)-1]
	if got := last.DHT().RoutingTable().Size(); got < 2 {
		t.Fatalf("the last node knows %d peers after its lookup, want more than its bootstrap peer", got)
	}
	// The first node adds the last once it answered the first's check.
	if err := testnet.WaitFor(ctx, func() bool { return nodes[0].DHT().RoutingTable().Find(last.ID()) != "" }); err != nil {
		t.Fatal("the first node did not learn of the last one from its lookup")
	}
}

func TestThreeNodesBootstrap(t *testing.T) {
	nw := testnet.New(t, 3, testnet.Options{})
	for i := range 3 {
		n := nw.Node(i)
		if got := n.DHT().RoutingTable().Size(); got != 2 {
			t.Errorf("node %d routing table has %d peers, want 2", i, got)
		}
		for j := range 3 {
			if i != j && n.DHT().RoutingTable().Find(nw.ID(j)) == "" {
				t.Errorf("node %d does not know node %d", i, j)
			}
		}
		for _, p := range n.Host().Mux().Protocols() {
			if strings.HasPrefix(string(p), "/ipfs/kad") {
				t.Errorf("node %d speaks the public DHT protocol %s", i, p)
			}
		}
	}
}

func TestBootstrapUnreachableFailsClearly(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	// A node that existed and is gone: its addresses refuse connections.
	gone, err := node.New(ctx, node.Config{DataDir: t.TempDir(), ListenAddrs: loopback()})
	if err != nil {
		t.Fatal(err)
	}
	addrs := gone.Addrs()
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}

	const timeout = 2 * time.Second
	n, err := node.New(ctx, node.Config{DataDir: t.TempDir(), ListenAddrs: loopback(), BootstrapPeers: addrs, BootstrapTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	start := time.Now()
	err = n.Bootstrap(ctx)
	took := time.Since(start)
	if !errors.Is(err, node.ErrNoPeersReachable) {
		t.Fatalf("Bootstrap = %v, want ErrNoPeersReachable", err)
	}
	if want := "tried 2 bootstrap addresses"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if took > timeout+time.Second {
		t.Fatalf("Bootstrap took %v, timeout %v", took, timeout)
	}
}

func TestFirstNodeSaysSo(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	var logs syncBuffer
	n, err := node.New(ctx, node.Config{
		DataDir:     t.TempDir(),
		ListenAddrs: loopback(),
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Bootstrap(ctx); err != nil {
		t.Fatalf("first node Bootstrap: %v", err)
	}
	if !strings.Contains(logs.String(), "no bootstrap peers configured") {
		t.Fatalf("log does not mention the missing bootstrap peers:\n%s", logs.String())
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func TestAttachedServicesCloseWithNode(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	n, err := node.New(ctx, node.Config{DataDir: t.TempDir(), ListenAddrs: loopback()})
	if err != nil {
		t.Fatal(err)
	}
	var order []int
	boom := errors.New("boom")
	_ = n.Attach(closerFunc(func() error { order = append(order, 1); return nil }))
	_ = n.Attach(closerFunc(func() error { order = append(order, 2); return boom }))
	if err := n.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close = %v, want the attached error joined", err)
	}
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		t.Fatalf("close order %v, want [2 1]", order)
	}
	closed := false
	if err := n.Attach(closerFunc(func() error { closed = true; return nil })); !errors.Is(err, node.ErrClosed) || !closed {
		t.Fatalf("Attach after Close = %v, closed=%v", err, closed)
	}
}

func TestPutRecordConfirmed(t *testing.T) {
	nw := testnet.New(t, 4, testnet.Options{})
	ctx := testCtx(t, 30*time.Second)
	n0 := nw.Node(0)
	key := record.NodeKey(n0.ID())
	value := signNode(t, n0.PrivateKey(), 1, time.Now().Add(time.Hour))

	got, err := n0.PutRecordConfirmed(ctx, key, value, 3)
	if err != nil {
		t.Fatalf("PutRecordConfirmed: %v", err)
	}
	if got != 3 {
		t.Fatalf("confirmed by %d remote peers, want 3", got)
	}
	if _, err := n0.PutRecordConfirmed(ctx, key, value, 4); !errors.Is(err, node.ErrNotConfirmed) {
		t.Fatalf("4 of 3 remote peers: %v", err)
	}

	// Cut node 0 off: its local put succeeds, but nobody confirms.
	nw.Partition([]int{0}, []int{1, 2, 3})
	v2 := signNode(t, n0.PrivateKey(), 2, time.Now().Add(time.Hour))
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err = n0.PutRecordConfirmed(pctx, key, v2, 1)
	if err == nil || got != 0 {
		t.Fatalf("partitioned put confirmed by %d: %v", got, err)
	}
}

func signNode(t testing.TB, priv crypto.PrivKey, seq uint64, expires time.Time) []byte {
	t.Helper()
	id, err := peerID(priv)
	if err != nil {
		t.Fatal(err)
	}
	body, err := record.NodeInfo{Owner: []byte("owner"), Tier: 2}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r := record.Record{Kind: record.KindNode, Seq: seq, Expires: expires, Body: body}
	v, err := r.Sign(record.NodeKey(id), priv)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestBootstrapDoesNotWaitForAHungPeer: one bootstrap peer answers, another
// accepts TCP connections and then says nothing (a hung or overloaded
// host). Bootstrap returns once the live peer is in the routing table,
// long before the hung dial would time out.
func TestBootstrapDoesNotWaitForAHungPeer(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	nw := testnet.New(t, 1, testnet.Options{})
	live := nw.Node(0)

	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	hungID, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	hungAddr, err := manet.FromNetAddr(hung.Addr())
	if err != nil {
		t.Fatal(err)
	}
	boot := []ma.Multiaddr{hungAddr.Encapsulate(ma.StringCast("/p2p/" + hungID.String()))}
	for _, a := range live.Addrs() {
		boot = append(boot, a)
	}

	const timeout = 20 * time.Second
	n, err := node.New(ctx, node.Config{DataDir: t.TempDir(), ListenAddrs: loopback(), BootstrapPeers: boot, BootstrapTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	start := time.Now()
	if err := n.Bootstrap(ctx); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	took := time.Since(start)
	if n.DHT().RoutingTable().Find(live.ID()) == "" {
		t.Fatal("the live bootstrap peer is not in the routing table")
	}
	if took > 5*time.Second {
		t.Fatalf("Bootstrap took %v: it waited for the hung peer", took)
	}
	t.Logf("bootstrapped in %v with one of two bootstrap peers hung", took.Round(time.Millisecond))
}

// TestReadRecordWalksToTheClosest: in a network of 32 nodes, a record
// stored on one peer only, the farthest of the 20 closest to its key
// (found by brute force over every node), is what a read returns, from a
// client that just joined through one peer and from a node that knows
// every peer: the walk that finds the closest peers asks each of them,
// and every one of the 20 answers.
func TestReadRecordWalksToTheClosest(t *testing.T) {
	const n = 32
	nw := testnet.New(t, n, testnet.Options{})
	ctx := testCtx(t, time.Minute)
	reader, owner := nw.Node(0), nw.Node(1)
	key := record.NodeKey(owner.ID())
	value := signNode(t, owner.PrivateKey(), 1, time.Now().Add(time.Hour))

	// The closest of all the nodes: the holder is among the closest for
	// the client (which serves nobody) and for node 0 (not counting
	// itself) alike.
	var all []peer.ID
	for i := range n {
		all = append(all, nw.Node(i).ID())
	}
	k := reader.DHT().BucketSize()
	closest := kb.SortClosestPeers(all, kb.ConvertKey(key))[:k]
	pm, err := pb.NewProtocolMessenger(owner.DHT().MessageSender())
	if err != nil {
		t.Fatal(err)
	}
	holder := closest[k-1]
	if holder == owner.ID() {
		holder = closest[k-2]
	}
	for i := range n {
		if h := nw.Node(i).Host(); h.ID() == holder {
			if err := owner.Host().Connect(ctx, peer.AddrInfo{ID: holder, Addrs: h.Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := pm.PutValue(ctx, holder, &recpb.Record{Key: []byte(key), Value: value}); err != nil {
		t.Fatal(err)
	}
	// A client that just joined through one peer knows almost nobody:
	// its walk starts from that one.
	client, err := node.New(ctx, node.Config{DataDir: t.TempDir(), ListenAddrs: loopback()[:1], Mode: node.ModeClient,
		BootstrapPeers: nw.Node(5).Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	if err := client.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	// The first read sends the record to the closest peers that lacked
	// it (read repair), so the second may hear it from more.
	for i, r := range []*node.Node{client, reader} {
		known := r.DHT().RoutingTable().Size()
		rd, err := r.ReadRecord(ctx, key, 3)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rd.Value, value) || i == 0 && rd.FromPeers != 1 {
			t.Fatalf("read %d bytes served by %d peers, want the record the one holder serves", len(rd.Value), rd.FromPeers)
		}
		if rd.Asked != k || rd.Answered != k {
			t.Fatalf("asked %d, answered %d, want %d of the closest", rd.Asked, rd.Answered, k)
		}
		t.Logf("found it knowing %d peers at the start", known)
	}
	// A key nobody holds: every one of the closest answers without one.
	rd, err := reader.ReadRecord(ctx, record.NodeKey(nw.Node(2).ID())+"x", 3)
	if err != nil || rd.Value != nil || rd.Answered != k {
		t.Fatalf("absent key: %v, %d bytes, %d answered", err, len(rd.Value), rd.Answered)
	}
}

// TestReachableNeedsAnAnswer: a connected peer whose pings are never
// answered does not make the network reachable. libp2p's ping channel
// closes without a result when its context ends, which once read as a
// round trip of zero and counted as an answer.
func TestReachableNeedsAnAnswer(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	nw := testnet.New(t, 2, testnet.Options{})
	first := nw.Node(0)
	if err := first.Reachable(ctx, 2*time.Second); err != nil {
		t.Fatalf("a peer that answers: %v", err)
	}
	// The peer now reads pings and never answers them.
	nw.Node(1).Host().SetStreamHandler(ping.ID, func(s network.Stream) { io.Copy(io.Discard, s) })
	err := first.Reachable(ctx, time.Second)
	if !errors.Is(err, node.ErrNoPeersReachable) {
		t.Fatalf("a peer that never answers: %v, want ErrNoPeersReachable", err)
	}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if d, err := node.PingOnce(pctx, first.Host(), nw.ID(1)); err == nil {
		t.Fatalf("PingOnce succeeded without an answer (%v)", d)
	}
}
