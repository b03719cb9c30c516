package shardproto

import (
	"errors"
	"fmt"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"lukechampine.com/blake3"
)

// Domain-separation prefixes of every signed byte string, so a signature
// made for one purpose can never be replayed as another.
const (
	ctxPut              = "jellyfish/shard/put/v1\x00"
	ctxRepair           = "jellyfish/shard/repair/v1\x00"
	ctxDelete           = "jellyfish/shard/delete/v1\x00"
	ctxRenew            = "jellyfish/shard/renew/v1\x00"
	ctxReceipt          = "jellyfish/shard/receipt/v1\x00"
	ctxChallenge        = "jellyfish/shard/challenge/v1\x00"
	ctxChallengeRequest = "jellyfish/shard/challenge-request/v1\x00"
	ctxUsage            = "jellyfish/shard/usage/v1\x00"
	ctxStanding         = "jellyfish/shard/standing/v1\x00"
	ctxHoldings         = "jellyfish/shard/holdings/v1\x00"
)

// ErrBadSignature means a receipt or signed answer does not verify.
var ErrBadSignature = errors.New("shardproto: bad signature")

// OwnerOf derives the store's Owner from an owner's public key:
// BLAKE3-256 of the marshalled libp2p public key. Only Ed25519 keys are
// accepted as owners.
func OwnerOf(pk crypto.PubKey) (shardstore.Owner, error) {
	if pk == nil || pk.Type() != crypto.Ed25519 {
		return shardstore.Owner{}, errors.New("shardproto: owner key must be Ed25519")
	}
	b, err := crypto.MarshalPublicKey(pk)
	if err != nil {
		return shardstore.Owner{}, fmt.Errorf("shardproto: owner key: %w", err)
	}
	return shardstore.Owner(blake3.Sum256(b)), nil
}

func putSigned(holder peer.ID, id codec.ShardID, size int64, lease, ts time.Time) []byte {
	return putLikeSigned(ctxPut, holder, id, size, lease, ts)
}

// repairSigned is what a repair's owner signs: a put's fields under the
// repair domain, so a put's signature cannot be sent as a repair's.
func repairSigned(holder peer.ID, id codec.ShardID, size int64, lease, ts time.Time) []byte {
	return putLikeSigned(ctxRepair, holder, id, size, lease, ts)
}

func putLikeSigned(domain string, holder peer.ID, id codec.ShardID, size int64, lease, ts time.Time) []byte {
	e := enc{b: []byte(domain)}
	e.bytes16([]byte(holder))
	e.raw(id[:])
	e.u64(size)
	e.time(lease)
	e.time(ts)
	return e.b
}

func deleteSigned(holder peer.ID, id codec.ShardID, ts time.Time) []byte {
	e := enc{b: []byte(ctxDelete)}
	e.bytes16([]byte(holder))
	e.raw(id[:])
	e.time(ts)
	return e.b
}

func usageSigned(holder peer.ID, ts time.Time) []byte {
	e := enc{b: []byte(ctxUsage)}
	e.bytes16([]byte(holder))
	e.time(ts)
	return e.b
}

func renewSigned(holder peer.ID, ids []codec.ShardID, until, ts time.Time) []byte {
	e := enc{b: []byte(ctxRenew)}
	e.bytes16([]byte(holder))
	e.time(until)
	e.time(ts)
	e.u16(len(ids))
	for _, id := range ids {
		e.raw(id[:])
	}
	return e.b
}

func challengeSigned(holder peer.ID, id codec.ShardID, salt [32]byte, ts time.Time) []byte {
	e := enc{b: []byte(ctxChallengeRequest)}
	e.bytes16([]byte(holder))
	e.raw(id[:])
	e.raw(salt[:])
	e.time(ts)
	return e.b
}

// Receipt is a holder's signed statement that it stores a shard for an
// owner until a lease expiry. Anyone can check it offline with
// VerifyReceipt; an owner keeps it as evidence for audits.
type Receipt struct {
	Holder    peer.ID          // the holder's peer ID
	HolderKey []byte           // the holder's marshalled public key
	Shard     codec.ShardID    // the stored shard
	Owner     shardstore.Owner // the owner it is stored for
	Size      int64            // the shard's size in bytes
	Lease     time.Time        // kept at least until then
	Issued    time.Time        // when the holder signed
	Signature []byte
}

func (r *Receipt) signed() []byte {
	e := enc{b: []byte(ctxReceipt)}
	e.bytes16([]byte(r.Holder))
	e.bytes16(r.HolderKey)
	e.raw(r.Shard[:])
	e.raw(r.Owner[:])
	e.u64(r.Size)
	e.time(r.Lease)
	e.time(r.Issued)
	return e.b
}

// receiptMagic starts a marshalled receipt; the byte after it is the version.
const receiptMagic = "JFRC\x01"

// Marshal encodes the receipt: "JFRC", version 1, then the signed fields
// and the signature, each variable field with a 2-byte length.
func (r *Receipt) Marshal() []byte {
	e := enc{b: []byte(receiptMagic)}
	e.raw(r.signed()[len(ctxReceipt):])
	e.bytes16(r.Signature)
	return e.b
}

// UnmarshalReceipt decodes a receipt made by Marshal. It does not verify
// the signature: call VerifyReceipt.
func UnmarshalReceipt(b []byte) (Receipt, error) {
	var r Receipt
	if len(b) < len(receiptMagic) || string(b[:len(receiptMagic)]) != receiptMagic {
		return r, fmt.Errorf("%w: not a version 1 receipt", errFrame)
	}
	d := dec{b: b[len(receiptMagic):]}
	r.Holder = peer.ID(d.bytes16(maxKey))
	r.HolderKey = d.bytes16(maxKey)
	r.Shard = d.id()
	copy(r.Owner[:], d.take(shardstore.OwnerSize))
	r.Size = d.u64()
	r.Lease = d.time()
	r.Issued = d.time()
	r.Signature = d.bytes16(maxKey)
	if err := d.done(); err != nil {
		return Receipt{}, fmt.Errorf("shardproto: receipt: %w", err)
	}
	return r, nil
}

// VerifyReceipt checks that the receipt is signed by the key it carries
// and that this key is the holder's peer ID. It needs no network.
func VerifyReceipt(r Receipt) error {
	return verifyHolderSig(r.Holder, r.HolderKey, r.signed(), r.Signature, "receipt")
}

func verifyHolderSig(holder peer.ID, keyBytes, msg, sig []byte, what string) error {
	pk, err := crypto.UnmarshalPublicKey(keyBytes)
	if err != nil {
		return fmt.Errorf("%w: %s: holder key: %v", ErrBadSignature, what, err)
	}
	if !holder.MatchesPublicKey(pk) {
		return fmt.Errorf("%w: %s: key is not holder %s's", ErrBadSignature, what, holder)
	}
	ok, err := pk.Verify(msg, sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: %s from %s", ErrBadSignature, what, holder)
	}
	return nil
}

// ChallengeAnswer is a holder's signed answer to a salted-hash challenge.
// Because it is signed, a wrong answer is evidence against the holder.
type ChallengeAnswer struct {
	Holder    peer.ID
	HolderKey []byte
	Shard     codec.ShardID
	Salt      [32]byte
	Answer    [32]byte // BLAKE3-256(salt ‖ shard) as computed by the holder
	Issued    time.Time
	Signature []byte
}

func (a *ChallengeAnswer) signed() []byte {
	e := enc{b: []byte(ctxChallenge)}
	e.bytes16([]byte(a.Holder))
	e.bytes16(a.HolderKey)
	e.raw(a.Shard[:])
	e.raw(a.Salt[:])
	e.raw(a.Answer[:])
	e.time(a.Issued)
	return e.b
}

// answerMagic starts a marshalled challenge answer.
const answerMagic = "JFCA\x01"

// Marshal encodes the answer like Receipt.Marshal.
func (a *ChallengeAnswer) Marshal() []byte {
	e := enc{b: []byte(answerMagic)}
	e.raw(a.signed()[len(ctxChallenge):])
	e.bytes16(a.Signature)
	return e.b
}

// UnmarshalChallengeAnswer decodes an answer made by Marshal without
// verifying it.
func UnmarshalChallengeAnswer(b []byte) (ChallengeAnswer, error) {
	var a ChallengeAnswer
	if len(b) < len(answerMagic) || string(b[:len(answerMagic)]) != answerMagic {
		return a, fmt.Errorf("%w: not a version 1 challenge answer", errFrame)
	}
	d := dec{b: b[len(answerMagic):]}
	a.Holder = peer.ID(d.bytes16(maxKey))
	a.HolderKey = d.bytes16(maxKey)
	a.Shard = d.id()
	a.Salt = d.b32()
	a.Answer = d.b32()
	a.Issued = d.time()
	a.Signature = d.bytes16(maxKey)
	if err := d.done(); err != nil {
		return ChallengeAnswer{}, fmt.Errorf("shardproto: challenge answer: %w", err)
	}
	return a, nil
}

// VerifyChallengeAnswer checks the holder's signature on an answer. It
// says nothing about whether the answer is right: compare Answer with the
// expected value (shardstore.ChallengeAnswer over the original shard).
func VerifyChallengeAnswer(a ChallengeAnswer) error {
	return verifyHolderSig(a.Holder, a.HolderKey, a.signed(), a.Signature, "challenge answer")
}
