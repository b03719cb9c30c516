package codec

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/zeebo/blake3"
)

// Proof of storage, the original design's way: the owner keeps N
// (salt, answer) pairs per shard, answer = BLAKE3-256(salt ‖ shard bytes);
// later it sends a salt and compares the holder's answer. Salts come from a
// per-file secret, so the owner can re-derive them instead of storing them;
// only the answers must be kept. Each pair costs a full pass over the shard,
// so they are made off the upload's hot path. Random-leaf audits against
// the shard ID (Prove, VerifyRange) need no precomputation at all.

// ChallengeSecret is the per-file secret that challenge salts derive from.
type ChallengeSecret [32]byte

// NewChallengeSecret derives a file's challenge secret from its data key
// and layout salt. It reveals nothing about the data key, so the owner may
// hand it to the node that audits on its behalf.
func NewChallengeSecret(key Key, l *Layout) (ChallengeSecret, error) {
	var s ChallengeSecret
	b, err := hkdf.Key(sha256.New, key[:], l.Salt[:], challengeKeyInfo, len(s))
	if err != nil {
		return s, fmt.Errorf("codec: derive challenge secret: %w", err)
	}
	copy(s[:], b)
	return s, nil
}

// Salt returns the i-th challenge salt for shard id: BLAKE3 keyed with the
// secret over "salt" ‖ id ‖ i (big-endian uint32).
func (s ChallengeSecret) Salt(id ShardID, i uint32) [32]byte {
	h, err := blake3.NewKeyed(s[:])
	if err != nil {
		panic(err) // unreachable: the key is always 32 bytes
	}
	h.Write([]byte("salt"))
	h.Write(id[:])
	var ib [4]byte
	binary.BigEndian.PutUint32(ib[:], i)
	h.Write(ib[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Challenge is one precomputed salted-hash challenge of a shard.
type Challenge struct {
	Index  uint32
	Salt   [32]byte
	Answer [32]byte
}

// ChallengeAnswer computes BLAKE3-256(salt ‖ shard) from a reader, as a
// holder does to answer a challenge.
func ChallengeAnswer(salt [32]byte, shard io.Reader) ([32]byte, error) {
	h := blake3.New()
	h.Write(salt[:])
	var out [32]byte
	if _, err := io.Copy(h, shard); err != nil {
		return out, fmt.Errorf("codec: challenge answer: %w", err)
	}
	h.Sum(out[:0])
	return out, nil
}

// MakeChallenges computes challenges first..first+n-1 of a shard held in
// memory.
func (s ChallengeSecret) MakeChallenges(shard []byte, first, n uint32) []Challenge {
	id := IDOf(shard)
	out := make([]Challenge, n)
	h := blake3.New()
	for k := range out {
		c := &out[k]
		c.Index = first + uint32(k)
		c.Salt = s.Salt(id, c.Index)
		h.Reset()
		h.Write(c.Salt[:])
		h.Write(shard)
		h.Sum(c.Answer[:0])
	}
	return out
}
