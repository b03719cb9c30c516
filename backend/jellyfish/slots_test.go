package jellyfish

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/internal/memnet"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
)

// TestStalledHolderKeepsToItsSlots: one holder of four takes every shard
// put and get and answers none. Sixteen uploads of new objects and sixteen
// reads of objects stored before it stalled, all at once, complete: a
// stalled transfer is cancelled once its segment is done without it, and
// meanwhile the stalled holder holds at most maxHolderTransfers of the
// store's maxTransfers slots, so the other holders' transfers always find
// one. (With one pool of 16 and no cap per holder, its transfers filled
// the pool while the segments that would cancel them waited for a slot.)
func TestStalledHolderKeepsToItsSlots(t *testing.T) {
	nw, store := fourNodeStore(t, nil)
	// 2+2 on four nodes: every segment has one shard on each node.
	enc, err := codec.NewEncoder(codec.Params{K: 2, M: 2, SegmentSize: 4096, Compression: codec.CompressNone})
	if err != nil {
		t.Fatal(err)
	}
	// Generous: only a stall that never ends reaches it.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const objects, size = 16, 8 * 4096
	data := func(i int) []byte {
		b := make([]byte, size)
		r := mrand.New(mrand.NewPCG(uint64(i), 7))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		return b
	}
	refs := make([]*ObjRef, objects)
	for i := range refs {
		if refs[i], err = store.Put(ctx, enc, bytes.NewReader(data(i))); err != nil {
			t.Fatal(err)
		}
	}
	slow := nw.Nodes()[0]
	if nw.Holding(slow) == 0 {
		t.Fatal("the holder to stall holds nothing")
	}
	nw.Stall(slow, true)
	defer nw.Stall(slow, false)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var uploaded, read int
	for i := range objects {
		wg.Go(func() {
			ref, err := store.Put(ctx, enc, bytes.NewReader(data(100+i)))
			if err != nil {
				t.Errorf("upload %d: %v", i, err)
				return
			}
			got, err := readObject(ctx, store, ref)
			if err != nil || !bytes.Equal(got, data(100+i)) {
				t.Errorf("reading upload %d back: %v", i, err)
				return
			}
			mu.Lock()
			uploaded++
			mu.Unlock()
		})
		wg.Go(func() {
			got, err := readObject(ctx, store, refs[i])
			if err != nil || !bytes.Equal(got, data(i)) {
				t.Errorf("read %d: %v", i, err)
				return
			}
			mu.Lock()
			read++
			mu.Unlock()
		})
	}
	wg.Wait()
	_, peak := nw.InFlight(slow)
	t.Logf("with one of 4 holders stalled: %d/%d uploads and %d/%d reads complete; the stalled holder held at most %d transfers at once (cap %d of %d)",
		uploaded, objects, read, objects, peak, maxHolderTransfers, maxTransfers)
	if uploaded != objects || read != objects {
		t.Fatalf("%d/%d uploads, %d/%d reads completed", uploaded, objects, read, objects)
	}
	if peak > maxHolderTransfers || peak == 0 {
		t.Fatalf("the stalled holder held up to %d transfers at once, want 1 to %d", peak, maxHolderTransfers)
	}
	// Every stalled transfer ends once its segment no longer needs it (a
	// read's last ones just after the read returned).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if now, _ := nw.InFlight(slow); now == 0 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%d transfers to the stalled holder still waiting", now)
		}
	}
}

func readObject(ctx context.Context, s *objectStore, ref *ObjRef) ([]byte, error) {
	rc, err := s.Open(ctx, ref, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// fourNodeStore is an object store on a memnet network of four nodes,
// with the session's transfer slots; wrap, if set, wraps its shard
// network.
func fourNodeStore(t *testing.T, wrap func(shardIO) shardIO) (*memnet.Network, *objectStore) {
	t.Helper()
	nw, err := memnet.New(4)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var shards shardIO = nw.Shards(key)
	if wrap != nil {
		shards = wrap(shards)
	}
	return nw, &objectStore{
		shards: shards, providers: nw.Providers, lease: time.Hour, threshold: defaultThreshold,
		slots: newTransferSlots(maxTransfers, maxHolderTransfers), now: time.Now,
	}
}

// slowPuts is a shard network whose puts each take a while.
type slowPuts struct {
	shardIO
	d time.Duration
}

func (s slowPuts) PutReader(ctx context.Context, p peer.ID, id codec.ShardID, size int64, r io.Reader, lease time.Time) (shardproto.Receipt, error) {
	select {
	case <-time.After(s.d):
	case <-ctx.Done():
		return shardproto.Receipt{}, ctx.Err()
	}
	return s.shardIO.PutReader(ctx, p, id, size, r, lease)
}

// TestQueuedPutsAreNotStragglers: with the put window down to one place,
// as on a saturated uplink, a segment's last shard waits behind other
// segments' puts long after the segment has enough receipts. It is waiting
// for the uplink, not for a slow holder, so it is not cancelled: every
// segment is stored with all k + m shards.
func TestQueuedPutsAreNotStragglers(t *testing.T) {
	nw, store := fourNodeStore(t, func(s shardIO) shardIO { return slowPuts{s, 20 * time.Millisecond} })
	q := &repairQueue{}
	store.repairs = q
	store.slots.puts = newPutWindow(1)
	enc, err := codec.NewEncoder(codec.Params{K: 2, M: 2, SegmentSize: 4096, Compression: codec.CompressNone})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := make([]byte, 12*4096)
	for i := range data {
		data[i] = byte(i * 31 / 7)
	}
	ref, err := store.Put(ctx, enc, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	short, missing := q.stats()
	if want := 4 * len(data) / 4096; short != 0 || missing != 0 || len(ref.Shards()) != want || nw.Held() != want {
		t.Fatalf("%d segments stored short by %d shards; %d shards referenced, %d held, want %d",
			short, missing, len(ref.Shards()), nw.Held(), want)
	}
	got, err := readObject(ctx, store, ref)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
}
