package codec

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// FormatVersion is the version of the shard and layout formats written by
// this package. It appears in every shard header and every layout.
const FormatVersion = 1

const (
	// MaxShards bounds k+m: shard indexes are one byte.
	MaxShards = 256
	// MinSegmentSize and MaxSegmentSize bound Params.SegmentSize. The upper
	// bound is also the decompression cap of one segment.
	MinSegmentSize = 4 << 10
	MaxSegmentSize = 64 << 20
	// DefaultSegmentSize is the plaintext bytes per segment unless configured
	// otherwise; docs/benchmarks.md shows the measurement behind it.
	DefaultSegmentSize = 4 << 20
)

// Compression selects how segments are compressed before encryption.
type Compression uint8

// The compression algorithms. The numbers are part of the format.
const (
	CompressNone Compression = 0
	CompressZstd Compression = 1
	CompressGzip Compression = 2
)

// String returns the algorithm's name as accepted by ParseCompression.
func (c Compression) String() string {
	switch c {
	case CompressNone:
		return "none"
	case CompressZstd:
		return "zstd"
	case CompressGzip:
		return "gzip"
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// ParseCompression parses "none", "zstd" or "gzip".
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(s) {
	case "none", "off", "":
		return CompressNone, nil
	case "zstd":
		return CompressZstd, nil
	case "gzip":
		return CompressGzip, nil
	}
	return 0, fmt.Errorf("codec: unknown compression %q (want none, zstd or gzip)", s)
}

// Params are the per-file encoding parameters.
type Params struct {
	// K data shards and M parity shards per segment: any K of the K+M
	// shards rebuild the segment.
	K, M int
	// SegmentSize is the plaintext bytes per segment; every segment but
	// the last holds exactly this many.
	SegmentSize int
	// Compression applied to each segment when it pays off.
	Compression Compression
}

// DefaultParams returns the original design's reference redundancy (10
// data + 20 parity shards), zstd and the default segment size.
func DefaultParams() Params {
	return Params{K: 10, M: 20, SegmentSize: DefaultSegmentSize, Compression: CompressZstd}
}

// Validate reports whether p can be used to encode.
func (p Params) Validate() error {
	switch {
	case p.K < 1:
		return fmt.Errorf("codec: k=%d: need at least one data shard", p.K)
	case p.M < 0:
		return fmt.Errorf("codec: m=%d: parity shards cannot be negative", p.M)
	case p.K+p.M > MaxShards:
		return fmt.Errorf("codec: k+m=%d: at most %d shards per segment", p.K+p.M, MaxShards)
	case p.SegmentSize < MinSegmentSize || p.SegmentSize > MaxSegmentSize:
		return fmt.Errorf("codec: segment size %d outside [%d, %d]", p.SegmentSize, MinSegmentSize, MaxSegmentSize)
	case p.Compression > CompressGzip:
		return fmt.Errorf("codec: unknown compression %d", p.Compression)
	}
	return nil
}

// Total returns K+M.
func (p Params) Total() int { return p.K + p.M }

// KeySize is the size of a file's data key.
const KeySize = 32

// Key is a file's random data key. The codec derives the file's segment
// encryption key and challenge secret from it and the layout's salt.
type Key [KeySize]byte

// NewKey returns a fresh random data key.
func NewKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("codec: new key: %w", err)
	}
	return k, nil
}
