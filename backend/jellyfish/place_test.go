package jellyfish

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// placeBefore is place as it was written before the index arithmetic moved
// to the placement package; the delegation must not change any choice.
func placeBefore(nodes []peer.ID, seg uint64, total int) []peer.ID {
	out := make([]peer.ID, total)
	start := int((seg * uint64(total)) % uint64(len(nodes)))
	for i := range out {
		out[i] = nodes[(start+i)%len(nodes)]
	}
	return out
}

func TestPlaceDelegationUnchanged(t *testing.T) {
	all := testPeers(t, 70)
	for _, n := range []int{1, 2, 3, 7, 29, 30, 31, 60, 70} {
		for _, total := range []int{1, 3, 30} {
			for _, seg := range []uint64{0, 1, 2, 5, 1 << 40} {
				got, want := place(all[:n], 0, seg, total), placeBefore(all[:n], seg, total)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%d nodes, segment %d, %d shards: shard %d on %s, was %s", n, seg, total, i, got[i].ShortString(), want[i].ShortString())
					}
				}
			}
		}
	}
}
