package client

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestHolderMemoBounded: past memoPrune answers, the answers older than
// findHolderMemo are dropped when a new one is kept; answers still fresh
// are all kept.
func TestHolderMemoBounded(t *testing.T) {
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &holderRouting{now: func() time.Time { return now }}
	for i := range memoPrune {
		r.remember(peer.ID(fmt.Sprintf("fresh-%d", i)), foundHolder{at: now})
	}
	r.remember("one more", foundHolder{at: now})
	if len(r.memo) != memoPrune+1 {
		t.Fatalf("%d answers kept, want all %d fresh ones", len(r.memo), memoPrune+1)
	}
	if _, ok := r.remembered("fresh-0"); !ok {
		t.Fatal("a fresh answer is not remembered")
	}
	now = now.Add(findHolderMemo + time.Second)
	if _, ok := r.remembered("fresh-0"); ok {
		t.Fatal("an answer past findHolderMemo is still remembered")
	}
	r.remember("late", foundHolder{at: now})
	if len(r.memo) != 1 {
		t.Fatalf("%d answers kept after the expired ones went, want 1", len(r.memo))
	}
}
