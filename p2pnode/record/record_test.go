package record

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

var update = flag.Bool("update", false, "rewrite golden files")

// t0 is the fixed "now" of these tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedClock(t time.Time) Clock { return func() time.Time { return t } }

// seededKey returns a deterministic Ed25519 key; seed byte b fills the seed.
func seededKey(t testing.TB, b byte) crypto.PrivKey {
	t.Helper()
	priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func peerOf(t testing.TB, priv crypto.PrivKey) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func nodeBody(t testing.TB) []byte {
	t.Helper()
	body, err := NodeInfo{
		Owner: []byte("placeholder-owner"),
		Tier:  3,
		Addrs: []ma.Multiaddr{
			ma.StringCast("/ip4/127.0.0.1/tcp/4001"),
			ma.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1"),
		},
	}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// signNode signs a node record for priv's own key.
func signNode(t testing.TB, priv crypto.PrivKey, seq uint64, expires time.Time) (string, []byte) {
	t.Helper()
	key := NodeKey(peerOf(t, priv))
	r := Record{Kind: KindNode, Seq: seq, Expires: expires, Body: nodeBody(t)}
	data, err := r.Sign(key, priv)
	if err != nil {
		t.Fatal(err)
	}
	return key, data
}

func newTestValidator(t testing.TB, opts ...Option) *Validator {
	t.Helper()
	v, err := NewValidator(append([]Option{WithClock(fixedClock(t0))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSignVerifyRoundTrip(t *testing.T) {
	priv := seededKey(t, 1)
	key, data := signNode(t, priv, 7, t0.Add(24*time.Hour))

	r, err := Verify(key, data)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if r.Kind != KindNode || r.Seq != 7 || !r.Expires.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("fields: %+v", r)
	}
	if !r.Signer.Equals(priv.GetPublic()) {
		t.Fatal("signer differs")
	}
	var info NodeInfo
	if err := info.Unmarshal(r.Body); err != nil {
		t.Fatal(err)
	}
	if string(info.Owner) != "placeholder-owner" || info.Tier != 3 || len(info.Addrs) != 2 || info.CapacityGiB() != 8 {
		t.Fatalf("body: %+v", info)
	}
	if err := newTestValidator(t).Validate(key, data); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

// openRules is a test kind whose every key is writable by anyone, so that
// the signature alone must catch records moved between keys.
func openRules() KindRules {
	return KindRules{Kind: 200, Name: "open", Authorize: func(string, crypto.PubKey) error { return nil }}
}

func TestValidateRejects(t *testing.T) {
	priv := seededKey(t, 1)
	other := seededKey(t, 2)
	key, good := signNode(t, priv, 1, t0.Add(time.Hour))
	otherKey := NodeKey(peerOf(t, other))

	resign := func(key string, r Record, signer crypto.PrivKey) []byte {
		t.Helper()
		data, err := r.Sign(key, signer)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	base := Record{Kind: KindNode, Seq: 1, Expires: t0.Add(time.Hour), Body: nodeBody(t)}

	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1
	bodyFlipped := bytes.Clone(good)
	bodyFlipped[len(bodyFlipped)-70] ^= 1 // inside the body, before the signature

	// unsigned: the encoding with a zero-length signature.
	pub, _ := crypto.MarshalPublicKey(priv.GetPublic())
	unsigned, err := encodeUnsigned(KindNode, 1, uint64(t0.Add(time.Hour).Unix()), pub, nodeBody(t))
	if err != nil {
		t.Fatal(err)
	}
	unsigned = binary.BigEndian.AppendUint16(unsigned, 0)

	openA, openB := "/jf/open/a", "/jf/open/b"
	openRec := resign(openA, Record{Kind: 200, Seq: 1, Expires: t0.Add(time.Hour), Body: []byte("x")}, priv)

	unknownKindByte := resign(key, Record{Kind: 99, Seq: 1, Expires: t0.Add(time.Hour), Body: nodeBody(t)}, priv)
	expired := resign(key, Record{Kind: KindNode, Seq: 1, Expires: t0, Body: nodeBody(t)}, priv)
	farFuture := resign(key, Record{Kind: KindNode, Seq: 1, Expires: t0.Add(DefaultMaxLifetime + time.Hour), Body: nodeBody(t)}, priv)
	badBody := resign(key, Record{Kind: KindNode, Seq: 1, Expires: t0.Add(time.Hour), Body: []byte{9, 9}}, priv)
	// other signs a record for priv's key: authorisation must refuse it.
	foreign := resign(key, base, other)
	// open kind record placed under a node key.
	wrongKind := resign(key, Record{Kind: 200, Seq: 1, Expires: t0.Add(time.Hour), Body: []byte("x")}, priv)

	oversize := make([]byte, MaxRecordSize+1)
	copy(oversize, good)

	cases := []struct {
		name  string
		key   string
		value []byte
		want  error
	}{
		{"oversize", key, oversize, ErrTooLarge},
		{"unsigned", key, unsigned, ErrUnsigned},
		{"mis-signed signature", key, flipped, ErrBadSignature},
		{"mis-signed body", key, bodyFlipped, ErrBadSignature},
		{"expired", key, expired, ErrExpired},
		{"too far future", key, farFuture, ErrTooFarFuture},
		{"unknown kind in key", "/jf/nope/x", good, ErrUnknownKind},
		{"unknown kind byte", key, unknownKindByte, ErrUnknownKind},
		{"wrong kind for key", key, wrongKind, ErrWrongKey},
		{"moved between open keys", openB, openRec, ErrBadSignature},
		{"node record moved to another node's key", otherKey, good, ErrUnauthorized},
		{"node key written by another signer", key, foreign, ErrUnauthorized},
		{"bad body", key, badBody, ErrBadBody},
		{"not jf namespace", "/pk/" + string(peerOf(t, priv)), good, ErrBadKey},
		{"garbage", key, []byte("JFR\x01garbage"), ErrMalformed},
		{"trailing bytes", key, append(bytes.Clone(good), 0), ErrMalformed},
	}
	v := newTestValidator(t, WithKind(openRules()))
	if err := v.Validate(openA, openRec); err != nil {
		t.Fatalf("open record at its own key: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := v.Validate(c.key, c.value)
			if !errors.Is(err, c.want) {
				t.Fatalf("Validate = %v, want %v", err, c.want)
			}
		})
	}
}

func TestValidateNonEd25519Signer(t *testing.T) {
	priv, _, err := crypto.GenerateSecp256k1Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := Record{Kind: KindNode, Seq: 1, Expires: t0.Add(time.Hour)}
	if _, err := r.Sign(NodeKey(peerOf(t, priv)), priv); !errors.Is(err, ErrUnsupportedKey) {
		t.Fatalf("Sign with secp256k1 = %v", err)
	}
	// Hand-build one: the decoder must refuse it too.
	pub, _ := crypto.MarshalPublicKey(priv.GetPublic())
	data, err := encodeUnsigned(KindNode, 1, uint64(t0.Add(time.Hour).Unix()), pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	data = binary.BigEndian.AppendUint16(data, 1)
	data = append(data, 0)
	if _, err := Decode(data); !errors.Is(err, ErrUnsupportedKey) {
		t.Fatalf("Decode = %v", err)
	}
}

func TestClockDecidesExpiry(t *testing.T) {
	priv := seededKey(t, 1)
	key, data := signNode(t, priv, 1, t0.Add(time.Hour))
	now := t0
	v, err := NewValidator(WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(key, data); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(time.Hour)
	if err := v.Validate(key, data); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v", err)
	}
}

func TestHighWater(t *testing.T) {
	store := dssync.MutexWrap(ds.NewMapDatastore())
	hw := NewDatastoreHighWater(store, "/hwm")
	v := newTestValidator(t, WithHighWater(hw))
	priv := seededKey(t, 1)
	key, v5 := signNode(t, priv, 5, t0.Add(time.Hour))
	_, v3 := signNode(t, priv, 3, t0.Add(2*time.Hour))

	if err := v.Validate(key, v3); err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(key, v5); err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(key, v5); err != nil {
		t.Fatalf("same sequence again: %v", err)
	}
	if err := v.Validate(key, v3); !errors.Is(err, ErrStale) {
		t.Fatalf("older after newer: %v", err)
	}
	// A fresh store on the same datastore (a restart) remembers the mark.
	v2 := newTestValidator(t, WithHighWater(NewDatastoreHighWater(store, "/hwm")))
	if err := v2.Validate(key, v3); !errors.Is(err, ErrStale) {
		t.Fatalf("older after restart: %v", err)
	}
	if seq, err := hw.Seen(key); err != nil || seq != 5 {
		t.Fatalf("Seen = %d, %v", seq, err)
	}
	// Invalid records never raise the mark.
	_, v9 := signNode(t, priv, 9, t0) // expired
	if err := v.Validate(key, v9); !errors.Is(err, ErrExpired) {
		t.Fatal(err)
	}
	if seq, _ := hw.Seen(key); seq != 5 {
		t.Fatalf("expired record raised mark to %d", seq)
	}
}

func TestSelect(t *testing.T) {
	v := newTestValidator(t)
	priv := seededKey(t, 1)
	key, s1 := signNode(t, priv, 1, t0.Add(3*time.Hour))
	_, s2 := signNode(t, priv, 2, t0.Add(time.Hour))
	_, s2later := signNode(t, priv, 2, t0.Add(2*time.Hour))
	// Same seq and expiry, different bytes: body differs.
	r := Record{Kind: KindNode, Seq: 2, Expires: t0.Add(2 * time.Hour), Body: []byte{1, 0, 0, 0}}
	s2other, err := r.Sign(key, priv)
	if err != nil {
		t.Fatal(err)
	}
	smaller, larger := s2later, s2other
	if bytes.Compare(smaller, larger) > 0 {
		smaller, larger = larger, smaller
	}

	cases := []struct {
		name string
		vals [][]byte
		want int
	}{
		{"higher seq wins", [][]byte{s1, s2}, 1},
		{"higher seq wins despite earlier expiry", [][]byte{s2, s1}, 0},
		{"later expiry breaks seq tie", [][]byte{s2, s2later}, 1},
		{"smaller bytes break full tie", [][]byte{larger, smaller}, 1},
		{"smaller bytes break full tie reversed", [][]byte{smaller, larger}, 0},
		{"identical returns 0", [][]byte{s2later, bytes.Clone(s2later)}, 0},
		{"identical best returns first", [][]byte{s1, s2later, bytes.Clone(s2later)}, 1},
		{"garbage loses", [][]byte{[]byte("junk"), s1}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := v.Select(key, c.vals)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("Select = %d, want %d", got, c.want)
			}
		})
	}
	if _, err := v.Select(key, [][]byte{[]byte("junk")}); err == nil {
		t.Fatal("Select of only garbage succeeded")
	}
}

// TestGoldenNodeRecord pins the byte layout: a change to the encoding or
// the signature coverage changes these bytes. Run with -update to rewrite.
func TestGoldenNodeRecord(t *testing.T) {
	priv := seededKey(t, 0x42)
	key := NodeKey(peerOf(t, priv))
	r := Record{Kind: KindNode, Seq: 3, Expires: time.Unix(1780000000, 0), Body: nodeBody(t)}
	data, err := r.Sign(key, priv)
	if err != nil {
		t.Fatal(err)
	}
	got := key + "\n" + hex.EncodeToString(data) + "\n"
	path := filepath.Join("testdata", "node_record.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("encoding changed:\n got %s\nwant %s", got, want)
	}
	// The golden bytes start with the documented header.
	if !strings.HasPrefix(hex.EncodeToString(data), "4a465201"+"01"+"0000000000000003") {
		t.Fatalf("header: %x", data[:14])
	}
	v := newTestValidator(t, WithClock(fixedClock(time.Unix(1780000000-10*24*3600, 0))))
	if err := v.Validate(key, data); err != nil {
		t.Fatalf("golden record invalid: %v", err)
	}
}

func TestNodeInfo(t *testing.T) {
	in := NodeInfo{Owner: []byte{1, 2}, Tier: MaxTier, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/10.0.0.1/tcp/1")}}
	b, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var out NodeInfo
	if err := out.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Owner, in.Owner) || out.Tier != in.Tier || len(out.Addrs) != 1 || !out.Addrs[0].Equal(in.Addrs[0]) {
		t.Fatalf("round trip: %+v", out)
	}
	bad := []NodeInfo{
		{Tier: MaxTier + 1},
		{Owner: make([]byte, MaxOwnerSize+1)},
		{Addrs: make([]ma.Multiaddr, MaxNodeAddrs+1)},
	}
	for i, n := range bad {
		if _, err := n.Marshal(); !errors.Is(err, ErrBadBody) {
			t.Errorf("bad[%d].Marshal = %v", i, err)
		}
	}
	for _, body := range [][]byte{nil, {2}, {1, 0, 41, 0}, append(bytes.Clone(b), 0), {1, 0, 0, 1, 0, 2, 0xff, 0xff}} {
		if err := out.Unmarshal(body); err == nil {
			t.Errorf("Unmarshal(%x) accepted", body)
		}
	}
}

func TestValidatorOptions(t *testing.T) {
	if _, err := NewValidator(WithKind(NodeRules())); err == nil {
		t.Fatal("duplicate node kind accepted")
	}
	if _, err := NewValidator(WithKind(KindRules{Kind: 9, Name: "x"})); err == nil {
		t.Fatal("kind without Authorize accepted")
	}
	if _, err := NewValidator(WithKind(KindRules{Kind: 9, Name: "a/b", Authorize: openRules().Authorize})); err == nil {
		t.Fatal("kind name with slash accepted")
	}
}
