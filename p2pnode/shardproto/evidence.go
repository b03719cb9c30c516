package shardproto

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"lukechampine.com/blake3"
)

// Signed answers to audits and renewals. A holder signs them with its
// host key, like receipts, so that a failed audit is evidence anyone can
// check offline: a ProofAnswer whose proofs do not verify against the
// shard ID, or a NotFoundAnswer, next to the holder's RenewReceipt or
// Receipt for the same shard.

// Domain-separation prefixes of the holder's answers (see sign.go for
// the others).
const (
	ctxProofAnswer  = "jellyfish/shard/audit/proof/v1\x00"
	ctxNotFound     = "jellyfish/shard/audit/not-found/v1\x00"
	ctxRenewReceipt = "jellyfish/shard/renew-receipt/v1\x00"
)

// Magics of the marshalled answers; the byte after each is the version.
const (
	proofAnswerMagic    = "JFPA\x01"
	notFoundMagic       = "JFNF\x01"
	renewReceiptMagic   = "JFRR\x01"
	renewInclusionMagic = "JFRI\x01"
)

// maxAnswer caps a marshalled signed answer without proofs: holder ID,
// key and signature at maxKey each, and the fixed fields.
const maxAnswer = 4 * maxKey

// maxRenewPath caps the length of a renewal inclusion path: a tree of
// MaxRenewIDs leaves is 10 levels deep.
const maxRenewPath = 32

// ProofAnswer is a holder's signed answer to a leaf-proof request: the
// proofs it sent, bound by their digest to the request (owner, shard,
// leaves, the requester's nonce) and the holder's time. VerifyProofAnswer
// checks who said it; CheckProofAnswer checks whether it is right.
type ProofAnswer struct {
	Holder    peer.ID
	HolderKey []byte
	// Owner is the owner the requester named; the holder does not check
	// it (anyone may audit a shard), it only signs what it was asked.
	Owner  shardstore.Owner
	Shard  codec.ShardID
	Nonce  [32]byte // chosen by the requester
	Leaves []int64  // the leaf indexes asked for
	// Digest is ProofDigest(Proofs) as the holder computed it.
	Digest    [32]byte
	Issued    time.Time // the holder's clock
	Signature []byte
	// Proofs are the proofs sent, one per leaf, in order. They are not
	// signed themselves: their Digest is.
	Proofs [][]byte
}

// ProofDigest is the digest a ProofAnswer signs over its proofs:
// BLAKE3-256 of count u16 ‖ for each proof, length u32 ‖ bytes.
func ProofDigest(proofs [][]byte) [32]byte {
	h := blake3.New(32, nil)
	e := enc{}
	e.u16(len(proofs))
	h.Write(e.b)
	for _, p := range proofs {
		e.b = e.b[:0]
		e.u32(int64(len(p)))
		h.Write(e.b)
		h.Write(p)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

func (a *ProofAnswer) fields(e *enc) {
	e.bytes16([]byte(a.Holder))
	e.bytes16(a.HolderKey)
	e.raw(a.Owner[:])
	e.raw(a.Shard[:])
	e.raw(a.Nonce[:])
	e.u16(len(a.Leaves))
	for _, l := range a.Leaves {
		e.u64(l)
	}
	e.raw(a.Digest[:])
	e.time(a.Issued)
}

func (a *ProofAnswer) signed() []byte {
	e := enc{b: []byte(ctxProofAnswer)}
	a.fields(&e)
	return e.b
}

// Sign fills Holder and HolderKey from key, Digest from Proofs, and signs.
func (a *ProofAnswer) Sign(key crypto.PrivKey) error {
	if len(a.Leaves) > MaxProofLeaves || len(a.Proofs) != len(a.Leaves) {
		return fmt.Errorf("shardproto: proof answer: %d proofs for %d leaves (at most %d)", len(a.Proofs), len(a.Leaves), MaxProofLeaves)
	}
	var err error
	if a.Holder, a.HolderKey, err = holderOf(key); err != nil {
		return err
	}
	a.Digest = ProofDigest(a.Proofs)
	a.Signature, err = key.Sign(a.signed())
	return err
}

// Marshal encodes the answer with its proofs: "JFPA", version 1, the
// signed fields, sig16, then count u16 and each proof as length u32 ‖
// bytes. On the wire the proofs follow the answer header instead, and the
// answer carries a count of 0.
func (a *ProofAnswer) Marshal() []byte {
	e := enc{b: []byte(proofAnswerMagic)}
	a.fields(&e)
	e.bytes16(a.Signature)
	e.u16(len(a.Proofs))
	for _, p := range a.Proofs {
		e.u32(int64(len(p)))
		e.raw(p)
	}
	return e.b
}

// UnmarshalProofAnswer decodes an answer made by Marshal. It does not
// verify it: call VerifyProofAnswer and CheckProofAnswer.
func UnmarshalProofAnswer(b []byte) (ProofAnswer, error) {
	var a ProofAnswer
	if len(b) < len(proofAnswerMagic) || string(b[:len(proofAnswerMagic)]) != proofAnswerMagic {
		return a, fmt.Errorf("%w: not a version 1 proof answer", errFrame)
	}
	d := dec{b: b[len(proofAnswerMagic):]}
	a.Holder = peer.ID(d.bytes16(maxKey))
	a.HolderKey = d.bytes16(maxKey)
	copy(a.Owner[:], d.take(shardstore.OwnerSize))
	a.Shard = d.id()
	a.Nonce = d.b32()
	n := d.u16()
	if n > MaxProofLeaves {
		return ProofAnswer{}, fmt.Errorf("%w: proof answer for %d leaves, limit %d", errFrame, n, MaxProofLeaves)
	}
	for i := 0; i < n && d.err == nil; i++ {
		a.Leaves = append(a.Leaves, d.u64())
	}
	a.Digest = d.b32()
	a.Issued = d.time()
	a.Signature = d.bytes16(maxKey)
	n = d.u16()
	if n > MaxProofLeaves {
		return ProofAnswer{}, fmt.Errorf("%w: proof answer with %d proofs, limit %d", errFrame, n, MaxProofLeaves)
	}
	for i := 0; i < n && d.err == nil; i++ {
		l := d.u32()
		if l > maxProofBytes(codec.LeafSize) {
			return ProofAnswer{}, fmt.Errorf("%w: %d-byte leaf proof", errFrame, l)
		}
		a.Proofs = append(a.Proofs, d.take(int(l)))
	}
	if err := d.done(); err != nil {
		return ProofAnswer{}, fmt.Errorf("shardproto: proof answer: %w", err)
	}
	return a, nil
}

// VerifyProofAnswer checks that the answer is signed by the key it
// carries, that this key is the holder's peer ID, and that its proofs are
// the ones the holder signed (one per leaf, matching Digest). It says
// nothing about whether they are right: see CheckProofAnswer.
func VerifyProofAnswer(a ProofAnswer) error {
	if err := verifyHolderSig(a.Holder, a.HolderKey, a.signed(), a.Signature, "proof answer"); err != nil {
		return err
	}
	if len(a.Proofs) != len(a.Leaves) || ProofDigest(a.Proofs) != a.Digest {
		return fmt.Errorf("%w: proof answer from %s: the proofs are not those signed", ErrBadSignature, a.Holder)
	}
	return nil
}

// CheckProofAnswer checks each proof of the answer against its shard ID
// and leaf index and returns the leaves' bytes. A proof that does not
// verify, or a leaf outside the shard, fails it with ErrIntegrity. It
// does not check the signature: see VerifyProofAnswer.
func CheckProofAnswer(a ProofAnswer) ([][]byte, error) {
	if len(a.Proofs) != len(a.Leaves) {
		return nil, fmt.Errorf("%w: %d proofs for %d leaves", ErrIntegrity, len(a.Proofs), len(a.Leaves))
	}
	out := make([][]byte, len(a.Leaves))
	for i, leaf := range a.Leaves {
		proof := a.Proofs[i]
		size, err := codec.ProofLen(proof)
		if err == nil && (leaf < 0 || leaf >= codec.LeafCount(size)) {
			err = fmt.Errorf("leaf %d outside a %d-byte shard", leaf, size)
		}
		if err == nil {
			off := leaf * codec.LeafSize
			out[i], err = codec.VerifyRange(a.Shard, proof, off, min(codec.LeafSize, size-off))
		}
		if err != nil {
			return nil, fmt.Errorf("%w: leaf %d of %s: %v", ErrIntegrity, leaf, a.Shard.Short(), err)
		}
	}
	return out, nil
}

// NotFoundAnswer is a holder's signed statement that, asked with the
// requester's nonce, it held no copy of a shard.
type NotFoundAnswer struct {
	Holder    peer.ID
	HolderKey []byte
	Owner     shardstore.Owner // the owner the requester named, unchecked
	Shard     codec.ShardID
	Nonce     [32]byte
	Issued    time.Time // the holder's clock
	Signature []byte
}

func (a *NotFoundAnswer) fields(e *enc) {
	e.bytes16([]byte(a.Holder))
	e.bytes16(a.HolderKey)
	e.raw(a.Owner[:])
	e.raw(a.Shard[:])
	e.raw(a.Nonce[:])
	e.time(a.Issued)
}

func (a *NotFoundAnswer) signed() []byte {
	e := enc{b: []byte(ctxNotFound)}
	a.fields(&e)
	return e.b
}

// Sign fills Holder and HolderKey from key and signs.
func (a *NotFoundAnswer) Sign(key crypto.PrivKey) error {
	var err error
	if a.Holder, a.HolderKey, err = holderOf(key); err != nil {
		return err
	}
	a.Signature, err = key.Sign(a.signed())
	return err
}

// Marshal encodes the answer: "JFNF", version 1, the signed fields, sig16.
func (a *NotFoundAnswer) Marshal() []byte {
	e := enc{b: []byte(notFoundMagic)}
	a.fields(&e)
	e.bytes16(a.Signature)
	return e.b
}

// UnmarshalNotFoundAnswer decodes an answer made by Marshal without
// verifying it.
func UnmarshalNotFoundAnswer(b []byte) (NotFoundAnswer, error) {
	var a NotFoundAnswer
	if len(b) < len(notFoundMagic) || string(b[:len(notFoundMagic)]) != notFoundMagic {
		return a, fmt.Errorf("%w: not a version 1 not-found answer", errFrame)
	}
	d := dec{b: b[len(notFoundMagic):]}
	a.Holder = peer.ID(d.bytes16(maxKey))
	a.HolderKey = d.bytes16(maxKey)
	copy(a.Owner[:], d.take(shardstore.OwnerSize))
	a.Shard = d.id()
	a.Nonce = d.b32()
	a.Issued = d.time()
	a.Signature = d.bytes16(maxKey)
	if err := d.done(); err != nil {
		return NotFoundAnswer{}, fmt.Errorf("shardproto: not-found answer: %w", err)
	}
	return a, nil
}

// VerifyNotFound checks the holder's signature on a not-found answer.
func VerifyNotFound(a NotFoundAnswer) error {
	return verifyHolderSig(a.Holder, a.HolderKey, a.signed(), a.Signature, "not-found answer")
}

// AuditVerdict is what a verified audit answer shows.
type AuditVerdict struct {
	Holder peer.ID
	Owner  shardstore.Owner
	Shard  codec.ShardID
	Nonce  [32]byte
	Issued time.Time
	// Failed: the holder said it holds no copy, or signed proofs that do
	// not verify against Shard; Reason says which.
	Failed bool
	Reason string
}

// VerifyAuditAnswer decodes a marshalled ProofAnswer or NotFoundAnswer,
// checks its signature and, for a proof answer, its proofs against the
// shard ID. It needs nothing but the bytes. An error means the bytes are
// no holder's answer (malformed, or the signature does not verify); a
// signed answer that shows the holder failed the audit returns a verdict
// with Failed set.
func VerifyAuditAnswer(b []byte) (AuditVerdict, error) {
	switch {
	case len(b) >= len(notFoundMagic) && string(b[:len(notFoundMagic)]) == notFoundMagic:
		a, err := UnmarshalNotFoundAnswer(b)
		if err == nil {
			err = VerifyNotFound(a)
		}
		if err != nil {
			return AuditVerdict{}, err
		}
		return AuditVerdict{Holder: a.Holder, Owner: a.Owner, Shard: a.Shard, Nonce: a.Nonce, Issued: a.Issued,
			Failed: true, Reason: "the holder said it does not hold the shard"}, nil
	case len(b) >= len(proofAnswerMagic) && string(b[:len(proofAnswerMagic)]) == proofAnswerMagic:
		a, err := UnmarshalProofAnswer(b)
		if err == nil {
			err = VerifyProofAnswer(a)
		}
		if err != nil {
			return AuditVerdict{}, err
		}
		v := AuditVerdict{Holder: a.Holder, Owner: a.Owner, Shard: a.Shard, Nonce: a.Nonce, Issued: a.Issued}
		if _, err := CheckProofAnswer(a); err != nil {
			v.Failed, v.Reason = true, err.Error()
		}
		return v, nil
	}
	return AuditVerdict{}, fmt.Errorf("%w: not an audit answer", errFrame)
}

// RenewReceipt is a holder's signed answer to a renew request: for an
// owner, it renewed until a lease expiry the Count shards whose
// RenewRoot is Root (the request's IDs it holds; those it does not hold
// are left out). Together with a RenewInclusion it shows that one shard
// was among them.
type RenewReceipt struct {
	Holder    peer.ID
	HolderKey []byte
	Owner     shardstore.Owner // the owner who signed the request
	Until     time.Time        // the lease granted
	Count     int              // shards renewed
	Root      [32]byte         // RenewRoot of their IDs
	Issued    time.Time        // the holder's clock
	Signature []byte
}

func (r *RenewReceipt) fields(e *enc) {
	e.bytes16([]byte(r.Holder))
	e.bytes16(r.HolderKey)
	e.raw(r.Owner[:])
	e.time(r.Until)
	e.u32(int64(r.Count))
	e.raw(r.Root[:])
	e.time(r.Issued)
}

func (r *RenewReceipt) signed() []byte {
	e := enc{b: []byte(ctxRenewReceipt)}
	r.fields(&e)
	return e.b
}

// Sign fills Holder and HolderKey from key and signs.
func (r *RenewReceipt) Sign(key crypto.PrivKey) error {
	if r.Count < 0 || r.Count > MaxRenewIDs {
		return fmt.Errorf("shardproto: renew receipt for %d shards (at most %d)", r.Count, MaxRenewIDs)
	}
	var err error
	if r.Holder, r.HolderKey, err = holderOf(key); err != nil {
		return err
	}
	r.Signature, err = key.Sign(r.signed())
	return err
}

// Marshal encodes the receipt: "JFRR", version 1, the signed fields, sig16.
func (r *RenewReceipt) Marshal() []byte {
	e := enc{b: []byte(renewReceiptMagic)}
	r.fields(&e)
	e.bytes16(r.Signature)
	return e.b
}

// UnmarshalRenewReceipt decodes a receipt made by Marshal without
// verifying it.
func UnmarshalRenewReceipt(b []byte) (RenewReceipt, error) {
	var r RenewReceipt
	if len(b) < len(renewReceiptMagic) || string(b[:len(renewReceiptMagic)]) != renewReceiptMagic {
		return r, fmt.Errorf("%w: not a version 1 renew receipt", errFrame)
	}
	d := dec{b: b[len(renewReceiptMagic):]}
	r.Holder = peer.ID(d.bytes16(maxKey))
	r.HolderKey = d.bytes16(maxKey)
	copy(r.Owner[:], d.take(shardstore.OwnerSize))
	r.Until = d.time()
	r.Count = int(d.u32())
	r.Root = d.b32()
	r.Issued = d.time()
	r.Signature = d.bytes16(maxKey)
	if err := d.done(); err != nil {
		return RenewReceipt{}, fmt.Errorf("shardproto: renew receipt: %w", err)
	}
	if r.Count > MaxRenewIDs {
		return RenewReceipt{}, fmt.Errorf("shardproto: renew receipt: %w: %d shards, limit %d", errFrame, r.Count, MaxRenewIDs)
	}
	return r, nil
}

// VerifyRenewReceipt checks the holder's signature on a renew receipt.
func VerifyRenewReceipt(r RenewReceipt) error {
	return verifyHolderSig(r.Holder, r.HolderKey, r.signed(), r.Signature, "renew receipt")
}

// Renewal is one renew request's outcome: the IDs the holder renewed,
// sorted and without duplicates, and its verified receipt for them.
type Renewal struct {
	IDs     []codec.ShardID
	Receipt RenewReceipt
}

// Inclusion returns the evidence that id was among the shards renewed.
// It does not need IDs sorted.
func (r Renewal) Inclusion(id codec.ShardID) (RenewInclusion, error) {
	ids := sortedIDs(r.IDs)
	i, ok := slices.BinarySearchFunc(ids, id, compareIDs)
	if !ok {
		return RenewInclusion{}, fmt.Errorf("shardproto: shard %s was not renewed", id.Short())
	}
	return RenewInclusion{Receipt: r.Receipt, Shard: id, Index: i, Path: renewPath(leafHashes(ids), i)}, nil
}

// RenewInclusion is a renew receipt together with the Merkle path that
// shows one shard among those it renewed.
type RenewInclusion struct {
	Receipt RenewReceipt
	Shard   codec.ShardID
	Index   int // the shard's position among the sorted IDs renewed
	Path    [][32]byte
}

// Marshal encodes the inclusion: "JFRI", version 1, the marshalled
// receipt as a field with a 2-byte length, the shard ID, index u32, path
// length u8 and the path's hashes.
func (ri *RenewInclusion) Marshal() []byte {
	e := enc{b: []byte(renewInclusionMagic)}
	e.bytes16(ri.Receipt.Marshal())
	e.raw(ri.Shard[:])
	e.u32(int64(ri.Index))
	e.u8(byte(len(ri.Path)))
	for _, h := range ri.Path {
		e.raw(h[:])
	}
	return e.b
}

// UnmarshalRenewInclusion decodes an inclusion made by Marshal without
// verifying it.
func UnmarshalRenewInclusion(b []byte) (RenewInclusion, error) {
	var ri RenewInclusion
	if len(b) < len(renewInclusionMagic) || string(b[:len(renewInclusionMagic)]) != renewInclusionMagic {
		return ri, fmt.Errorf("%w: not a version 1 renew inclusion", errFrame)
	}
	d := dec{b: b[len(renewInclusionMagic):]}
	rb := d.bytes16(maxAnswer)
	ri.Shard = d.id()
	ri.Index = int(d.u32())
	n := int(d.u8())
	if n > maxRenewPath {
		return RenewInclusion{}, fmt.Errorf("%w: renew inclusion path of %d, limit %d", errFrame, n, maxRenewPath)
	}
	for i := 0; i < n && d.err == nil; i++ {
		ri.Path = append(ri.Path, d.b32())
	}
	if err := d.done(); err != nil {
		return RenewInclusion{}, fmt.Errorf("shardproto: renew inclusion: %w", err)
	}
	var err error
	if ri.Receipt, err = UnmarshalRenewReceipt(rb); err != nil {
		return RenewInclusion{}, err
	}
	return ri, nil
}

// VerifyRenewInclusion checks the receipt's signature and that its Root
// covers Shard at Index.
func VerifyRenewInclusion(ri RenewInclusion) error {
	if err := VerifyRenewReceipt(ri.Receipt); err != nil {
		return err
	}
	if !verifyRenewPath(ri.Receipt.Root, ri.Receipt.Count, ri.Index, leafHash(ri.Shard), ri.Path) {
		return fmt.Errorf("%w: shard %s is not among those %s renewed", ErrBadSignature, ri.Shard.Short(), ri.Receipt.Holder)
	}
	return nil
}

// RenewRoot returns the root of the Merkle tree a RenewReceipt signs over
// ids, and how many they are once sorted and without duplicates. Leaves
// are BLAKE3-256(0x00 ‖ id) over the sorted IDs, interior nodes
// BLAKE3-256(0x01 ‖ left ‖ right), and the tree is split as in RFC 9162
// (the left subtree holds the largest power of two below the count); the
// root of no IDs is BLAKE3-256 of nothing.
func RenewRoot(ids []codec.ShardID) ([32]byte, int) {
	s := sortedIDs(ids)
	return treeRoot(leafHashes(s)), len(s)
}

// sortedIDs returns ids sorted, without duplicates, in a new slice.
func sortedIDs(ids []codec.ShardID) []codec.ShardID {
	s := slices.Clone(ids)
	slices.SortFunc(s, compareIDs)
	return slices.Compact(s)
}

func compareIDs(a, b codec.ShardID) int { return bytes.Compare(a[:], b[:]) }

func leafHash(id codec.ShardID) [32]byte {
	var b [1 + len(id)]byte
	copy(b[1:], id[:])
	return blake3.Sum256(b[:])
}

func leafHashes(ids []codec.ShardID) [][32]byte {
	out := make([][32]byte, len(ids))
	for i, id := range ids {
		out[i] = leafHash(id)
	}
	return out
}

func nodeHash(l, r [32]byte) [32]byte {
	var b [65]byte
	b[0] = 1
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return blake3.Sum256(b[:])
}

// split returns the largest power of two below n (n > 1).
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

func treeRoot(h [][32]byte) [32]byte {
	switch len(h) {
	case 0:
		return blake3.Sum256(nil)
	case 1:
		return h[0]
	}
	k := split(len(h))
	return nodeHash(treeRoot(h[:k]), treeRoot(h[k:]))
}

// renewPath returns the inclusion path of leaf m (RFC 9162 PATH).
func renewPath(h [][32]byte, m int) [][32]byte {
	if len(h) <= 1 {
		return nil
	}
	k := split(len(h))
	if m < k {
		return append(renewPath(h[:k], m), treeRoot(h[k:]))
	}
	return append(renewPath(h[k:], m-k), treeRoot(h[:k]))
}

// verifyRenewPath checks an inclusion path (RFC 9162, 2.1.3.2).
func verifyRenewPath(root [32]byte, size, index int, leaf [32]byte, path [][32]byte) bool {
	if index < 0 || index >= size || len(path) > maxRenewPath {
		return false
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range path {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	return sn == 0 && r == root
}

// holderOf returns the peer ID and marshalled public key of a holder key.
func holderOf(key crypto.PrivKey) (peer.ID, []byte, error) {
	if key == nil {
		return "", nil, errors.New("shardproto: nil holder key")
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return "", nil, fmt.Errorf("shardproto: holder key: %w", err)
	}
	kb, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return "", nil, fmt.Errorf("shardproto: holder key: %w", err)
	}
	return id, kb, nil
}

// NotFoundError is a holder's verified, signed answer that it holds no
// copy of a shard. It unwraps to ErrNotFound.
type NotFoundError struct {
	Answer NotFoundAnswer
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("shardproto: holder %s: shard %s not found (signed answer)", e.Answer.Holder.ShortString(), e.Answer.Shard.Short())
}

// Unwrap returns ErrNotFound.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// BadProofError is a holder's verified, signed proof answer whose proofs
// do not verify against the shard ID. It unwraps to ErrIntegrity.
type BadProofError struct {
	Answer ProofAnswer
	Err    error // what CheckProofAnswer said
}

func (e *BadProofError) Error() string {
	return fmt.Sprintf("shardproto: holder %s: signed proof answer for %s does not verify: %v", e.Answer.Holder.ShortString(), e.Answer.Shard.Short(), e.Err)
}

// Unwrap returns ErrIntegrity.
func (e *BadProofError) Unwrap() error { return ErrIntegrity }
