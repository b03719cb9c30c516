package shardstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

// heldPut is a put whose body does not come until the test ends it.
type heldPut struct {
	pw   *io.PipeWriter
	done chan error
}

// startHeldPut starts a put of size bytes for owner from src and waits
// until it reserved its space or failed.
func startHeldPut(t *testing.T, d *Disk, owner Owner, src netip.Prefix, id codec.ShardID, size int64) (*heldPut, error) {
	t.Helper()
	ctx := context.Background()
	if src.IsValid() {
		ctx = ContextWithSource(ctx, src)
	}
	pr, pw := io.Pipe()
	h := &heldPut{pw: pw, done: make(chan error, 1)}
	before := d.Usage().Reserved
	go func() { h.done <- d.Put(ctx, owner, id, size, pr, t0.Add(time.Hour)) }()
	deadline := time.Now().Add(10 * time.Second)
	for d.Usage().Reserved < before+size {
		select {
		case err := <-h.done:
			return nil, err
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("put neither reserved its space nor failed")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	return h, nil
}

func (h *heldPut) stop() error {
	h.pw.CloseWithError(errors.New("test: body withheld"))
	return <-h.done
}

func TestReservationShare(t *testing.T) {
	const (
		quota = 1_000_000
		size  = 50_000
	)
	d := openStore(t, t.TempDir(), WithQuotaBytes(quota), WithMaxShardSize(size), WithClock((&fakeClock{now: t0}).Now))
	rng := rand.New(rand.NewPCG(9, 9))
	srcA := netip.MustParsePrefix("192.0.2.1/32")
	srcB := netip.MustParsePrefix("2001:db8:1:100::/56")
	var held []*heldPut
	hold := func(owner Owner, src netip.Prefix) error {
		t.Helper()
		_, id := newShard(rng, 10)
		h, err := startHeldPut(t, d, owner, src, id, size)
		if h != nil {
			held = append(held, h)
		}
		return err
	}
	// One owner: 1/8 of the free space, checked at each admission.
	// 50k + 50k <= 950k/8; 150k > 900k/8.
	for i, want := range []error{nil, nil, ErrBusy} {
		if err := hold(ownerA, netip.Prefix{}); !errors.Is(err, want) {
			t.Fatalf("put %d of one owner: %v, want %v", i, err, want)
		}
	}
	// One source, many owners: the same share. 50k + 50k <= 850k/8;
	// 150k > 800k/8. Another source is not held back.
	for i, want := range []error{nil, nil, ErrBusy} {
		if err := hold(Owner{byte(10 + i)}, srcA); !errors.Is(err, want) {
			t.Fatalf("put %d of source A: %v, want %v", i, err, want)
		}
	}
	if err := hold(Owner{20}, srcB); err != nil {
		t.Fatalf("put from source B: %v", err)
	}
	u := d.Usage()
	if u.Reserved != 5*size || u.ReservedByOwner[ownerA] != 2*size || u.ReservedBySource[srcA] != 2*size || u.ReservedBySource[srcB] != size {
		t.Fatalf("usage %+v", u)
	}
	// A refused put did not read its body.
	cr := &countingReader{r: bytes.NewReader(make([]byte, size))}
	_, id := newShard(rng, 10)
	if err := d.Put(ContextWithSource(context.Background(), srcA), Owner{30}, id, size, cr, t0.Add(time.Hour)); !errors.Is(err, ErrBusy) || cr.reads.Load() != 0 {
		t.Fatalf("put over the source's share: %v after %d reads", err, cr.reads.Load())
	}
	// An admitted put that sends its body completes, whatever else holds.
	b, id := newShard(rng, size)
	if err := d.Put(context.Background(), Owner{31}, id, size, bytes.NewReader(b), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, h := range held {
		if err := h.stop(); err == nil {
			t.Fatal("a put without its body succeeded")
		}
	}
	if u := d.Usage(); u.Reserved != 0 || len(u.ReservedByOwner) != 0 || len(u.ReservedBySource) != 0 || u.Used != size {
		t.Fatalf("usage after the puts ended: %+v", u)
	}
}

// TestReservationShareFloor: when 1/8 of the free space is less than the
// largest shard, an owner may still reserve one such shard.
func TestReservationShareFloor(t *testing.T) {
	const size = 60_000
	d := openStore(t, t.TempDir(), WithQuotaBytes(100_000), WithMaxShardSize(size), WithClock((&fakeClock{now: t0}).Now))
	rng := rand.New(rand.NewPCG(10, 10))
	_, id := newShard(rng, 10)
	h, err := startHeldPut(t, d, ownerA, netip.MustParsePrefix("192.0.2.1/32"), id, size)
	if err != nil {
		t.Fatalf("one largest shard over 1/8 of the quota: %v", err)
	}
	_, id2 := newShard(rng, 10)
	if err := d.Put(context.Background(), ownerA, id2, 1000, bytes.NewReader(nil), t0.Add(time.Hour)); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second put of the owner: %v", err)
	}
	h.stop()
}

func TestOptionsReservationShare(t *testing.T) {
	if _, err := New(t.TempDir(), WithReservationShare(0)); err == nil {
		t.Fatal("share 0 accepted")
	}
}
