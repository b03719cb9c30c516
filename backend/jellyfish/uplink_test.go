package jellyfish

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// TestPutWindow: the window starts at putWindowStart, a put that kept
// less than the floor shrinks it by one, a timeout halves it, a fast put
// in a full window grows it by one, within 1 and the maximum; acquire
// waits while the window is full.
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
	fast := time.Duration(float64(size) / (4 * putRateFloor) * float64(time.Second))
	slow := time.Duration(float64(size) / (putRateFloor / 2) * float64(time.Second))
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
	// Small puts and other errors say nothing.
	d, _ := w.acquire(ctx)
	d(putMeasureMin-1, time.Hour, nil)
	d, _ = w.acquire(ctx)
	d(size, time.Hour, fmt.Errorf("refused"))
	if w.limit != putWindowStart/2 {
		t.Fatalf("after a small put and a refusal: window %d", w.limit)
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
