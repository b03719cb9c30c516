package shardstore

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func TestPutStats(t *testing.T) {
	d := openStore(t, t.TempDir(), WithQuotaBytes(10000), WithClock(func() time.Time { return t0 }))
	rng := rand.New(rand.NewPCG(1, 2))
	lease := t0.Add(time.Hour)
	a, idA := newShard(rng, 3000)
	b, idB := newShard(rng, 5000)
	put(t, d, ownerA, a, idA, lease)
	put(t, d, ownerB, a, idA, lease) // held already: a new reference
	put(t, d, ownerA, b, idB, lease)
	c, idC := newShard(rng, 4000)
	if err := d.Put(context.Background(), ownerA, idC, int64(len(c)), bytes.NewReader(c), lease); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("Put over quota: %v, want ErrQuotaExceeded", err)
	}
	_, idOther := newShard(rng, 1000)
	if err := d.Put(context.Background(), ownerA, idOther, 1000, bytes.NewReader(c[:1000]), lease); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("Put of wrong bytes: %v, want ErrIntegrity", err)
	}
	want := PutStats{Puts: 3, Bytes: 11000, NewShards: 2, NewBytes: 8000}
	if got := d.PutStats(); got != want {
		t.Fatalf("PutStats = %+v, want %+v", got, want)
	}
}

// TestPutStatsInFlight checks that a put is counted in flight while its
// body is read and counted as done in the same snapshot that ends it.
func TestPutStatsInFlight(t *testing.T) {
	d := openStore(t, t.TempDir(), WithClock(func() time.Time { return t0 }))
	shard, id := newShard(rand.New(rand.NewPCG(3, 4)), 2000)
	started := make(chan struct{})
	release := make(chan struct{})
	r := &gatedReader{r: bytes.NewReader(shard), started: started, release: release}
	done := make(chan error, 1)
	go func() {
		done <- d.Put(context.Background(), ownerA, id, int64(len(shard)), r, t0.Add(time.Hour))
	}()
	<-started
	if got := d.PutStats(); got != (PutStats{InFlight: 1}) {
		t.Errorf("during the put: %+v, want one in flight", got)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := PutStats{Puts: 1, Bytes: 2000, NewShards: 1, NewBytes: 2000}
	if got := d.PutStats(); got != want {
		t.Errorf("after the put: %+v, want %+v", got, want)
	}
}

// gatedReader signals its first Read and blocks it until release closes.
type gatedReader struct {
	r        *bytes.Reader
	started  chan struct{}
	release  chan struct{}
	signaled bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if !g.signaled {
		g.signaled = true
		close(g.started)
		<-g.release
	}
	return g.r.Read(p)
}
