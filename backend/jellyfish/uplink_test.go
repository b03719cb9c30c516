package jellyfish

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// TestPutWindow: the window starts at putWindowStart, a put that took
// more than half the holder's deadline shrinks it by one, a timeout
// halves it, a put that took less than a quarter, in a full window, grows
// it by one, within 1 and the maximum; acquire waits while the window is
// full. A put slowed by round trips, well inside its deadline, does not
// shrink it.
func TestPutWindow(t *testing.T) {
	ctx := context.Background()
	w := newPutWindow(16)
	var dones []func(int64, time.Duration, error)
	for range putWindowStart {
		d, err := w.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dones = append(dones, d)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := w.acquire(short); err == nil {
		t.Fatal("acquired a place beyond the window")
	}
	const size = 1 << 20
	fast := putDeadline(size)/4 - time.Millisecond
	slow := putDeadline(size)/2 + time.Millisecond
	// 1 MiB in 3 s is 2.8 Mbit/s, under twice the holder's minimum rate
	// (which shrank the window before), but under a quarter of the 14 s
	// the holder gives it: no change.
	latent := 3 * time.Second
	// A fast put in a full window: one more.
	dones[0](size, fast, nil)
	if w.limit != putWindowStart+1 {
		t.Fatalf("after a fast put: window %d", w.limit)
	}
	// A fast put with the window not full says nothing.
	dones[1](size, fast, nil)
	if w.limit != putWindowStart+1 {
		t.Fatalf("after a fast put in a window not full: %d", w.limit)
	}
	// A put slowed by round trips, inside its deadline: no change.
	d0, _ := w.acquire(ctx)
	d0(size, latent, nil)
	if w.limit != putWindowStart+1 {
		t.Fatalf("after a put slowed by round trips: window %d", w.limit)
	}
	// A slow put: one fewer.
	dones[2](size, slow, nil)
	if w.limit != putWindowStart {
		t.Fatalf("after a slow put: window %d", w.limit)
	}
	// A put that ran out of time: half.
	dones[3](size, slow, fmt.Errorf("put: %w", os.ErrDeadlineExceeded))
	if w.limit != putWindowStart/2 {
		t.Fatalf("after a timeout: window %d", w.limit)
	}
	// A small put that took long, and other errors, say nothing.
	d, _ := w.acquire(ctx)
	d(putMeasureMin-1, time.Hour, nil)
	d, _ = w.acquire(ctx)
	d(size, time.Hour, fmt.Errorf("refused"))
	if w.limit != putWindowStart/2 {
		t.Fatalf("after a small put and a refusal: window %d", w.limit)
	}
	// A put that gave its place back early and then timed out still
	// halves the window, and frees no place twice.
	before := w.inFlight
	w.report(size, slow, os.ErrDeadlineExceeded)
	if w.limit != putWindowStart/4 || w.inFlight != before {
		t.Fatalf("after a late timeout: window %d, %d in flight (was %d)", w.limit, w.inFlight, before)
	}
	// A small put that finished quickly in a full window shows room.
	d, _ = w.acquire(ctx)
	d(putMeasureMin-1, putQuick/2, nil)
	if w.limit != putWindowStart/4+1 {
		t.Fatalf("after a quick small put: window %d", w.limit)
	}
	// Never below one.
	for range 5 {
		d, _ := w.acquire(ctx)
		d(size, slow, os.ErrDeadlineExceeded)
	}
	if w.limit != 1 {
		t.Fatalf("window %d after many timeouts", w.limit)
	}
	// A waiter gets the place a put gives back.
	d, _ = w.acquire(ctx)
	got := make(chan error, 1)
	go func() {
		d2, err := w.acquire(ctx)
		if err == nil {
			d2(0, 0, nil)
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	d(size, fast, nil)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// Rounds of a full window of fast puts grow it by one a round, never
	// above the maximum.
	for range 40 {
		var ds []func(int64, time.Duration, error)
		for range w.limit {
			d, _ := w.acquire(ctx)
			ds = append(ds, d)
		}
		for _, d := range ds {
			d(size, fast, nil)
		}
	}
	if w.limit != 16 {
		t.Fatalf("window %d after many fast puts, max 16", w.limit)
	}
}

// TestPutWindowIdleBody: a put whose body is not read for putIdle gives
// its place back, so the next put starts; end then reports the place as
// given back, and a body being read keeps its place.
func TestPutWindowIdleBody(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := newPutWindow(1)
	// The first put's place: the watch below gives it back.
	if _, err := w.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	body := w.watch(strings.NewReader("never read"))
	next, err := w.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < putIdle {
		t.Fatalf("the next put started after %v, before the body was idle for %v", waited, putIdle)
	}
	if body.end() {
		t.Fatal("end reports the place held after it was given back")
	}
	// A body read all along keeps its place.
	read := w.watch(strings.NewReader(strings.Repeat("x", 1<<20)))
	stop := time.Now().Add(putIdle + time.Second)
	for time.Now().Before(stop) {
		var b [1]byte
		read.Read(b[:])
		time.Sleep(100 * time.Millisecond)
	}
	if !read.end() {
		t.Fatal("a body read all along lost its place")
	}
	next(0, 0, nil)
}

// TestUndialled: a put whose holder could not be dialled (the swarm's
// dial error, or its backoff, under the shard client's wrapping) does not
// count as a try; a holder's refusal does.
func TestUndialled(t *testing.T) {
	if !undialled(fmt.Errorf("shardproto: open stream to x: %w", &swarm.DialError{})) {
		t.Error("a dial error counted as a try")
	}
	if !undialled(fmt.Errorf("shardproto: open stream to x: failed to dial: %w", swarm.ErrDialBackoff)) {
		t.Error("a dial backoff counted as a try")
	}
	if undialled(fmt.Errorf("shardproto: holder refused: %w", os.ErrDeadlineExceeded)) {
		t.Error("a put that reached its holder did not count as a try")
	}
}
