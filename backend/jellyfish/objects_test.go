package jellyfish

import (
	"crypto/rand"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/placement"
)

func testPeers(t *testing.T, n int) []peer.ID {
	var out []peer.ID
	for range n {
		_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPublicKey(pub)
		out = append(out, id)
	}
	return out
}

func TestPlacementSpreadsAndStaysDistinct(t *testing.T) {
	nodes := testPeers(t, 10)
	for seg := range uint64(5) {
		seen := map[peer.ID]bool{}
		for _, p := range place(nodes, make([]placement.Node, len(nodes)), 1, 0, seg, 8) {
			if seen[p] {
				t.Fatalf("segment %d: node used twice with enough nodes", seg)
			}
			seen[p] = true
		}
	}
	// Fewer nodes than shards: every node gets its fair share.
	few := nodes[:3]
	count := map[peer.ID]int{}
	for _, p := range place(few, make([]placement.Node, len(few)), 1, 0, 0, 8) {
		count[p]++
	}
	for _, n := range few {
		if c := count[n]; c < 2 || c > 3 {
			t.Fatalf("uneven spread: %v", count)
		}
	}
}
