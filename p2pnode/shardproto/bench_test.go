package shardproto

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

const benchShardSize = 1 << 20

type benchTransport struct {
	name string
	opts []libp2p.Option
}

var benchTransports = []benchTransport{
	{"tcp-noise-yamux", []libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
	}},
	{"tcp-tls-yamux", []libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
	}},
	{"quic", []libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"),
		libp2p.Transport(libp2pquic.NewTransport),
	}},
}

func benchHosts(b *testing.B, tr benchTransport) (holder, client host.Host) {
	b.Helper()
	mk := func() host.Host {
		h, err := libp2p.New(tr.opts...)
		if err != nil {
			b.Fatalf("%s: %v", tr.name, err)
		}
		b.Cleanup(func() { h.Close() })
		return h
	}
	holder, client = mk(), mk()
	connect(b, client, holder)
	return holder, client
}

// shmDir returns a directory on tmpfs, so the benchmark measures the
// protocol rather than the disk.
func shmDir(b *testing.B) string {
	b.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "jellyfish-bench-")
	if err != nil {
		b.Skipf("no /dev/shm: %v", err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// benchConcurrency is how many puts a parallel benchmark keeps in flight:
// an owner uploads the k+m shards of a segment at once.
const benchConcurrency = 4

// BenchmarkShardPut stores 1 MiB shards on a holder over the shard
// protocol: signed request, holder's quota check, body, hash verification,
// atomic write to tmpfs, signed receipt checked by the client. "serial"
// has one put in flight, "parallel" benchConcurrency. Each worker deletes
// its shards from the holder's store after a pass over its pool, so every
// put moves the body; that delete is counted in the time.
func BenchmarkShardPut(b *testing.B) {
	const perWorker = 8
	type item struct {
		data []byte
		id   codec.ShardID
	}
	pools := make([][]item, benchConcurrency)
	for w := range pools {
		pools[w] = make([]item, perWorker)
		for i := range pools[w] {
			pools[w][i].data, pools[w][i].id = shard(uint64(1000+w*perWorker+i), benchShardSize)
		}
	}
	for _, tr := range benchTransports {
		for _, mode := range []string{"serial", "parallel"} {
			b.Run(tr.name+"/"+mode, func(b *testing.B) {
				holder, ch := benchHosts(b, tr)
				disk, err := shardstore.New(shmDir(b), shardstore.WithQuotaBytes(4<<30))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { disk.Close() })
				svc, err := NewService(holder, disk)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { svc.Close() })
				c, err := NewClient(ch, ed25519Key(b))
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				lease := time.Now().Add(time.Hour)
				var next atomic.Int64
				worker := func(more func() bool) {
					pool := pools[(next.Add(1)-1)%benchConcurrency]
					for i := 0; more(); i++ {
						it := pool[i%perWorker]
						if _, err := c.Put(ctx, holder.ID(), it.id, it.data, lease); err != nil {
							b.Error(err)
							return
						}
						if i%perWorker == perWorker-1 {
							for _, it := range pool {
								if err := disk.Delete(ctx, c.Owner(), it.id); err != nil {
									b.Error(err)
									return
								}
							}
						}
					}
				}
				b.SetBytes(benchShardSize)
				b.ResetTimer()
				if mode == "serial" {
					n := 0
					worker(func() bool { n++; return n <= b.N })
					return
				}
				b.SetParallelism(benchConcurrency / runtime.GOMAXPROCS(0))
				b.RunParallel(func(pb *testing.PB) { worker(pb.Next) })
			})
		}
	}
}

const rawProto = "/jellyfish/bench/raw/1.0.0"

// BenchmarkRawStream pushes the same 1 MiB bodies over a bare libp2p
// stream per shard (write, close, one-byte answer), with the same
// concurrency as BenchmarkShardPut: the ceiling the shard protocol is
// measured against.
func BenchmarkRawStream(b *testing.B) {
	data, _ := shard(1000, benchShardSize)
	for _, tr := range benchTransports {
		for _, mode := range []string{"serial", "parallel"} {
			b.Run(tr.name+"/"+mode, func(b *testing.B) {
				holder, ch := benchHosts(b, tr)
				holder.SetStreamHandler(rawProto, func(s network.Stream) {
					if _, err := io.Copy(io.Discard, s); err != nil {
						s.Reset()
						return
					}
					s.Write([]byte{1})
					s.Close()
				})
				ctx := context.Background()
				worker := func(more func() bool) {
					ack := make([]byte, 1)
					for more() {
						s, err := ch.NewStream(ctx, holder.ID(), rawProto)
						if err != nil {
							b.Error(err)
							return
						}
						if _, err := s.Write(data); err != nil {
							b.Error(err)
							return
						}
						s.CloseWrite()
						if _, err := io.ReadFull(s, ack); err != nil {
							b.Error(err)
							return
						}
						s.Close()
					}
				}
				b.SetBytes(benchShardSize)
				b.ResetTimer()
				if mode == "serial" {
					n := 0
					worker(func() bool { n++; return n <= b.N })
					return
				}
				b.SetParallelism(benchConcurrency / runtime.GOMAXPROCS(0))
				b.RunParallel(func(pb *testing.PB) { worker(pb.Next) })
			})
		}
	}
}

// TestTransports runs a put, a whole get, a range get and an integrity
// refusal over every benchmarked transport (QUIC closes streams
// differently from yamux).
func TestTransports(t *testing.T) {
	for _, tr := range benchTransports {
		t.Run(tr.name, func(t *testing.T) {
			mk := func() host.Host {
				h, err := libp2p.New(tr.opts...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { h.Close() })
				return h
			}
			holder, ch := mk(), mk()
			connect(t, ch, holder)
			disk, err := shardstore.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer disk.Close()
			svc, err := NewService(holder, disk)
			if err != nil {
				t.Fatal(err)
			}
			defer svc.Close()
			c, err := NewClient(ch, ed25519Key(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctxT(t)
			// A shard the holder has is answered at once; the client stops
			// sending within a flow-control window on every transport.
			big, bigID := shard(400, 3<<20)
			if _, err := c.Put(ctx, holder.ID(), bigID, big, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			cr := &countReader{r: bytes.NewReader(big)}
			if _, err := c.PutReader(ctx, holder.ID(), bigID, int64(len(big)), cr, time.Now().Add(2*time.Hour)); err != nil {
				t.Fatalf("duplicate put: %v", err)
			}
			if n := cr.n.Load(); n > maxWasted {
				t.Fatalf("duplicate put sent %d body bytes", n)
			}
			for i := 0; i < 20; i++ {
				data, id := shard(uint64(300+i), 300_000)
				if _, err := c.Put(ctx, holder.ID(), id, data, time.Now().Add(time.Hour)); err != nil {
					t.Fatalf("put %d: %v", i, err)
				}
				r, _, err := c.Get(ctx, holder.ID(), id)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("get %d: %v", i, err)
				}
				if b, err := c.GetRange(ctx, holder.ID(), id, 1000, 50_000); err != nil || !bytes.Equal(b, data[1000:51_000]) {
					t.Fatalf("range %d: %v", i, err)
				}
				bad := bytes.Clone(data)
				bad[7] ^= 1
				if _, err := c.Put(ctx, holder.ID(), codec.IDOf([]byte{byte(i)}), bad, time.Now().Add(time.Hour)); !errors.Is(err, ErrIntegrity) {
					t.Fatalf("mismatching put %d: %v", i, err)
				}
			}
		})
	}
}
