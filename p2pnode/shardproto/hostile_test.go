package shardproto

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p/core/network"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for the network
	}
}

// readUntilClosed reads from st until an error; it reports how long the
// holder took to end the stream. The guard deadline only bounds a broken
// test.
func readUntilClosed(st network.Stream, guard time.Duration) (time.Duration, error) {
	start := time.Now()
	st.SetReadDeadline(start.Add(guard))
	_, err := io.Copy(io.Discard, st)
	return time.Since(start), err
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestHugeLengthPrefixIsReset(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	before := heapAlloc()
	for _, n := range []uint32{0xffffffff, MaxHeaderSize + 1, 0} {
		st, err := e.ch.NewStream(ctx, e.holder.ID(), ID)
		if err != nil {
			t.Fatal(err)
		}
		var pre [4]byte
		binary.BigEndian.PutUint32(pre[:], n)
		st.Write(pre[:])
		took, err := readUntilClosed(st, 10*time.Second)
		st.Reset()
		if err == nil || took > 5*time.Second {
			t.Fatalf("length %d: stream ended with %v after %v, want a prompt reset", n, err, took)
		}
	}
	if grew := int64(heapAlloc()) - int64(before); grew > 8<<20 {
		t.Fatalf("heap grew by %d bytes after huge length prefixes", grew)
	}
	// An oversized put announced in a valid header gets a clear answer.
	data, id := shard(1, 10)
	if _, err := e.client.PutReader(ctx, e.holder.ID(), id, 1<<40, bytes.NewReader(data), time.Now().Add(time.Hour)); !errors.Is(err, shardstore.ErrTooLarge) {
		t.Fatalf("1 TiB put: %v", err)
	}
	// The holder still serves honest requests.
	if _, err := e.client.Put(ctx, e.holder.ID(), id, data, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestSlowlorisTimesOut(t *testing.T) {
	e := newEnv(t, nil, WithHeaderTimeout(300*time.Millisecond), WithMinRate(1<<30))
	ctx := ctxT(t)
	// A header that never completes.
	st, err := e.ch.NewStream(ctx, e.holder.ID(), ID)
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte{0, 0})
	took, err := readUntilClosed(st, 10*time.Second)
	st.Reset()
	if err == nil || took > 3*time.Second {
		t.Fatalf("stalled header: ended with %v after %v", err, took)
	}

	// A body that stops halfway: the holder resets at its body deadline
	// and keeps nothing, reservation included.
	data, id := shard(2, 200_000)
	ts := time.Now()
	lease := ts.Add(time.Hour)
	sig, _ := e.ownerKey.Sign(putSigned(e.holder.ID(), id, int64(len(data)), lease, ts))
	req := &request{typ: msgPut, id: id, size: int64(len(data)), lease: lease, ts: ts, key: e.client.keyBytes, sig: sig}
	st, err = e.ch.NewStream(ctx, e.holder.ID(), ID)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	if err := writeFrame(st, req.encode()); err != nil {
		t.Fatal(err)
	}
	st.Write(data[:100_000])
	waitFor(t, 5*time.Second, "space reserved for the body", func() bool { return e.disk.Usage().Reserved > 0 })
	took, err = readUntilClosed(st, 10*time.Second)
	if err == nil || took > 3*time.Second {
		t.Fatalf("stalled body: ended with %v after %v", err, took)
	}
	waitFor(t, 5*time.Second, "reservation released", func() bool { return e.disk.Usage().Reserved == 0 })
	if _, err := e.disk.Stat(ctx, id); !errors.Is(err, shardstore.ErrNotFound) {
		t.Fatalf("half shard stored: %v", err)
	}
}

func TestStreamFloodStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("stream flood is slow")
	}
	const flood = 3000
	e := newEnv(t, nil, WithHeaderTimeout(time.Second))
	attacker := newHost(t)
	connect(t, attacker, e.holder)
	ctx := ctxT(t)

	// Warm up honest traffic so its lazily started goroutines count in
	// the baseline.
	warm, wid := shard(100, 1000)
	if _, err := e.client.Put(ctx, e.holder.ID(), wid, warm, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	baseG := runtime.NumGoroutine()
	baseHeap := heapAlloc()

	floodCtx, stopFlood := context.WithCancel(ctx)
	defer stopFlood()
	var wg sync.WaitGroup
	var peakG int
	var mu sync.Mutex
	for i := 0; i < flood; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := attacker.NewStream(floodCtx, e.holder.ID(), ID)
			if err != nil {
				return // refused by the holder's limits
			}
			st.Write([]byte{0, 0, 1}) // a header that never completes
			readUntilClosed(st, 20*time.Second)
			st.Reset()
		}()
	}
	// Honest traffic works while the flood is on.
	for i := 0; i < 5; i++ {
		data, id := shard(uint64(200+i), 100_000)
		if _, err := e.client.Put(ctx, e.holder.ID(), id, data, time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("honest put %d during flood: %v", i, err)
		}
		r, _, err := e.client.Get(ctx, e.holder.ID(), id)
		if err != nil {
			t.Fatalf("honest get during flood: %v", err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("honest get during flood: %v", err)
		}
		mu.Lock()
		peakG = max(peakG, runtime.NumGoroutine())
		mu.Unlock()
	}
	wg.Wait()
	gs := e.svc.gate.stats()
	// Half headers never reach a serving slot: only honest requests are
	// served, and the attacker holds at most its per-peer share of the
	// pending places.
	if gs.PeakServing > 2 || gs.PeakPending > DefaultMaxPeerPending+2 {
		t.Fatalf("under the flood: %d streams served and %d pending at once, per-peer pending cap %d", gs.PeakServing, gs.PeakPending, DefaultMaxPeerPending)
	}
	peakServed := gs.PeakServing
	peakHeap := heapAlloc()
	t.Logf("goroutines: baseline %d, peak during flood %d (the attacker's own included); holder served at most %d streams at once; heap baseline %d MiB, after flood %d MiB",
		baseG, peakG, peakServed, baseHeap>>20, peakHeap>>20)
	waitFor(t, 15*time.Second, "goroutines back to baseline", func() bool {
		return runtime.NumGoroutine() <= baseG+20
	})
	if grew := int64(peakHeap) - int64(baseHeap); grew > 64<<20 {
		t.Fatalf("heap grew by %d MiB under the flood", grew>>20)
	}
}
