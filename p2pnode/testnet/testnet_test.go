package testnet_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

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

// manualClock is a record.Clock that tests move forward.
type manualClock struct{ offset atomic.Int64 }

func (c *manualClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *manualClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
func (c *manualClock) Clock() record.Clock     { return c.Now }
func signedNode(t *testing.T, n *node.Node, seq uint64, expires time.Time) (string, []byte) {
	t.Helper()
	body, err := record.NodeInfo{Owner: []byte("owner"), Tier: 4}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	key := record.NodeKey(n.ID())
	r := record.Record{Kind: record.KindNode, Seq: seq, Expires: expires, Body: body}
	v, err := r.Sign(key, n.PrivateKey())
	if err != nil {
		t.Fatal(err)
	}
	return key, v
}

func nodeInfo() record.NodeInfo { return record.NodeInfo{Owner: []byte("owner"), Tier: 4} }

func recordKey(n *node.Node) string { return record.NodeKey(n.ID()) }

// rawGet asks peer p directly, bypassing from's local store and lookups.
func rawGet(ctx context.Context, t *testing.T, from *node.Node, p peer.ID, key string) []byte {
	t.Helper()
	pm, err := pb.NewProtocolMessenger(from.DHT().MessageSender())
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := pm.GetValue(ctx, p, key)
	if err != nil {
		t.Fatalf("raw get from %s: %v", p, err)
	}
	return rec.GetValue()
}

func rawPut(ctx context.Context, t *testing.T, from *node.Node, p peer.ID, key string, value []byte) error {
	t.Helper()
	pm, err := pb.NewProtocolMessenger(from.DHT().MessageSender())
	if err != nil {
		t.Fatal(err)
	}
	return pm.PutValue(ctx, p, &recpb.Record{Key: []byte(key), Value: value})
}

// TestKilledNodeRestartsWithIdentityAndRecords kills a node right after it
// accepted a record and checks that, restarted, it has the same peer ID,
// the same ports and serves the record.
func TestKilledNodeRestartsWithIdentityAndRecords(t *testing.T) {
	nw := testnet.New(t, 3, testnet.Options{RepublishInterval: -1})
	ctx := testCtx(t, 40*time.Second)
	writer, holder := nw.Node(0), nw.Node(1)
	id := holder.ID()
	addrs := holder.Host().Network().ListenAddresses()
	key, value := signedNode(t, writer, 1, time.Now().Add(time.Hour))

	if err := rawPut(ctx, t, writer, id, key, value); err != nil {
		t.Fatalf("holder refused the record: %v", err)
	}
	if err := nw.Kill(1); err != nil {
		t.Fatal(err)
	}
	if nw.Node(1) != nil {
		t.Fatal("killed node still listed")
	}
	if err := nw.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	restarted := nw.Node(1)
	if restarted.ID() != id {
		t.Fatalf("restarted as %s, want %s", restarted.ID(), id)
	}
	got := restarted.Host().Network().ListenAddresses()
	if len(got) != len(addrs) || !got[0].Equal(addrs[0]) {
		t.Logf("ports changed on restart: %v -> %v", addrs, got)
	}
	if err := nw.WaitFor(ctx, func() bool { return writer.Host().Network().Connectedness(id) == 1 }); err != nil {
		t.Fatalf("writer never reconnected to the restarted holder: %v", err)
	}
	if v := rawGet(ctx, t, writer, id, key); !bytes.Equal(v, value) {
		t.Fatalf("restarted holder serves %d bytes, want the record", len(v))
	}
}

// TestRecordOutlivesOwnerAndRecordAge publishes a record, kills its owner,
// restarts every node that holds it, and lets kad-dht's record age pass
// several times: republishing by the holders keeps it readable. With
// republishing off the same record is gone, which shows the age limit was
// real. Advancing the validator clock past the signed expiry ends it.
func TestRecordOutlivesOwnerAndRecordAge(t *testing.T) {
	const age = 1500 * time.Millisecond
	run := func(t *testing.T, republish time.Duration) (err error) {
		clock := &manualClock{}
		nw := testnet.New(t, 4, testnet.Options{MaxRecordAge: age, RepublishInterval: republish, Clock: clock.Clock()})
		ctx := testCtx(t, 50*time.Second)
		owner := nw.Node(0)
		key, value := signedNode(t, owner, 1, clock.Now().Add(time.Hour))
		if _, err := owner.PutRecordConfirmed(ctx, key, value, 3); err != nil {
			t.Fatal(err)
		}
		if err := nw.Kill(0); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < 4; i++ {
			if err := nw.Restart(ctx, i); err != nil {
				t.Fatal(err)
			}
		}
		if err := nw.WaitRoutingTables(ctx, 2); err != nil {
			t.Fatal(err)
		}
		// Let the age limit pass three times over. This waits for time
		// itself, not for the network to converge.
		deadline := time.Now().Add(3 * age)
		if err := nw.WaitFor(ctx, func() bool { return time.Now().After(deadline) }); err != nil {
			t.Fatal(err)
		}
		reader := nw.Node(3)
		_, got, err := reader.GetRecord(ctx, key)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, value) {
			t.Fatal("read a different record")
		}
		// Past the signed expiry the holders stop serving and republishing.
		clock.Advance(2 * time.Hour)
		if _, _, err := reader.GetRecord(ctx, key); err == nil {
			t.Fatal("record readable after its signed expiry")
		}
		st, err := nw.Node(1).Republisher().RepublishOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Put != 0 {
			t.Fatalf("republished %d expired records", st.Put)
		}
		return nil
	}
	t.Run("republished", func(t *testing.T) {
		if err := run(t, 250*time.Millisecond); err != nil {
			t.Fatalf("record lost: %v", err)
		}
	})
	t.Run("control without republishing", func(t *testing.T) {
		if err := run(t, -1); !errors.Is(err, routing.ErrNotFound) {
			t.Fatalf("without republishing GetRecord = %v, want not found", err)
		}
	})
}

// TestHighWaterOutlivesForgottenRecord lets a holder forget a record (its
// age passes, nobody republishes) and then replays an older version: the
// holder's high-water mark refuses it.
func TestHighWaterOutlivesForgottenRecord(t *testing.T) {
	nw := testnet.New(t, 2, testnet.Options{MaxRecordAge: time.Second, RepublishInterval: -1})
	ctx := testCtx(t, 30*time.Second)
	owner, holder := nw.Node(0), nw.Node(1)
	key, v10 := signedNode(t, owner, 10, time.Now().Add(time.Hour))
	_, v9 := signedNode(t, owner, 9, time.Now().Add(2*time.Hour))
	if err := rawPut(ctx, t, owner, holder.ID(), key, v10); err != nil {
		t.Fatal(err)
	}
	if err := nw.WaitFor(ctx, func() bool { return rawGet(ctx, t, owner, holder.ID(), key) == nil }); err != nil {
		t.Fatalf("holder never forgot the record: %v", err)
	}
	if err := rawPut(ctx, t, owner, holder.ID(), key, v9); err == nil {
		t.Fatal("holder accepted seq 9 after forgetting seq 10")
	}
	if got := rawGet(ctx, t, owner, holder.ID(), key); got != nil {
		t.Fatal("holder serves the rolled-back record")
	}
	// The mark survives a restart of the holder.
	if err := nw.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := nw.Node(1).Validator().Validate(key, v9); !errors.Is(err, record.ErrStale) {
		t.Fatalf("after restart: %v, want ErrStale", err)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	nw := testnet.New(t, 4, testnet.Options{})
	ctx := testCtx(t, 30*time.Second)
	nw.Partition([]int{0}, []int{1, 2, 3})
	n0 := nw.Node(0)
	for j := 1; j < 4; j++ {
		if n0.Host().Network().Connectedness(nw.ID(j)) == 1 {
			t.Fatalf("node 0 still connected to %d", j)
		}
		if err := n0.Host().Connect(ctx, n0.Host().Peerstore().PeerInfo(nw.ID(j))); err == nil {
			t.Fatalf("node 0 dialled %d through the partition", j)
		}
	}
	key, value := signedNode(t, nw.Node(1), 1, time.Now().Add(time.Hour))
	if _, err := nw.Node(1).PutRecordConfirmed(ctx, key, value, 2); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, _, err := n0.GetRecord(short, key); err == nil {
		t.Fatal("partitioned node read a record stored only on the other side")
	}

	nw.Heal(ctx)
	if err := nw.WaitFor(ctx, func() bool {
		_, got, err := n0.GetRecord(ctx, key)
		return err == nil && bytes.Equal(got, value)
	}); err != nil {
		t.Fatalf("healed node cannot read the record: %v", err)
	}
}

func TestOnStartAttachesServices(t *testing.T) {
	var starts, closes atomic.Int32
	nw := testnet.New(t, 2, testnet.Options{
		OnStart: func(_ context.Context, i int, n *node.Node) error {
			starts.Add(1)
			return n.Attach(closeFunc(func() error { closes.Add(1); return nil }))
		},
	})
	if starts.Load() != 2 {
		t.Fatalf("OnStart ran %d times, want 2", starts.Load())
	}
	ctx := testCtx(t, 30*time.Second)
	if err := nw.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if starts.Load() != 3 || closes.Load() != 1 {
		t.Fatalf("after restart: %d starts, %d closes", starts.Load(), closes.Load())
	}
	if err := nw.Close(); err != nil {
		t.Fatal(err)
	}
	if closes.Load() != 3 {
		t.Fatalf("after Close: %d closes, want 3", closes.Load())
	}
}

type closeFunc func() error

func (f closeFunc) Close() error { return f() }
