package shardstore

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

// putMany stores n small shards for owner and returns their IDs; shard i
// has manySize(i) bytes.
func putMany(t *testing.T, d *Disk, o Owner, seed uint64, n int, lease time.Time) []codec.ShardID {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	ids := make([]codec.ShardID, n)
	for i := range ids {
		b, id := newShard(rng, manySize(i))
		put(t, d, o, b, id, lease)
		ids[i] = id
	}
	return ids
}

func manySize(i int) int { return 64 + i%7 }

// diskLease reads owner's lease of id from its metadata record on disk.
func diskLease(t *testing.T, dir string, id codec.ShardID, o Owner) time.Time {
	t.Helper()
	_, _, _, mn := shardPath(id)
	b, err := os.ReadFile(filepath.Join(dir, mn))
	if err != nil {
		t.Fatal(err)
	}
	m, err := unmarshalMeta(b)
	if err != nil {
		t.Fatalf("record of %s: %v", id.Short(), err)
	}
	return m.owners[o]
}

func TestRenewBatchCostsFixedSyncs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("one sync per step needs syncfs")
	}
	dir := t.TempDir()
	clk := &fakeClock{now: t0}
	d := openStore(t, dir, WithClock(clk.Now))
	ctx := context.Background()
	const n = 400 // spread over most of the 256 fan-out directories
	ids := putMany(t, d, ownerA, 20, n, t0.Add(time.Hour))
	// Another owner's reference to some of them survives the renewal.
	for i, id := range ids[:10] {
		if err := d.Put(ctx, ownerB, id, int64(manySize(i)), nil, t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	until := t0.Add(30 * 24 * time.Hour)
	before := d.syncs.Load()
	missing, err := d.Renew(ctx, ownerA, ids, until)
	if err != nil || len(missing) != 0 {
		t.Fatalf("Renew: %v %v", missing, err)
	}
	// One sync for the new records, one for the renames: before this, two
	// per shard (800 here).
	if got := d.syncs.Load() - before; got != 2 {
		t.Fatalf("renewing %d shards cost %d syncs, want 2", n, got)
	}
	// Nothing to extend: nothing written, nothing synced.
	before = d.syncs.Load()
	if _, err := d.Renew(ctx, ownerA, ids, until); err != nil {
		t.Fatal(err)
	}
	if got := d.syncs.Load() - before; got != 0 {
		t.Fatalf("a renewal that extends nothing cost %d syncs", got)
	}
	if files := storeFiles(t, filepath.Join(dir, tmpDir)); len(files) != 0 {
		t.Fatalf("left in tmp/: %v", files)
	}
	d.Close()
	d = openStore(t, dir, WithClock(clk.Now))
	for i, id := range ids {
		info, err := d.Stat(ctx, id)
		if err != nil || !info.Lease.Equal(until) {
			t.Fatalf("lease of %s after reopen: %+v %v", id.Short(), info, err)
		}
		if i < 10 && (info.Refs != 2 || !diskLease(t, dir, id, ownerB).Equal(t0.Add(2*time.Hour))) {
			t.Fatalf("other owner's reference to %s: %+v", id.Short(), info)
		}
	}
}

// A renewal that fails halfway leaves every record whole, the old one or
// the new one, and the index agreeing with the disk.
func TestRenewBatchFailingHalfway(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{now: t0}
	d := openStore(t, dir, WithClock(clk.Now))
	ctx := context.Background()
	old := t0.Add(time.Hour)
	ids := putMany(t, d, ownerA, 21, 40, old)
	sorted := slices.Clone(ids)
	slices.SortFunc(sorted, func(a, b codec.ShardID) int { return slices.Compare(a[:], b[:]) })
	// A directory where the middle shard's record should be: its rename
	// fails.
	bad := sorted[len(sorted)/2]
	_, _, _, mn := shardPath(bad)
	if err := os.Remove(filepath.Join(dir, mn)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, mn, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	until := t0.Add(48 * time.Hour)
	if _, err := d.Renew(ctx, ownerA, ids, until); err == nil {
		t.Fatal("renewal over a directory succeeded")
	}
	renewed := 0
	for _, id := range sorted {
		if id == bad {
			continue
		}
		info, err := d.Stat(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if onDisk := diskLease(t, dir, id, ownerA); !onDisk.Equal(info.Lease) {
			t.Fatalf("%s: index says %v, disk %v", id.Short(), info.Lease, onDisk)
		}
		if info.Lease.Equal(until) {
			renewed++
		} else if !info.Lease.Equal(old) {
			t.Fatalf("%s: lease %v is neither old nor new", id.Short(), info.Lease)
		}
	}
	if renewed != len(sorted)/2 {
		t.Fatalf("%d records renewed before the failure, want the %d before it", renewed, len(sorted)/2)
	}
	if files := storeFiles(t, filepath.Join(dir, tmpDir)); len(files) != 0 {
		t.Fatalf("left in tmp/: %v", files)
	}
}

// Overlapping renewals, puts and deletes run at once without deadlock.
func TestRenewBatchesConcurrently(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{now: t0}
	d := openStore(t, dir, WithClock(clk.Now))
	ids := putMany(t, d, ownerA, 22, 60, t0.Add(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 0))
			for i := range 10 {
				sub := slices.Clone(ids)
				rng.Shuffle(len(sub), func(a, b int) { sub[a], sub[b] = sub[b], sub[a] })
				if _, err := d.Renew(ctx, ownerA, sub[:30], t0.Add(time.Duration(2+i+w)*time.Hour)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i, id := range ids[:20] {
			if err := d.Put(ctx, ownerB, id, int64(manySize(i)), nil, t0.Add(time.Hour)); err != nil {
				t.Error(err)
			}
			if err := d.Delete(ctx, ownerB, id); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("renewals deadlocked")
	}
}
