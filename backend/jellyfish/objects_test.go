package jellyfish

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/codec"
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

func TestObjRefRoundTrip(t *testing.T) {
	enc, err := codec.NewEncoder(codec.Params{K: 2, M: 2, SegmentSize: codec.MinSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := codec.NewKey()
	l, err := enc.Encode(context.Background(), bytes.NewReader(make([]byte, 3*codec.MinSegmentSize)), key, func(s *codec.Segment) error { s.Release(); return nil })
	if err != nil {
		t.Fatal(err)
	}
	nodes := testPeers(t, 3)
	ref := &ObjRef{Key: key, Layout: l, Nodes: nodes, Holder: [][]uint8{{0, 1, 2, noHolder}, {1, 2, 0, 1}, {2, noHolder, noHolder, 0}}}
	b, err := ref.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalObjRef(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := got.Marshal()
	if !bytes.Equal(b, b2) || got.Key != key || len(got.Shards()) != 9 {
		t.Fatal("ObjRef does not round trip")
	}
	if held, k := got.Health(); held != 2 || k != 2 {
		t.Fatalf("health %d/%d", held, k)
	}
	for _, cut := range []int{0, 1, 10, len(b) - 1} {
		if _, err := UnmarshalObjRef(b[:cut]); err == nil {
			t.Errorf("truncated at %d accepted", cut)
		}
	}
	bad := bytes.Clone(b)
	bad[len(bad)-1] = 7 // holder index past the node table
	if _, err := UnmarshalObjRef(bad); err == nil {
		t.Error("bad holder index accepted")
	}
}

func TestPlacementSpreadsAndStaysDistinct(t *testing.T) {
	nodes := testPeers(t, 10)
	for seg := range uint64(5) {
		seen := map[peer.ID]bool{}
		for _, p := range place(nodes, 0, seg, 8) {
			if seen[p] {
				t.Fatalf("segment %d: node used twice with enough nodes", seg)
			}
			seen[p] = true
		}
	}
	// Fewer nodes than shards: every node gets its fair share.
	few := nodes[:3]
	count := map[peer.ID]int{}
	for _, p := range place(few, 0, 0, 8) {
		count[p]++
	}
	for _, n := range few {
		if c := count[n]; c < 2 || c > 3 {
			t.Fatalf("uneven spread: %v", count)
		}
	}
}

func TestHeadSealOpen(t *testing.T) {
	var root, other [32]byte
	root[0], other[0] = 1, 2
	h := &headState{BatchSeq: 7, HLC: 99, Tip: []byte("tip"), Checkpoint: []byte("cp"), CPSeq: 5}
	h.Device[3] = 9
	body, err := sealHead(root, "/jf/head/a/b", h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := openHead(root, "/jf/head/a/b", body)
	if err != nil || got.BatchSeq != 7 || string(got.Tip) != "tip" || got.Device != h.Device {
		t.Fatalf("open: %+v %v", got, err)
	}
	if _, err := openHead(other, "/jf/head/a/b", body); err == nil {
		t.Fatal("head opened with another account's key")
	}
	if _, err := openHead(root, "/jf/head/a/c", body); err == nil {
		t.Fatal("head opened under another key")
	}
}
