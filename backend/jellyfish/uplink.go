package jellyfish

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/rclone/rclone/fs"
)

// Shard puts share the uplink, and a holder resets a put whose body comes
// slower than its minimum rate (shardproto.DefaultMinRate, 256 KiB/s, after
// a 10 s allowance). Sixteen puts at once on a 5 Mbit/s uplink get
// 40 KB/s each, and every one of them misses its deadline: the upload
// fails however long it is given. So the puts in flight follow what each
// achieves, additive increase and multiplicative decrease as TCP does,
// against the time the holder gives a put (putDeadline: its 10 s allowance
// and the size at its minimum rate): a put that took less than a quarter
// of it, in a full window, lets one more run; one that took more than half
// lets one fewer; one that ran out of time halves the window. The
// allowance is what absorbs round trips: judged by its rate alone, a put
// of 0.7 MiB over an 80 ms path, a few round trips and a slow start on an
// idle connection, looks like a saturated uplink, and a window shrunk to
// one put on a 20 Mbit/s uplink carried 4.9 Mbit/s.
const (
	// putWindowStart is the window before anything was measured: small
	// enough that a 5 Mbit/s uplink meets the minimum rate on each.
	putWindowStart = 4
	// putMeasureMin is the smallest put whose rate says anything about
	// the uplink (smaller ones are mostly round trips); a smaller put in a
	// full window that took less than putQuick still shows room.
	putMeasureMin = 256 << 10
	putQuick      = 250 * time.Millisecond
	// putIdle: a put whose body has not been read for this long (its
	// holder takes nothing, or the body is all sent and the put waits for
	// the answer) sends nothing on the uplink and gives its place back, so
	// a stalled holder cannot hold the whole window.
	putIdle = 3 * time.Second
)

// putDeadline is the time a holder gives a put of size bytes to arrive:
// its header timeout and the size at its minimum rate.
func putDeadline(size int64) time.Duration {
	return shardproto.DefaultHeaderTimeout + time.Duration(float64(size)/shardproto.DefaultMinRate*float64(time.Second))
}

// putWindow bounds the shard puts in flight to a window that adapts to
// the rate each put achieves.
type putWindow struct {
	max int

	mu       sync.Mutex
	limit    int
	inFlight int
	changed  chan struct{} // closed and replaced when a place may be free
}

func newPutWindow(max int) *putWindow {
	return &putWindow{max: max, limit: min(putWindowStart, max), changed: make(chan struct{})}
}

// acquire waits for a place in the window, or for ctx to end. done must
// be called once with the put's size, how long it took and its error.
func (w *putWindow) acquire(ctx context.Context) (done func(size int64, took time.Duration, err error), err error) {
	for {
		w.mu.Lock()
		if w.inFlight < w.limit {
			w.inFlight++
			w.mu.Unlock()
			return w.done, nil
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// done gives a place back and moves the window by what the put showed.
func (w *putWindow) done(size int64, took time.Duration, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inFlight--
	w.adjust(size, took, err)
	w.wake()
}

// report moves the window by what a put showed after it gave its place
// back early (watchedBody): a put that then ran out of time still says
// the uplink is short.
func (w *putWindow) report(size int64, took time.Duration, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.adjust(size, took, err)
}

// leave gives a place back without a measurement.
func (w *putWindow) leave() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inFlight--
	w.wake()
}

// wake lets the puts waiting for a place look again; w.mu is held.
func (w *putWindow) wake() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// adjust moves the window by what a put showed; w.mu is held.
func (w *putWindow) adjust(size int64, took time.Duration, err error) {
	old := w.limit
	switch {
	case err != nil && isTimeout(err):
		w.limit = max(1, w.limit/2)
	case err != nil || took <= 0:
	case size < putMeasureMin:
		if took < putQuick && w.inFlight+1 >= w.limit {
			w.limit = min(w.max, w.limit+1)
		}
	default:
		switch deadline := putDeadline(size); {
		case took > deadline/2:
			w.limit = max(1, w.limit-1)
		case took < deadline/4 && w.inFlight+1 >= w.limit:
			// Only a full window says the uplink has room for more.
			w.limit = min(w.max, w.limit+1)
		}
	}
	if w.limit != old {
		fs.Debugf(nil, "jellyfish: shard puts in flight: %d (was %d)", w.limit, old)
	}
}

// watchedBody is a put's body that gives the put's window place back
// once it has not been read for putIdle; end stops the watch and reports
// whether the place was still held.
type watchedBody struct {
	r     io.Reader
	last  atomic.Int64 // unix nanoseconds of the last read
	timer *time.Timer
	w     *putWindow

	mu   sync.Mutex
	held bool
}

func (w *putWindow) watch(r io.Reader) *watchedBody {
	b := &watchedBody{r: r, w: w, held: true}
	b.last.Store(time.Now().UnixNano())
	b.timer = time.AfterFunc(putIdle, b.check)
	return b
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.last.Store(time.Now().UnixNano())
	return b.r.Read(p)
}

func (b *watchedBody) check() {
	idle := time.Since(time.Unix(0, b.last.Load()))
	if idle < putIdle {
		b.timer.Reset(putIdle - idle)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held {
		b.held = false
		b.w.leave()
	}
}

// end stops the watch; it reports whether the put still held its place
// (then the caller gives it back with done).
func (b *watchedBody) end() bool {
	b.timer.Stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	held := b.held
	b.held = false
	return held
}

// isTimeout reports whether err is a deadline running out (a network
// timeout), not a refusal or a cancellation.
func isTimeout(err error) bool {
	var ne net.Error // os.ErrDeadlineExceeded is one too
	return errors.As(err, &ne) && ne.Timeout()
}
