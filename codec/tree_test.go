package codec

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestTreeProveVerify(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, LeafSize - 1, LeafSize, LeafSize + 1, 5*LeafSize + 77, 64 * LeafSize} {
		shard := make([]byte, size)
		for i := range shard {
			shard[i] = byte(rng.Uint32())
		}
		tree, id := Tree(shard)
		if id != IDOf(shard) {
			t.Fatalf("size %d: tree root %s differs from IDOf %s", size, id.Short(), IDOf(shard).Short())
		}
		if len(tree) != TreeSize(size) {
			t.Fatalf("size %d: tree len %d, TreeSize %d", size, len(tree), TreeSize(size))
		}
		if size == 0 {
			if _, err := VerifyRange(id, nil, 0, 0); err == nil {
				t.Fatal("empty range verified")
			}
			continue
		}
		ranges := [][2]int64{{0, int64(size)}, {int64(size) - 1, 1}}
		if size >= 3 {
			ranges = append(ranges, [2]int64{int64(size) / 3, int64(size) / 3})
		}
		for _, r := range ranges {
			start, end := LeafSpan(r[0], r[1], int64(size))
			proof, err := Prove(tree, shard[start:end], r[0], r[1])
			if err != nil {
				t.Fatalf("size %d range %v: %v", size, r, err)
			}
			got, err := VerifyRange(id, proof, r[0], r[1])
			if err != nil {
				t.Fatalf("size %d range %v: verify: %v", size, r, err)
			}
			if !bytes.Equal(got, shard[r[0]:r[0]+r[1]]) {
				t.Fatalf("size %d range %v: verified bytes differ", size, r)
			}
			if n, err := ProofLen(proof); err != nil || n != int64(size) {
				t.Fatalf("ProofLen = %d, %v; want %d", n, err, size)
			}
			if len(proof) > 8 {
				bad := bytes.Clone(proof)
				bad[len(bad)-1] ^= 1
				if _, err := VerifyRange(id, bad, r[0], r[1]); !errors.Is(err, ErrProof) {
					t.Fatalf("size %d range %v: tampered proof accepted (err %v)", size, r, err)
				}
			}
			other := id
			other[0] ^= 1
			if _, err := VerifyRange(other, proof, r[0], r[1]); !errors.Is(err, ErrProof) {
				t.Fatalf("size %d: proof accepted under another ID", size)
			}
		}
	}
}

func TestParseShardID(t *testing.T) {
	id := IDOf([]byte("jellyfish"))
	got, err := ParseShardID(id.String())
	if err != nil || got != id {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "../etc/passwd", id.String()[:63], id.String() + "0", "A" + id.String()[1:], "g" + id.String()[1:]} {
		if _, err := ParseShardID(bad); err == nil {
			t.Errorf("ParseShardID(%q) accepted", bad)
		}
	}
}
