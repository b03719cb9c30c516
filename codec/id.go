package codec

import (
	"encoding/hex"
	"fmt"

	"github.com/zeebo/blake3"
)

// IDSize is the length in bytes of a ShardID.
const IDSize = 32

// ShardID names a shard by its content: the root of the BLAKE3 tree over the
// shard's bytes (header included). Because BLAKE3's root is an ordinary Merkle
// root, the same ID verifies the whole shard, any byte range of it and any
// leaf given with its proof (see Prove and VerifyRange).
type ShardID [IDSize]byte

// IDOf returns the ShardID of the given shard bytes. (zeebo/blake3 computes
// the same root as the tree code in tree.go, about twice as fast on AVX2.)
func IDOf(shard []byte) ShardID {
	return ShardID(blake3.Sum256(shard))
}

// ParseShardID parses the 64-character lower-case hex form produced by
// ShardID.String. Anything else is refused, so a parsed ID is always safe to
// use as a file name.
func ParseShardID(s string) (ShardID, error) {
	var id ShardID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("codec: shard ID %q: want %d hex characters, got %d", truncate(s), 2*IDSize, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return id, fmt.Errorf("codec: shard ID %q: invalid character at %d (lower-case hex only)", truncate(s), i)
		}
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("codec: shard ID %q: %w", truncate(s), err)
	}
	return id, nil
}

// String returns the lower-case hex form of id.
func (id ShardID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 12 hex characters of id, for log lines.
func (id ShardID) Short() string { return hex.EncodeToString(id[:6]) }

// IsZero reports whether id is the zero ID.
func (id ShardID) IsZero() bool { return id == ShardID{} }

// MarshalText implements encoding.TextMarshaler.
func (id ShardID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ShardID) UnmarshalText(b []byte) error {
	v, err := ParseShardID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
