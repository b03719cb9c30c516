package shardstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

// An owner's delete is remembered until the lease it ended would have
// ended, across a reopen; storing the shard again withdraws it, whether
// the shard was still held or not; another owner is not affected.
func TestReleases(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{now: t0}
	d := openStore(t, dir, WithClock(clk.Now))
	rng := rand.New(rand.NewPCG(7, 7))
	ctx := context.Background()
	a, b := Owner{1}, Owner{2}
	x, xid := newShard(rng, 5000)
	y, yid := newShard(rng, 5000)
	put(t, d, a, x, xid, t0.Add(48*time.Hour))
	put(t, d, b, x, xid, t0.Add(48*time.Hour))
	put(t, d, a, y, yid, t0.Add(2*time.Hour))
	for _, id := range []codec.ShardID{xid, yid} {
		if err := d.Delete(ctx, a, id); err != nil {
			t.Fatal(err)
		}
	}
	if !d.Released(a, xid) || !d.Released(a, yid) || d.Released(b, xid) || d.Released(a, codec.ShardID{9}) {
		t.Fatal("releases not as deleted")
	}
	// Across a reopen, and until each lease would have ended.
	d.Close()
	d = openStore(t, dir, WithClock(clk.Now))
	if !d.Released(a, xid) || !d.Released(a, yid) {
		t.Fatal("releases lost on reopen")
	}
	clk.Set(t0.Add(2 * time.Hour).Add(-time.Nanosecond))
	if !d.Released(a, yid) {
		t.Fatal("a release ended a nanosecond early")
	}
	clk.Set(t0.Add(2 * time.Hour))
	if d.Released(a, yid) || !d.Released(a, xid) {
		t.Fatal("a release outlived its lease")
	}
	// Stored again: x is still held (b's), y is gone.
	put(t, d, a, x, xid, t0.Add(72*time.Hour))
	put(t, d, a, y, yid, t0.Add(72*time.Hour))
	if d.Released(a, xid) || d.Released(a, yid) {
		t.Fatal("a release stayed after the owner stored the shard again")
	}
	d.Close()
	d = openStore(t, dir, WithClock(clk.Now))
	if d.Released(a, xid) {
		t.Fatal("a withdrawn release came back on reopen")
	}
	// A reference whose lease had ended leaves no release.
	clk.Set(t0.Add(100 * time.Hour))
	if err := d.Delete(ctx, a, yid); err != nil {
		t.Fatal(err)
	}
	if d.Released(a, yid) {
		t.Fatal("a lapsed reference left a release")
	}
}

// Past MaxReleasesPerOwner, the release that ends first goes and the owner
// gets no signed not-found for any shard until it would have ended; the
// file is compacted as releases end.
func TestReleasesBounded(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{now: t0}
	d := openStore(t, dir, WithClock(clk.Now))
	rng := rand.New(rand.NewPCG(8, 8))
	ctx := context.Background()
	a := Owner{3}
	n := MaxReleasesPerOwner + 1
	for i := range n {
		s, id := newShard(rng, 64)
		put(t, d, a, s, id, t0.Add(time.Hour+time.Duration(i)*time.Second))
		if err := d.Delete(ctx, a, id); err != nil {
			t.Fatal(err)
		}
	}
	if !d.Released(a, codec.ShardID{42}) {
		t.Fatal("past the bound, the owner still gets signed not-founds")
	}
	if d.Released(Owner{4}, codec.ShardID{42}) {
		t.Fatal("another owner is affected")
	}
	// The owner-wide release ends with the evicted one's lease (the
	// first, an hour).
	clk.Set(t0.Add(time.Hour))
	if d.Released(a, codec.ShardID{42}) {
		t.Fatal("the owner-wide release outlived the evicted lease")
	}
	// Everything ended: a reopen compacts the file to nothing.
	clk.Set(t0.Add(3 * time.Hour))
	d.Close()
	d = openStore(t, dir, WithClock(clk.Now))
	fi, err := os.Stat(filepath.Join(dir, releasedFile))
	if err != nil || fi.Size() != 0 {
		t.Fatalf("released file after every release ended: %v, %d bytes", err, fi.Size())
	}
	if d.rel.live != 0 || len(d.rel.byOwner) != 0 {
		t.Fatalf("%d releases of %d owners kept", d.rel.live, len(d.rel.byOwner))
	}
}

// TestReleasesBoundedInAll: at MaxReleases releases kept in all, a delete
// whose lease still runs is refused with ErrQuotaExceeded and the
// reference stays, to lapse with its lease; one whose lease ended needs no
// release and passes. (The count starts one short of the bound: 262,144
// synced deletes would take minutes.)
func TestReleasesBoundedInAll(t *testing.T) {
	clk := &fakeClock{now: t0}
	d := openStore(t, t.TempDir(), WithClock(clk.Now))
	rng := rand.New(rand.NewPCG(9, 9))
	ctx := context.Background()
	a := Owner{5}
	var ids []codec.ShardID
	for i := range 3 {
		s, id := newShard(rng, 64)
		put(t, d, a, s, id, t0.Add(time.Hour+time.Duration(i)*time.Minute))
		ids = append(ids, id)
	}
	d.rel.mu.Lock()
	d.rel.live = MaxReleases - 1
	d.rel.mu.Unlock()
	if err := d.Delete(ctx, a, ids[0]); err != nil {
		t.Fatalf("the last release the bound allows: %v", err)
	}
	if err := d.Delete(ctx, a, ids[1]); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("a release past the bound: %v", err)
	}
	if _, err := d.Stat(ctx, ids[1]); err != nil {
		t.Fatalf("the refused delete's shard: %v", err)
	}
	// Past its lease the reference needs no release.
	clk.Set(t0.Add(2 * time.Hour))
	if err := d.Delete(ctx, a, ids[2]); err != nil {
		t.Fatalf("a delete after the lease ended: %v", err)
	}
}
