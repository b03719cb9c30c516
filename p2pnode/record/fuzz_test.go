package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"
)

// FuzzDecodeRecord feeds arbitrary bytes to the decoder and the validator.
// Neither may panic, and anything Decode accepts must re-encode to exactly
// the same bytes: the format has one encoding per record.
func FuzzDecodeRecord(f *testing.F) {
	priv := seededKey(f, 7)
	_, good := signNode(f, priv, 1, t0.Add(time.Hour))
	f.Add(good)
	f.Add([]byte("JFR\x01"))
	v := newTestValidator(f)
	key := NodeKey(peerOf(f, priv))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = v.Validate(key, data)
		r, err := Decode(data)
		if err != nil {
			return
		}
		pub, err := crypto.MarshalPublicKey(r.Signer)
		if err != nil {
			t.Fatal(err)
		}
		again, err := encodeUnsigned(r.Kind, r.Seq, uint64(r.Expires.Unix()), pub, r.Body)
		if err != nil {
			t.Fatal(err)
		}
		again = binary.BigEndian.AppendUint16(again, uint16(len(r.Signature)))
		again = append(again, r.Signature...)
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", data, again)
		}
		var n NodeInfo
		if n.Unmarshal(r.Body) == nil {
			if _, err := n.Marshal(); err != nil {
				t.Fatalf("accepted body does not marshal: %v", err)
			}
		}
	})
}

// FuzzParseMark: no stored value crashes parseMark; a value of the
// current size encodes back to its bytes, and any value decodes, encodes
// and decodes again to the same sequence number.
func FuzzParseMark(f *testing.F) {
	cur := encodeMark(42, time.Unix(1_800_000_000, 0))
	f.Add(cur)
	f.Add(encodeMark(1<<63+5, time.Unix(-1, 0)))
	f.Add(cur[:markSizeV0])
	f.Add(cur[:markSize-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, raised, stamped, err := parseMark(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error without ErrMalformed: %v", err)
			}
			return
		}
		if stamped != (len(b) == markSize) {
			t.Fatalf("%d-byte mark stamped=%v", len(b), stamped)
		}
		again := encodeMark(seq, raised)
		if stamped && !bytes.Equal(again, b) {
			t.Fatalf("mark %x encodes back as %x", b, again)
		}
		seq2, raised2, _, err := parseMark(again)
		if err != nil || seq2 != seq || (stamped && !raised2.Equal(raised)) {
			t.Fatalf("mark %x: round trip gave %d %v %v", b, seq2, raised2, err)
		}
	})
}

// FuzzParseKey: no key crashes ParseKey; an accepted key is within
// MaxKeySize, its kind name holds no slash, and KeyFor rebuilds it from
// its parts.
func FuzzParseKey(f *testing.F) {
	f.Add(NodeKey(peerOf(f, seededKey(f, 7))))
	f.Add("/jf/login/" + strings.Repeat("a", 64))
	f.Add("/jf/x/y/z")
	f.Add("/jf//x")
	f.Add("/jf/x/")
	f.Add("/jf/")
	f.Add("")
	f.Fuzz(func(t *testing.T, key string) {
		pk, err := ParseKey(key)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("error without ErrBadKey: %v", err)
			}
			return
		}
		if len(key) > MaxKeySize || pk.KindName == "" || pk.Rest == "" || strings.Contains(pk.KindName, "/") {
			t.Fatalf("key %q parsed as %+v", key, pk)
		}
		if again := KeyFor(pk.KindName, pk.Rest); again != key {
			t.Fatalf("key %q rebuilt as %q", key, again)
		}
	})
}

// FuzzNodeInfo: no body crashes NodeInfo.Unmarshal; an accepted body is
// within the limits, marshals back to the same bytes (multiaddrs are kept
// as their bytes) and is refused without its last byte.
func FuzzNodeInfo(f *testing.F) {
	for _, n := range []NodeInfo{
		{Owner: []byte("owner-account-id"), Tier: 3, Addrs: []ma.Multiaddr{
			ma.StringCast("/ip4/203.0.113.7/tcp/4001"),
			ma.StringCast("/ip6/2001:db8::1/udp/4001/quic-v1"),
			ma.StringCast("/dns4/node.example.com/tcp/443/wss"),
		}},
		{Tier: MaxTier},
		{Owner: bytes.Repeat([]byte{0xee}, MaxOwnerSize), Addrs: []ma.Multiaddr{ma.StringCast("/ip4/10.0.0.1/tcp/1")}},
	} {
		b, err := n.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var n NodeInfo
		if err := n.Unmarshal(b); err != nil {
			if !errors.Is(err, ErrBadBody) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error without ErrBadBody or ErrMalformed: %v", err)
			}
			return
		}
		if len(n.Owner) > MaxOwnerSize || n.Tier > MaxTier || len(n.Addrs) > MaxNodeAddrs {
			t.Fatalf("accepted owner of %d bytes, tier %d, %d addresses", len(n.Owner), n.Tier, len(n.Addrs))
		}
		again, err := n.Marshal()
		if err != nil {
			t.Fatalf("accepted body does not marshal: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("body %x marshals back as %x", b, again)
		}
		var n2 NodeInfo
		if err := n2.Unmarshal(again); err != nil || !bytes.Equal(n2.Owner, n.Owner) || n2.Tier != n.Tier ||
			!slices.EqualFunc(n2.Addrs, n.Addrs, ma.Multiaddr.Equal) {
			t.Fatalf("body %x: round trip gave %+v, %v", b, n2, err)
		}
		if n2.Unmarshal(b[:len(b)-1]) == nil {
			t.Fatalf("body %x accepted without its last byte", b)
		}
	})
}
