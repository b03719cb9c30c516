package node

import (
	"bytes"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func testPeer(t *testing.T) peer.ID {
	t.Helper()
	_, pk, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRelayedEncoding: a list reads back as written; more than MaxRelayed,
// a bad ID, a truncated list and trailing bytes are refused.
func TestRelayedEncoding(t *testing.T) {
	ids := []peer.ID{testPeer(t), testPeer(t), testPeer(t)}
	var b bytes.Buffer
	if err := writeRelayed(&b, ids); err != nil {
		t.Fatal(err)
	}
	raw := b.Bytes()
	got, err := readRelayed(bytes.NewReader(raw))
	if err != nil || len(got) != 3 || got[0] != ids[0] || got[2] != ids[2] {
		t.Fatalf("read back %v, %v", got, err)
	}
	if _, err := readRelayed(bytes.NewReader(append(append([]byte{}, raw...), 0))); err == nil {
		t.Fatal("trailing byte accepted")
	}
	if _, err := readRelayed(bytes.NewReader(raw[:len(raw)-1])); err == nil {
		t.Fatal("truncated list accepted")
	}
	if _, err := readRelayed(bytes.NewReader([]byte{byte((MaxRelayed + 1) >> 8), byte((MaxRelayed + 1) & 0xff)})); err == nil {
		t.Fatal("a count over MaxRelayed accepted")
	}
	if _, err := readRelayed(bytes.NewReader([]byte{0, 1, 3, 'a', 'b', 'c'})); err == nil {
		t.Fatal("an invalid peer ID accepted")
	}
}

// TestRelayDirectory: a peer is named for relayedTTL after its last
// reservation request, and the directory stays within MaxRelayed.
func TestRelayDirectory(t *testing.T) {
	d := newRelayDirectory()
	now := time.Unix(1_000_000, 0)
	d.now = func() time.Time { return now }
	a := testPeer(t)
	d.AllowReserve(a, nil)
	if l := d.list(); len(l) != 1 || l[0] != a {
		t.Fatalf("list %v", l)
	}
	now = now.Add(relayedTTL)
	if l := d.list(); len(l) != 1 {
		t.Fatalf("at the TTL: %v", l)
	}
	now = now.Add(time.Nanosecond)
	if l := d.list(); len(l) != 0 {
		t.Fatalf("past the TTL: %v", l)
	}
	for range MaxRelayed + 10 {
		d.AllowReserve(testPeer(t), nil)
	}
	if l := d.list(); len(l) != MaxRelayed {
		t.Fatalf("%d remembered, bound %d", len(l), MaxRelayed)
	}
}
