package shardproto

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// Fuzz targets of the decoders that read a peer's bytes: request and
// response headers, receipts and challenge answers. The signed answers of
// evidence.go are FuzzUnmarshalAnswers'.

// fuzzKey returns a fixed Ed25519 key, so the seeds are the same every run.
func fuzzKey(tb testing.TB) crypto.PrivKey {
	tb.Helper()
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{0x5a}, 64)))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// addWithTruncations adds b and a few of its prefixes to the corpus.
func addWithTruncations(f *testing.F, b []byte) {
	f.Add(b)
	for _, n := range []int{0, 1, len(b) / 2, len(b) - 1} {
		if n >= 0 && n < len(b) {
			f.Add(b[:n])
		}
	}
}

// sampleRequests returns one request of every type, signed where the type
// carries a signature.
func sampleRequests(tb testing.TB) []*request {
	k := fuzzKey(tb)
	kb, err := crypto.MarshalPublicKey(k.GetPublic())
	if err != nil {
		tb.Fatal(err)
	}
	_, id := shard(1, 100)
	_, id2 := shard(2, 100)
	lease, ts := time.Unix(1_900_000_000, 5), time.Unix(1_800_000_000, 7)
	sig := func(msg []byte) []byte {
		s, err := k.Sign(msg)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	salt := [32]byte{1, 2, 3}
	return []*request{
		{typ: msgPut, id: id, size: 100, lease: lease, ts: ts, key: kb, sig: sig(putSigned("holder", id, 100, lease, ts))},
		{typ: msgPut, repair: true, id: id, size: 100, lease: lease, ts: ts, key: kb, sig: sig(repairSigned("holder", id, 100, lease, ts))},
		{typ: msgGet, id: id, off: 4096, n: 8192},
		{typ: msgGet, id: id},
		{typ: msgStat, id: id},
		{typ: msgDelete, id: id, ts: ts, key: kb, sig: sig(deleteSigned("holder", id, ts))},
		{typ: msgRenew, lease: lease, ts: ts, ids: []codec.ShardID{id, id2}, key: kb, sig: sig(renewSigned("holder", []codec.ShardID{id, id2}, lease, ts))},
		{typ: msgChallenge, id: id, salt: salt, ts: ts, key: kb, sig: sig(challengeSigned("holder", id, salt, ts))},
		{typ: msgProof, id: id, owner: shardstore.Owner{9}, nonce: [32]byte{8}, leafs: []int64{0, 3, 7}},
	}
}

// FuzzDecodeRequest: no header crashes decodeRequest, and every header it
// accepts stays within the wire limits, encodes back to exactly its bytes
// (the layout has one encoding per request) and is refused without its
// last byte.
func FuzzDecodeRequest(f *testing.F) {
	for _, r := range sampleRequests(f) {
		addWithTruncations(f, r.encode())
	}
	f.Add([]byte{msgRenew})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRequest(b)
		if err != nil {
			if !errors.Is(err, errFrame) {
				t.Fatalf("error without errFrame: %v", err)
			}
			return
		}
		if len(r.ids) > MaxRenewIDs || len(r.leafs) > MaxProofLeaves || len(r.key) > maxKey || len(r.sig) > maxKey {
			t.Fatalf("accepted %d ids, %d leaves, %d-byte key, %d-byte signature", len(r.ids), len(r.leafs), len(r.key), len(r.sig))
		}
		if again := r.encode(); !bytes.Equal(again, b) {
			t.Fatalf("request %x encodes back as %x", b, again)
		}
		if _, err := decodeRequest(b[:len(b)-1]); err == nil {
			t.Fatalf("request %x accepted without its last byte", b)
		}
	})
}

// sampleResponses returns, per request type, an answer of each shape the
// type has.
func sampleResponses(tb testing.TB) map[byte][]*response {
	k := fuzzKey(tb)
	_, id := shard(1, 100)
	rc := sampleReceipt(tb, k)
	ca := sampleChallengeAnswer(tb, k)
	nf := NotFoundAnswer{Shard: id, Issued: time.Unix(6, 0)}
	if err := nf.Sign(k); err != nil {
		tb.Fatal(err)
	}
	pa := ProofAnswer{Shard: id, Leaves: []int64{0}, Proofs: [][]byte{{1}}, Issued: time.Unix(5, 0)}
	if err := pa.Sign(k); err != nil {
		tb.Fatal(err)
	}
	pa.Proofs = nil // on the wire the proofs follow the header
	rr := RenewReceipt{Issued: time.Unix(7, 0)}
	rr.Root, rr.Count = RenewRoot([]codec.ShardID{id})
	if err := rr.Sign(k); err != nil {
		tb.Fatal(err)
	}
	failed := &response{status: StatusUnauthorized, msg: "owner signature does not verify"}
	return map[byte][]*response{
		msgPut:       {{blob: rc.Marshal()}, failed, {status: StatusOverAllowance, msg: "this provider keeps at most 256 MiB for an account that shares no node"}},
		msgGet:       {{size: 100, bodyLen: 100}, {status: StatusNotFound, msg: "not found"}},
		msgStat:      {{size: 100, storedAt: time.Unix(1_800_000_000, 1), lease: time.Unix(1_900_000_000, 2), refs: 3}},
		msgDelete:    {{}, failed},
		msgRenew:     {{ids: []codec.ShardID{id}, blob: rr.Marshal()}, {blob: rr.Marshal()}},
		msgChallenge: {{blob: ca.Marshal()}, {status: StatusTooSoon, msg: "too soon"}},
		msgProof:     {{blob: pa.Marshal(), lens: []int64{2000}}, {status: StatusNotFound, msg: "not found", blob: nf.Marshal()}, {status: StatusNotFound}},
	}
}

// FuzzDecodeResponse: no header crashes decodeResponse for any request
// type; every header it accepts stays within the wire limits, encodes back
// to a header that decodes to the same response, and is refused without
// its last byte. The encoding is the same bytes except for a proof
// request's not-found answer without a signed answer, which encode writes
// with an empty one.
func FuzzDecodeResponse(f *testing.F) {
	for typ, rs := range sampleResponses(f) {
		for _, r := range rs {
			b := r.encode(typ)
			f.Add(typ, b)
			for _, n := range []int{1, len(b) / 2, len(b) - 1} {
				f.Add(typ, b[:n])
			}
		}
	}
	f.Add(byte(0), []byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, typ byte, b []byte) {
		r, err := decodeResponse(typ, b)
		if err != nil {
			if !errors.Is(err, errFrame) {
				t.Fatalf("error without errFrame: %v", err)
			}
			return
		}
		if len(r.msg) > maxMessage || len(r.blob) > maxAnswer || len(r.ids) > MaxRenewIDs || len(r.lens) > MaxProofLeaves {
			t.Fatalf("accepted a %d-byte message, %d-byte answer, %d ids, %d lengths", len(r.msg), len(r.blob), len(r.ids), len(r.lens))
		}
		again := r.encode(typ)
		unsigned := typ == msgProof && r.status == StatusNotFound && r.blob == nil
		if !unsigned && !bytes.Equal(again, b) {
			t.Fatalf("type %d: response %x encodes back as %x", typ, b, again)
		}
		r2, err := decodeResponse(typ, again)
		if err != nil {
			t.Fatalf("type %d: re-encoded response %x does not decode: %v", typ, again, err)
		}
		if !sameResponse(r, r2) {
			t.Fatalf("type %d: round trip changed the response: %+v, then %+v", typ, r, r2)
		}
		if _, err := decodeResponse(typ, b[:len(b)-1]); err == nil {
			t.Fatalf("type %d: response %x accepted without its last byte", typ, b)
		}
	})
}

func sameResponse(a, b *response) bool {
	return a.status == b.status && a.msg == b.msg && bytes.Equal(a.blob, b.blob) &&
		a.size == b.size && a.bodyLen == b.bodyLen && a.storedAt.Equal(b.storedAt) &&
		a.lease.Equal(b.lease) && a.refs == b.refs && slices.Equal(a.ids, b.ids) && slices.Equal(a.lens, b.lens)
}

func sampleReceipt(tb testing.TB, k crypto.PrivKey) Receipt {
	_, id := shard(1, 100)
	rc := Receipt{Shard: id, Owner: shardstore.Owner{4}, Size: 100, Lease: time.Unix(1_900_000_000, 0), Issued: time.Unix(1_800_000_000, 0)}
	var err error
	if rc.Holder, rc.HolderKey, err = holderOf(k); err != nil {
		tb.Fatal(err)
	}
	if rc.Signature, err = k.Sign(rc.signed()); err != nil {
		tb.Fatal(err)
	}
	return rc
}

func sampleChallengeAnswer(tb testing.TB, k crypto.PrivKey) ChallengeAnswer {
	data, id := shard(1, 100)
	a := ChallengeAnswer{Shard: id, Salt: [32]byte{7}, Issued: time.Unix(1_800_000_000, 0)}
	a.Answer = shardstore.ChallengeAnswer(a.Salt, data)
	var err error
	if a.Holder, a.HolderKey, err = holderOf(k); err != nil {
		tb.Fatal(err)
	}
	if a.Signature, err = k.Sign(a.signed()); err != nil {
		tb.Fatal(err)
	}
	return a
}

// FuzzUnmarshalReceipt: no input crashes UnmarshalReceipt or
// VerifyReceipt; whatever decodes marshals back to the same bytes and is
// refused without its last byte.
func FuzzUnmarshalReceipt(f *testing.F) {
	rc := sampleReceipt(f, fuzzKey(f))
	if err := VerifyReceipt(rc); err != nil {
		f.Fatal(err)
	}
	addWithTruncations(f, rc.Marshal())
	f.Add([]byte(receiptMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalReceipt(b)
		if err != nil {
			if !errors.Is(err, errFrame) {
				t.Fatalf("error without errFrame: %v", err)
			}
			return
		}
		VerifyReceipt(r)
		if again := r.Marshal(); !bytes.Equal(again, b) {
			t.Fatalf("receipt %x marshals back as %x", b, again)
		}
		if _, err := UnmarshalReceipt(b[:len(b)-1]); err == nil {
			t.Fatalf("receipt %x accepted without its last byte", b)
		}
	})
}

// FuzzUnmarshalChallengeAnswer is FuzzUnmarshalReceipt for challenge
// answers.
func FuzzUnmarshalChallengeAnswer(f *testing.F) {
	a := sampleChallengeAnswer(f, fuzzKey(f))
	if err := VerifyChallengeAnswer(a); err != nil {
		f.Fatal(err)
	}
	addWithTruncations(f, a.Marshal())
	f.Add([]byte(answerMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := UnmarshalChallengeAnswer(b)
		if err != nil {
			if !errors.Is(err, errFrame) {
				t.Fatalf("error without errFrame: %v", err)
			}
			return
		}
		VerifyChallengeAnswer(a)
		if again := a.Marshal(); !bytes.Equal(again, b) {
			t.Fatalf("challenge answer %x marshals back as %x", b, again)
		}
		if _, err := UnmarshalChallengeAnswer(b[:len(b)-1]); err == nil {
			t.Fatalf("challenge answer %x accepted without its last byte", b)
		}
	})
}
