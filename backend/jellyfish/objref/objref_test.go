package objref

import (
	"bytes"
	"context"
	"flag"
	"os"
	"reflect"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fixedPeer returns the peer ID of a key made from a fixed seed.
func fixedPeer(t testing.TB, seed int) peer.ID {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{byte(seed), byte(seed >> 8)}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// layout encodes data with params and returns its layout.
func layout(t testing.TB, p codec.Params, data []byte) *codec.Layout {
	t.Helper()
	enc, err := codec.NewEncoder(p)
	if err != nil {
		t.Fatal(err)
	}
	var key codec.Key
	for i := range key {
		key[i] = byte(i)
	}
	l, err := enc.Encode(context.Background(), bytes.NewReader(data), key, func(s *codec.Segment) error { s.Release(); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestReadsVersion1 decodes a reference written by the version 1 encoder
// and checks every field, then its version 2 re-encoding.
func TestReadsVersion1(t *testing.T) {
	b, err := os.ReadFile("testdata/v1-ref.bin")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Key {
		if r.Key[i] != byte(i) {
			t.Fatalf("key byte %d = %d", i, r.Key[i])
		}
	}
	want := [][]int32{{0, 1, 2, NoHolder}, {1, 2, 0, 1}, {2, NoHolder, NoHolder, 0}}
	if !reflect.DeepEqual(r.Holder, want) {
		t.Fatalf("holders %v, want %v", r.Holder, want)
	}
	if len(r.Nodes) != 3 || r.Layout.K != 2 || r.Layout.M != 2 || len(r.Layout.Segments) != 3 || r.Layout.Size != 2*codec.MinSegmentSize+100 {
		t.Fatalf("decoded %d nodes, k=%d m=%d, %d segments, size %d", len(r.Nodes), r.Layout.K, r.Layout.M, len(r.Layout.Segments), r.Layout.Size)
	}
	if held, k := r.Health(); held != 2 || k != 2 {
		t.Fatalf("health %d of k=%d", held, k)
	}
	if n := len(r.Shards()); n != 9 {
		t.Fatalf("%d held shards, want 9", n)
	}
	v2, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if v2[0] != TagRefV2 {
		t.Fatalf("re-encoded with tag %d", v2[0])
	}
	golden(t, "testdata/v2-ref.bin", v2)
	r2, err := Unmarshal(v2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, r2) {
		t.Fatal("version 2 does not round trip")
	}
}

// golden compares b with the file at path (or rewrites it with -update).
func golden(t *testing.T, path string, b []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("%s: encoding changed (run with -update if intended)", path)
	}
}

// TestManyNodes stores an object whose shards sit on 300 distinct nodes,
// which version 1 could not express (its holder index was a byte).
func TestManyNodes(t *testing.T) {
	p := codec.Params{K: 10, M: 20, SegmentSize: codec.MinSegmentSize}
	l := layout(t, p, make([]byte, 12*codec.MinSegmentSize))
	var nodes []peer.ID
	for i := range 300 {
		nodes = append(nodes, fixedPeer(t, 1000+i))
	}
	holders := make([][]peer.ID, len(l.Segments))
	n := 0
	for s := range holders {
		holders[s] = make([]peer.ID, p.Total())
		for i := range holders[s] {
			if (s+i)%7 == 3 {
				continue // a shard nobody holds
			}
			holders[s][i] = nodes[n%len(nodes)]
			n++
		}
	}
	r := Build(codec.Key{1}, l, holders)
	if len(r.Nodes) != 300 {
		t.Fatalf("%d nodes", len(r.Nodes))
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	for s := range holders {
		for i, h := range holders[s] {
			if got.HolderOf(s, i) != h {
				t.Fatalf("segment %d shard %d: holder %s, want %s", s, i, got.HolderOf(s, i), h)
			}
		}
	}
	t.Logf("reference of %d segments on %d nodes: %d bytes", len(l.Segments), len(r.Nodes), len(b))
}

func TestRefusesDamage(t *testing.T) {
	p := codec.Params{K: 2, M: 2, SegmentSize: codec.MinSegmentSize}
	l := layout(t, p, make([]byte, 3*codec.MinSegmentSize))
	a, c := fixedPeer(t, 1), fixedPeer(t, 2)
	r := Build(codec.Key{1}, l, [][]peer.ID{{a, c, "", a}, {c, c, a, ""}, {a, "", "", c}})
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for cut := range len(b) {
		if _, err := Unmarshal(b[:cut]); err == nil {
			t.Fatalf("truncated at %d of %d accepted", cut, len(b))
		}
	}
	if _, err := Unmarshal(append(bytes.Clone(b), 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	bad := bytes.Clone(b)
	bad[len(bad)-1] = 3 // holder index 2 with two nodes
	if _, err := Unmarshal(bad); err == nil {
		t.Fatal("holder index past the node table accepted")
	}
	r.Holder[0][0] = 5
	if _, err := r.Marshal(); err == nil {
		t.Fatal("inconsistent reference encoded")
	}
}

func TestContent(t *testing.T) {
	fixture, err := os.ReadFile("testdata/member.bin")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(fixture)
	if err != nil {
		t.Fatal(err)
	}
	var pack PackID
	copy(pack[:], bytes.Repeat([]byte{0xab}, 16))
	want := Member{Pack: pack, Off: 12345, N: 678}
	if c.Kind != KindMember || c.Member != want {
		t.Fatalf("member fixture decoded as %+v", c)
	}
	if !bytes.Equal(want.Marshal(), fixture) {
		t.Fatal("member encoding changed")
	}
	if c, err := Parse(nil); err != nil || c.Kind != KindNone {
		t.Fatalf("empty content: %+v %v", c, err)
	}
	l := layout(t, codec.Params{K: 2, M: 2, SegmentSize: codec.MinSegmentSize}, []byte("a reference"))
	holder := Build(codec.Key{1}, l, [][]peer.ID{{fixedPeer(t, 1), "", fixedPeer(t, 2), fixedPeer(t, 1)}})
	ind, err := Indirect(holder, 123456789)
	if err != nil {
		t.Fatal(err)
	}
	c, err = Parse(ind)
	if err != nil || c.Kind != KindIndirect || c.Ref.HolderOf(0, 2) != fixedPeer(t, 2) || c.Stored != 123456789 {
		t.Fatalf("indirect: %+v %v", c, err)
	}
	if got := StoredBytes(ind); got != 123456789+holder.StoredBytes() {
		t.Fatalf("stored bytes of an indirect reference: %d", got)
	}
	for _, b := range [][]byte{{9}, {TagIndirect}, {TagIndirect, 0, TagRefV1}, {TagMember, 1, 2}} {
		if _, err := Parse(b); err == nil {
			t.Errorf("%x accepted", b)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/v1-ref.bin", "testdata/v2-ref.bin", "testdata/member.bin"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if r, err := Unmarshal(b); err == nil && b[0] == TagRefV2 {
			ind, err := Indirect(r, 1<<20)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(ind)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		switch c.Kind {
		case KindRef:
			out, err := c.Ref.Marshal()
			if err != nil {
				t.Fatalf("accepted reference does not encode: %v", err)
			}
			again, err := Unmarshal(out)
			if err != nil || !reflect.DeepEqual(again, c.Ref) {
				t.Fatalf("accepted reference does not round trip: %v", err)
			}
		case KindMember:
			// Offsets and lengths are read as binary.Uvarint reads them,
			// longer than needed included: the member, not its bytes,
			// survives the round trip.
			again, err := Parse(c.Member.Marshal())
			if err != nil || again.Kind != KindMember || again.Member != c.Member {
				t.Fatalf("member %+v does not round trip: %+v %v", c.Member, again.Member, err)
			}
		case KindIndirect:
			out, err := Indirect(c.Ref, c.Stored)
			if err != nil {
				t.Fatalf("accepted indirect reference does not encode: %v", err)
			}
			again, err := Parse(out)
			if err != nil || again.Kind != KindIndirect || again.Stored != c.Stored || !reflect.DeepEqual(again.Ref, c.Ref) {
				t.Fatalf("accepted indirect reference does not round trip: %v", err)
			}
		}
	})
}
