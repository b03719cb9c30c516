package client

import (
	"crypto/sha256"
	"testing"
)

// TestWalkRegions: the parts of a region cover it without overlap, each a
// prefix two bits longer, and keyIn finds keys whose place in the key
// space lies in the region asked for.
func TestWalkRegions(t *testing.T) {
	var root region
	root.prefix[0] = 0b1010_0000
	root.bits = 3 // 101…
	parts := root.split()
	if len(parts) != 1<<walkSplitBits {
		t.Fatalf("%d parts", len(parts))
	}
	for i, p := range parts {
		if p.bits != root.bits+walkSplitBits {
			t.Fatalf("part %d has %d bits", i, p.bits)
		}
		// Part i is 101 followed by i in two bits.
		if want := byte(0b1010_0000 | i<<3); p.prefix[0]&0b1111_1000 != want {
			t.Fatalf("part %d prefix %08b, want %08b", i, p.prefix[0], want)
		}
	}
	for range 200 {
		k := sha256.Sum256([]byte(keyIn(parts[2])))
		if !root.contains(k) || !parts[2].contains(k) {
			t.Fatalf("key %08b… outside its region", k[0])
		}
		for i, p := range parts {
			if i != 2 && p.contains(k) {
				t.Fatalf("key %08b… also in part %d", k[0], i)
			}
		}
	}
	deep := region{bits: walkMaxBits}
	deep.prefix[1] = 0xff
	if k := sha256.Sum256([]byte(keyIn(deep))); k[0] != 0 || k[1] != 0xff {
		t.Fatalf("key %x… outside a %d-bit region", k[:2], walkMaxBits)
	}
}
