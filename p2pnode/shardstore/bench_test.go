package shardstore

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"testing"
	"time"
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
