package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// tagSize is the AES-GCM authentication tag length.
const tagSize = 16

// Labels for key derivation and additional data. They are part of the format.
const (
	segmentKeyInfo   = "jellyfish/codec/v1/segment-key"
	challengeKeyInfo = "jellyfish/codec/v1/challenge-secret"
	segmentAAD       = "jellyfish/codec/v1/segment"
)

// newSegmentAEAD derives the file's segment key from its data key and salt
// (HKDF-SHA256) and returns AES-256-GCM under it. The salt makes the segment
// key unique per encoding even if a caller reused a data key, so the
// counter nonces below can never repeat under one key.
func newSegmentAEAD(key Key, salt [SaltSize]byte) (cipher.AEAD, error) {
	sk, err := hkdf.Key(sha256.New, key[:], salt[:], segmentKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("codec: derive segment key: %w", err)
	}
	block, err := aes.NewCipher(sk)
	if err != nil {
		return nil, fmt.Errorf("codec: segment cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// segmentNonce is the 96-bit GCM nonce of a segment: three zero bytes, the
// segment index as a big-endian uint64, and a last-segment flag byte (1 on
// the final segment, else 0). Reordered segments fail because the index is
// in the nonce; truncation fails because the new last segment was sealed
// with flag 0; appended segments fail because nothing after the real last
// segment can be sealed with its index; spliced segments from other files
// fail because every file has its own segment key.
func segmentNonce(segment uint64, last bool) [12]byte {
	var n [12]byte
	binary.BigEndian.PutUint64(n[3:11], segment)
	if last {
		n[11] = 1
	}
	return n
}
