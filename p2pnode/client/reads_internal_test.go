package client

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
)

// testReadsHost returns a reads host beside a main host of its own, both
// closed when the test ends.
func testReadsHost(t *testing.T) *readsHost {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	main, err := node.NewHost(priv, node.HostConfig{ConnLow: 10, ConnHigh: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { main.Close() })
	r, err := newReadsHost(main, node.NoCongestion, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestReadsPeersBounded: past readsPeersSwept holders the reads host
// forgets the dial states whose retry time has passed, and keeps those
// still waiting out a failure and those being dialled.
func TestReadsPeersBounded(t *testing.T) {
	r := testReadsHost(t)
	now := time.Now()
	for i := range readsPeersSwept {
		s := &readsPeer{retry: now.Add(-time.Second)}
		switch {
		case i%2 == 1:
			s.retry = now.Add(time.Minute)
		case i == 0:
			s.dialing = true
		}
		r.peers[peer.ID(fmt.Sprintf("holder-%d", i))] = s
	}
	// A new holder with no address the main host knows: swept first,
	// then remembered as failed.
	fresh := peer.ID("holder-new")
	r.dial(fresh)
	if got, want := len(r.peers), readsPeersSwept/2+1+1; got != want {
		t.Fatalf("%d dial states kept, want %d", got, want)
	}
	if s := r.peers[fresh]; s == nil || !s.retry.After(now) {
		t.Fatalf("the new holder's state: %+v", s)
	}
	if s := r.peers["holder-0"]; s == nil || !s.dialing {
		t.Fatal("a holder being dialled was forgotten")
	}
	if r.peers["holder-2"] != nil || r.peers["holder-1"] == nil {
		t.Fatal("the sweep kept a passed retry or dropped a pending one")
	}
	// Below the bound nothing is swept.
	r.peers["holder-2"] = &readsPeer{retry: now.Add(-time.Second)}
	r.dial(peer.ID("holder-new-2"))
	if r.peers["holder-2"] == nil {
		t.Fatal("swept below the bound")
	}
}

// TestReadsRetryAfterFailure: a holder the reads host could not dial is
// not tried again until readsRetry has passed: a nanosecond before, its
// state stands; at readsRetry, it is tried (here it still has no address,
// so the try fails at once and sets a new retry time).
func TestReadsRetryAfterFailure(t *testing.T) {
	r := testReadsHost(t)
	start := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	now := start
	r.now = func() time.Time { return now }
	holder := peer.ID("holder")
	r.dial(holder)
	if got := r.peers[holder].retry; !got.Equal(start.Add(readsRetry)) {
		t.Fatalf("retry at %v, want %v", got, start.Add(readsRetry))
	}
	now = start.Add(readsRetry - time.Nanosecond)
	r.dial(holder)
	if got := r.peers[holder].retry; !got.Equal(start.Add(readsRetry)) {
		t.Fatalf("tried again a nanosecond early: retry now %v", got)
	}
	now = start.Add(readsRetry)
	r.dial(holder)
	if got := r.peers[holder].retry; !got.Equal(now.Add(readsRetry)) {
		t.Fatalf("not tried again at readsRetry: retry %v, want %v", got, now.Add(readsRetry))
	}
}
