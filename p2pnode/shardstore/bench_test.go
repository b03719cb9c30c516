package shardstore

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

// BenchmarkDiskPut stores 1 MiB shards on tmpfs, as the shard protocol's
// holder does, without a network: the store's own cost per put (hash,
// file write, sync, commit) and, after each pass over the pool, the
// deletes.
func BenchmarkDiskPut(b *testing.B) {
	const size, pool = 1 << 20, 8
	dir, err := os.MkdirTemp("/dev/shm", "jellyfish-bench-")
	if err != nil {
		b.Skipf("no /dev/shm: %v", err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	d, err := New(dir, WithQuotaBytes(1<<30))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	rng := rand.New(rand.NewPCG(40, 40))
	type item struct {
		data []byte
		id   [32]byte
	}
	items := make([]item, pool)
	for i := range items {
		data, id := newShard(rng, size)
		items[i] = item{data, id}
	}
	ctx := context.Background()
	lease := time.Now().Add(time.Hour)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		it := items[i%pool]
		if err := d.Put(ctx, ownerA, it.id, size, bytes.NewReader(it.data), lease); err != nil {
			b.Fatal(err)
		}
		if i%pool == pool-1 {
			for _, it := range items {
				if err := d.Delete(ctx, ownerA, it.id); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// BenchmarkDiskRenew renews 1,024 small shards of one owner, each
// op extending every lease, on the disk the test's temporary directory is
// on (no tmpfs: what it measures is the syncs). It reports the fsyncs
// (of files and directories) one renewal costs.
func BenchmarkDiskRenew(b *testing.B) {
	const n, size = 1024, 1 << 10
	d, err := New(b.TempDir(), WithQuotaBytes(1<<30))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	rng := rand.New(rand.NewPCG(41, 41))
	ctx := context.Background()
	start := time.Now()
	lease := start.Add(time.Hour)
	ids := make([]codec.ShardID, n)
	for i := range ids {
		data, id := newShard(rng, size)
		if err := d.Put(ctx, ownerA, id, size, bytes.NewReader(data), lease); err != nil {
			b.Fatal(err)
		}
		ids[i] = id
	}
	syncs := d.syncs.Load()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A later lease every time, so every record is rewritten.
		missing, err := d.Renew(ctx, ownerA, ids, lease.Add(time.Duration(i+1)*time.Minute))
		if err != nil || len(missing) != 0 {
			b.Fatalf("renew: %d missing, %v", len(missing), err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(d.syncs.Load()-syncs)/float64(b.N), "fsyncs/op")
}

// BenchmarkDiskDelete deletes small shards one at a time on the disk the
// test's temporary directory is on: with the lease still running (the
// store records a release first, one more fsync) and, as the baseline,
// with the lease ended (nothing to remember). It reports fsyncs per
// delete.
func BenchmarkDiskDelete(b *testing.B) {
	for _, bc := range []struct {
		name  string
		lease time.Duration // from the store's clock at delete time
	}{{"lease-running", time.Hour}, {"lease-ended", -time.Hour}} {
		b.Run(bc.name, func(b *testing.B) {
			const size = 1 << 10
			now := time.Now()
			clock := &fakeClock{now: now.Add(-2 * time.Hour)}
			d, err := New(b.TempDir(), WithQuotaBytes(1<<30), WithClock(clock.Now))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			rng := rand.New(rand.NewPCG(42, 42))
			ctx := context.Background()
			ids := make([]codec.ShardID, b.N)
			for i := range ids {
				data, id := newShard(rng, size)
				if err := d.Put(ctx, ownerA, id, size, bytes.NewReader(data), now.Add(bc.lease)); err != nil {
					b.Fatal(err)
				}
				ids[i] = id
			}
			clock.Set(now)
			syncs := d.syncs.Load()
			b.ResetTimer()
			for _, id := range ids {
				if err := d.Delete(ctx, ownerA, id); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(d.syncs.Load()-syncs)/float64(b.N), "fsyncs/op")
		})
	}
}
