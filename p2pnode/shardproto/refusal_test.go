package shardproto

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestRefusalBudget: a peer's refusals are answered at once up to the
// burst and then at the refill rate; beyond that they are held, at most
// maxPeerHeld of one peer and maxHeld in all, and other peers keep their
// own budgets.
func TestRefusalBudget(t *testing.T) {
	r := newRefusals(time.Second)
	now := time.Unix(1_700_000_000, 0)
	a, b := peer.ID("a"), peer.ID("b")
	for i := range DefaultRefusalBurst {
		if r.take(a, now) {
			t.Fatalf("refusal %d of the burst held", i)
		}
	}
	if !r.take(a, now) {
		t.Fatal("the refusal after the burst was answered at once")
	}
	if r.take(b, now) {
		t.Fatal("another peer's first refusal was held")
	}
	r.release(a)
	// A second refills DefaultRefusalRate tokens.
	now = now.Add(time.Second)
	for i := range DefaultRefusalRate {
		if r.take(a, now) {
			t.Fatalf("refusal %d after a second held", i)
		}
	}
	held := 0
	for range 2 * maxPeerHeld {
		if r.take(a, now) {
			held++
		}
	}
	if held != maxPeerHeld {
		t.Fatalf("%d refusals of one peer held, want %d", held, maxPeerHeld)
	}
	if d, h := r.counts(); d != maxPeerHeld+1 || h != maxPeerHeld {
		t.Fatalf("counts: %d held in all, %d now; want %d and %d", d, h, maxPeerHeld+1, maxPeerHeld)
	}
	for range maxPeerHeld {
		r.release(a)
	}
	if _, h := r.counts(); h != 0 {
		t.Fatalf("%d held after every release", h)
	}

	// The total cap: many peers over budget.
	r = newRefusals(time.Second)
	total := 0
	for i := range 2 * maxHeld / maxPeerHeld {
		p := peer.ID(rune('A' + i))
		for range DefaultRefusalBurst {
			r.take(p, now)
		}
		for range maxPeerHeld {
			if r.take(p, now) {
				total++
			}
		}
	}
	if total != maxHeld {
		t.Fatalf("%d refusals held in all, want %d", total, maxHeld)
	}

	// No hold: everything at once.
	r = newRefusals(0)
	for range 2 * DefaultRefusalBurst {
		if r.take(a, now) {
			t.Fatal("held with a zero hold")
		}
	}
}

// TestRefusersAreForgotten: the peers counted stay bounded; a peer whose
// bucket refilled is dropped when room is needed.
func TestRefusersAreForgotten(t *testing.T) {
	r := newRefusals(time.Second)
	now := time.Unix(1_700_000_000, 0)
	for i := range maxRefusers {
		r.take(peer.ID(string(rune(i+1))), now)
	}
	// None refilled: a new peer is not counted.
	r.take(peer.ID("early"), now)
	if n := len(r.peers); n != maxRefusers {
		t.Fatalf("%d peers counted, want at most %d", n, maxRefusers)
	}
	now = now.Add(time.Minute)
	r.take(peer.ID("late"), now)
	if n := len(r.peers); n != 1 {
		t.Fatalf("%d peers counted after the refill, want 1", n)
	}
}
