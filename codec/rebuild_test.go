package codec

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestRebuildShards: from any k shards of a segment (a corrupt and a
// foreign one among those offered) every other shard is rebuilt byte for
// byte, without the key; with k-1 good ones it fails as too few.
func TestRebuildShards(t *testing.T) {
	for _, size := range []int{0, 1, 1000, 3*4096 + 17} {
		p := Params{K: 4, M: 3, SegmentSize: 4096, Compression: CompressNone}
		e := encodeAll(t, p, testKey(1), bytes.NewReader(randomBytes(uint64(size), size)))
		other := encodeAll(t, p, testKey(2), bytes.NewReader(randomBytes(99, 100)))
		rng := rand.New(rand.NewPCG(uint64(size), 7))
		for seg, shards := range e.shards {
			perm := rng.Perm(p.Total())
			keep, lost := perm[:p.K], perm[p.K:]
			offered := [][]byte{other.shards[0][0]}
			corrupt := bytes.Clone(shards[lost[0]])
			corrupt[len(corrupt)-1] ^= 1
			offered = append(offered, corrupt)
			for _, i := range keep {
				offered = append(offered, shards[i])
			}
			got, err := RebuildShards(e.layout, seg, offered, lost)
			if err != nil {
				t.Fatalf("size %d segment %d: %v", size, seg, err)
			}
			for j, i := range lost {
				if !bytes.Equal(got[j], shards[i]) {
					t.Fatalf("size %d segment %d: shard %d rebuilt differently", size, seg, i)
				}
			}
			_, err = RebuildShards(e.layout, seg, offered[:len(offered)-1], lost)
			var tf *TooFewShardsError
			if !errors.As(err, &tf) || tf.Good != p.K-1 {
				t.Fatalf("size %d segment %d with k-1 shards: %v", size, seg, err)
			}
		}
	}
}
