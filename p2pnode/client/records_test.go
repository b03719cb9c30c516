package client

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestQuorumMark: the mark believed is the highest that min(quorum,
// answers) peers reach, so fewer liars than that cannot raise it.
func TestQuorumMark(t *testing.T) {
	m := func(marks ...uint64) map[peer.ID]uint64 {
		out := map[peer.ID]uint64{}
		for i, v := range marks {
			out[peer.ID(rune('a'+i))] = v
		}
		return out
	}
	for _, c := range []struct {
		marks map[peer.ID]uint64
		want  uint64
	}{
		{m(), 0},
		{m(5), 5},
		{m(0, 9), 0},
		{m(1, 1, 1, 0, 0), 1},
		{m(0, 0, 0, 0, 99, 99), 0}, // two liars
		{m(0, 0, 0, 99, 99, 99), 99},
		{m(7, 1, 1, 1), 1},
		{m(3, 4, 5), 3},
	} {
		if got := QuorumMark(c.marks, 3); got != c.want {
			t.Errorf("QuorumMark(%v) = %d, want %d", c.marks, got, c.want)
		}
	}
}
