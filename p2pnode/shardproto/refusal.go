package shardproto

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A refused stream costs the holder about what it costs the peer: the
// stream is opened, negotiated, admitted and reset (or its request read,
// checked and answered Busy), and the peer opens the next one as soon as
// it sees the refusal. A peer that keeps streams waiting or served up to
// its caps and opens more as fast as they are refused (make
// bench-hostile's attacks) thus costs the holder as much CPU as it spends
// itself. So a peer refused more often than a client backing off ever is
// gets its refusals late: the stream is left open, unread, for
// DefaultRefusalHold before it is reset with the code clients retry on, or
// before its Busy answer is written; its place or serving slot is given
// back at once. A held stream costs the holder a timer and the stream's
// bookkeeping; the peer's worker waiting on it opens nothing meanwhile.
const (
	// DefaultRefusalRate and DefaultRefusalBurst are the refusals a peer
	// is answered at once: a token bucket of DefaultRefusalBurst refilled
	// at DefaultRefusalRate per second. A client retries a refused request
	// three times over 420 ms (retryRefused), so even one putting many
	// shards at a full holder stays well inside.
	DefaultRefusalRate  = 16
	DefaultRefusalBurst = 64
	// DefaultRefusalHold is how long the refusals beyond the budget are
	// held.
	DefaultRefusalHold = 2 * time.Second
	// maxHeld and maxPeerHeld bound the streams held at once, in total
	// and per peer; beyond them refusals are answered at once.
	// SetServiceLimits leaves room for them in the resource manager.
	maxHeld     = DefaultMaxPending + DefaultMaxStreams
	maxPeerHeld = DefaultMaxPeerPending + DefaultMaxPeerStreams
	// maxRefusers bounds the peers whose refusals are counted; past it,
	// peers whose bucket is full again are forgotten, and a new peer is
	// not counted while none is.
	maxRefusers = 4096
)

// refusals counts each peer's recent refusals and holds those beyond its
// budget.
type refusals struct {
	hold        time.Duration
	rate, burst float64 // DefaultRefusalRate and DefaultRefusalBurst

	mu    sync.Mutex
	peers map[peer.ID]*refuser
	held  int
	// delayed counts the refusals held so far.
	delayed int64
}

type refuser struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
	held   int
}

func newRefusals(hold time.Duration) *refusals {
	return &refusals{hold: hold, rate: DefaultRefusalRate, burst: DefaultRefusalBurst, peers: make(map[peer.ID]*refuser)}
}

// take spends one of p's refusal tokens and reports whether the refusal
// is to be held; a held refusal must be given back with release.
func (r *refusals) take(p peer.ID, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.peers[p]
	if f == nil {
		if len(r.peers) >= maxRefusers {
			r.forget(now)
		}
		if len(r.peers) >= maxRefusers {
			// Too many peers over budget to count another: its
			// refusals are answered at once.
			return false
		}
		f = &refuser{tokens: r.burst, at: now}
		r.peers[p] = f
	}
	r.refill(f, now)
	if f.tokens >= 1 || r.hold <= 0 || f.held >= maxPeerHeld || r.held >= maxHeld {
		f.tokens = max(f.tokens-1, 0)
		return false
	}
	f.held++
	r.held++
	r.delayed++
	return true
}

func (r *refusals) refill(f *refuser, now time.Time) {
	if d := now.Sub(f.at); d > 0 {
		f.tokens = min(r.burst, f.tokens+d.Seconds()*r.rate)
		f.at = now
	}
}

// release ends a held refusal of p.
func (r *refusals) release(p peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held--
	if f := r.peers[p]; f != nil {
		f.held--
	}
}

// counts returns the refusals held so far and now.
func (r *refusals) counts() (delayed int64, held int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delayed, r.held
}

// forget drops the peers holding nothing whose bucket is full again.
func (r *refusals) forget(now time.Time) {
	for p, f := range r.peers {
		r.refill(f, now)
		if f.held == 0 && f.tokens >= r.burst {
			delete(r.peers, p)
		}
	}
}

// answerLate writes the held answer r to st after the hold, and closes
// st; take must have reported the hold.
func (s *Service) answerLate(st network.Stream, p peer.ID, typ byte, r *response) {
	time.AfterFunc(s.refusals.hold, func() {
		defer s.refusals.release(p)
		st.SetWriteDeadline(time.Now().Add(s.cfg.headerTimeout))
		if err := writeFrame(st, r.encode(typ)); err != nil {
			st.Reset()
			return
		}
		st.Close()
	})
}

// refuse resets st with the code clients retry on: at once, or after the
// hold if its peer is over its refusal budget. It does not block.
func (s *Service) refuse(st network.Stream, p peer.ID) {
	if !s.refusals.take(p, time.Now()) {
		st.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	// Nothing is read from the stream meanwhile: what the peer sends
	// stays in the stream's receive window, which the resource manager
	// bounds.
	time.AfterFunc(s.refusals.hold, func() {
		st.ResetWithError(network.StreamResourceLimitExceeded)
		s.refusals.release(p)
	})
}
