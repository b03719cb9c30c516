package provider_test

import (
	"context"
	"crypto/rand"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
)

// BenchmarkProviderPut stores 1 MiB shards on a full provider node (node,
// DHT, provider with its shard store) from a client node, four puts in
// flight, over the nodes' own TCP/QUIC hosts: the whole path an upload
// takes. store=disk keeps the shards in JELLYFISH_BENCH_DIR (default the
// system temp folder), store=tmpfs in /dev/shm; comparing them shows what
// the disk costs. Shards are deleted after each pass so every put moves
// its body.
func BenchmarkProviderPut(b *testing.B) {
	diskDir := os.Getenv("JELLYFISH_BENCH_DIR")
	if diskDir == "" {
		diskDir = os.TempDir()
	}
	for _, st := range []struct{ name, base string }{{"disk", diskDir}, {"tmpfs", "/dev/shm"}} {
		b.Run("store="+st.name, func(b *testing.B) {
			dir, err := os.MkdirTemp(st.base, "jellyfish-bench-")
			if err != nil {
				b.Skipf("no %s: %v", st.base, err)
			}
			b.Cleanup(func() { os.RemoveAll(dir) })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			n, err := node.New(ctx, provider.NodeConfig(node.Config{DataDir: dir, ListenAddrs: nw127()}))
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			p, err := provider.Attach(ctx, n, provider.Config{DataDir: dir, QuotaBytes: 4 << 30})
			if err != nil {
				b.Fatal(err)
			}
			c, err := client.New(ctx, client.Config{DataDir: b.TempDir(), Bootstrap: n.Addrs(), ListenAddrs: nw127()})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			sc, err := c.Shards(benchKey(b))
			if err != nil {
				b.Fatal(err)
			}
			const size, perWorker, workers = 1 << 20, 8, 4
			pools := make([][][]byte, workers)
			for w := range pools {
				for range perWorker {
					buf := make([]byte, size)
					for i := range buf {
						buf[i] = byte(w*perWorker + i*7)
					}
					buf[0], buf[1] = byte(w), byte(len(pools[w]))
					pools[w] = append(pools[w], buf)
				}
			}
			lease := time.Now().Add(time.Hour)
			var next atomic.Int64
			b.SetBytes(size)
			b.SetParallelism(max(1, workers/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				pool := pools[(next.Add(1)-1)%workers]
				for i := 0; pb.Next(); i++ {
					data := pool[i%perWorker]
					id := codec.IDOf(data)
					if _, err := sc.Put(ctx, n.ID(), id, data, lease); err != nil {
						b.Error(err)
						return
					}
					if i%perWorker == perWorker-1 {
						for _, d := range pool {
							if err := p.Store().Delete(ctx, sc.Owner(), codec.IDOf(d)); err != nil {
								b.Error(err)
								return
							}
						}
					}
				}
			})
		})
	}
}

func benchKey(b *testing.B) crypto.PrivKey {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return k
}
