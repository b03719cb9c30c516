package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
)

// TestPunchCounterKeepsTheLatest: successful punches are remembered per
// peer with their time, failed ones only counted; past maxPunched peers
// the oldest is forgotten first.
func TestPunchCounterKeepsTheLatest(t *testing.T) {
	var c punchCounter
	base := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	id := func(i int) peer.ID { return peer.ID(fmt.Sprintf("peer-%d", i)) }
	end := func(i int, ok bool, at time.Time) {
		c.Trace(&holepunch.Event{Remote: id(i), Timestamp: at.UnixNano(), Evt: &holepunch.EndHolePunchEvt{Success: ok}})
	}
	end(0, false, base)
	if _, ok := c.punchedAt(id(0)); ok {
		t.Fatal("a failed punch was remembered")
	}
	for i := range maxPunched + 5 {
		end(i, true, base.Add(time.Duration(i)*time.Second))
	}
	// Peer 5 punched again: now the newest, so it stays.
	end(5, true, base.Add(time.Hour))
	end(maxPunched+5, true, base.Add(2*time.Hour))
	for i := range 5 {
		if _, ok := c.punchedAt(id(i)); ok {
			t.Errorf("peer %d, among the oldest, still remembered", i)
		}
	}
	if at, ok := c.punchedAt(id(5)); !ok || !at.Equal(base.Add(time.Hour)) {
		t.Errorf("peer 5: %v %v, want its second punch", at, ok)
	}
	if _, ok := c.punchedAt(id(6)); ok {
		t.Error("peer 6, then the oldest, still remembered")
	}
	if at, ok := c.punchedAt(id(maxPunched + 4)); !ok || !at.Equal(base.Add(time.Duration(maxPunched+4)*time.Second)) {
		t.Errorf("newest but one: %v %v", at, ok)
	}
	if got := c.get(); got.Succeeded != maxPunched+7 || got.Failed != 1 {
		t.Errorf("counts %+v", got)
	}
	if len(c.punched) != maxPunched {
		t.Errorf("%d peers kept, want %d", len(c.punched), maxPunched)
	}
}
