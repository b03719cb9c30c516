package codec

import (
	"encoding/binary"
	"fmt"
)

// SaltSize is the length of a layout's salt.
const SaltSize = 32

// Layout is everything needed, besides the data key and the shards, to
// decode a file: its parameters, salt, plaintext size and, per segment, the
// ciphertext length and the expected ID of each of its k+m shards. The owner
// keeps it inside the (encrypted) file manifest; holders never see it.
type Layout struct {
	Params
	Salt     [SaltSize]byte
	Size     int64
	Segments []SegmentInfo
}

// SegmentInfo describes one segment of a Layout.
type SegmentInfo struct {
	CipherLen int
	IDs       []ShardID // index i is shard i; len k+m
}

// SegmentCount returns the number of segments a file of size bytes has with
// the given segment size: at least one, even for an empty file, so that a
// final segment always authenticates the end of the stream.
func SegmentCount(size int64, segmentSize int) int64 {
	if size <= 0 {
		return 1
	}
	return (size + int64(segmentSize) - 1) / int64(segmentSize)
}

// PlainLen returns the plaintext length of segment i.
func (l *Layout) PlainLen(i int) int {
	if i == len(l.Segments)-1 {
		return int(l.Size - int64(i)*int64(l.SegmentSize))
	}
	return l.SegmentSize
}

// SegmentRange returns the first and last segment indexes that hold bytes
// [off, off+n) of the file; n must be positive and the range inside the file.
func (l *Layout) SegmentRange(off, n int64) (first, last int) {
	return int(off / int64(l.SegmentSize)), int((off + n - 1) / int64(l.SegmentSize))
}

// Expansion returns stored bytes divided by plaintext bytes, headers
// included (0 for an empty file).
func (l *Layout) Expansion() float64 {
	if l.Size == 0 {
		return 0
	}
	var stored int64
	for _, s := range l.Segments {
		stored += int64(len(s.IDs)) * int64(HeaderSize+(s.CipherLen+l.K-1)/l.K)
	}
	return float64(stored) / float64(l.Size)
}

// layoutMagic opens an encoded Layout.
var layoutMagic = [4]byte{'J', 'F', 'l', 'y'}

// layoutFixed is the size of an encoded layout before its segment list.
const layoutFixed = 4 + 1 + 1 + 1 + 1 + 4 + SaltSize + 8 + 8

// MarshalBinary encodes l:
//
//	magic "JFly" | version u8 | k u8 | m u8 | compression u8 |
//	segment size u32 | salt [32] | size u64 | segment count u64 |
//	per segment: ciphertext length u32 | (k+m) shard IDs [32]
//
// All integers are big-endian.
func (l *Layout) MarshalBinary() ([]byte, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	n := l.Total()
	b := make([]byte, layoutFixed, layoutFixed+len(l.Segments)*(4+n*IDSize))
	copy(b, layoutMagic[:])
	b[4] = FormatVersion
	b[5], b[6], b[7] = byte(l.K), byte(l.M), byte(l.Compression)
	binary.BigEndian.PutUint32(b[8:], uint32(l.SegmentSize))
	copy(b[12:], l.Salt[:])
	binary.BigEndian.PutUint64(b[44:], uint64(l.Size))
	binary.BigEndian.PutUint64(b[52:], uint64(len(l.Segments)))
	for _, s := range l.Segments {
		b = binary.BigEndian.AppendUint32(b, uint32(s.CipherLen))
		for _, id := range s.IDs {
			b = append(b, id[:]...)
		}
	}
	return b, nil
}

// UnmarshalBinary decodes a layout encoded by MarshalBinary and checks it is
// self-consistent. It never allocates more than the input justifies.
func (l *Layout) UnmarshalBinary(b []byte) error {
	if len(b) < layoutFixed {
		return formatErr("layout of %d bytes is too short", len(b))
	}
	if [4]byte(b[0:4]) != layoutMagic {
		return formatErr("not a Jellyfish layout (bad magic)")
	}
	if b[4] != FormatVersion {
		return formatErr("layout format version %d not supported (want %d)", b[4], FormatVersion)
	}
	var nl Layout
	nl.K, nl.M, nl.Compression = int(b[5]), int(b[6]), Compression(b[7])
	nl.SegmentSize = int(binary.BigEndian.Uint32(b[8:]))
	copy(nl.Salt[:], b[12:44])
	size := binary.BigEndian.Uint64(b[44:])
	count := binary.BigEndian.Uint64(b[52:])
	if err := nl.Params.Validate(); err != nil {
		return formatErr("layout parameters: %v", err)
	}
	if size > 1<<62 {
		return formatErr("layout size %d is implausible", size)
	}
	nl.Size = int64(size)
	per := uint64(4 + nl.Total()*IDSize)
	rest := uint64(len(b) - layoutFixed)
	if count != uint64(SegmentCount(nl.Size, nl.SegmentSize)) || rest != count*per {
		return formatErr("layout lists %d segments in %d bytes; size %d needs %d segments", count, rest, nl.Size, SegmentCount(nl.Size, nl.SegmentSize))
	}
	nl.Segments = make([]SegmentInfo, count)
	ids := make([]ShardID, int(count)*nl.Total())
	p := b[layoutFixed:]
	for i := range nl.Segments {
		s := &nl.Segments[i]
		s.CipherLen = int(binary.BigEndian.Uint32(p))
		p = p[4:]
		s.IDs = ids[:nl.Total():nl.Total()]
		ids = ids[nl.Total():]
		for j := range s.IDs {
			copy(s.IDs[j][:], p)
			p = p[IDSize:]
		}
	}
	if err := nl.check(); err != nil {
		return err
	}
	*l = nl
	return nil
}

// check verifies the layout's internal consistency.
func (l *Layout) check() error {
	if err := l.Params.Validate(); err != nil {
		return err
	}
	if l.Size < 0 || int64(len(l.Segments)) != SegmentCount(l.Size, l.SegmentSize) {
		return formatErr("layout of %d bytes has %d segments", l.Size, len(l.Segments))
	}
	for i, s := range l.Segments {
		if len(s.IDs) != l.Total() {
			return formatErr("segment %d lists %d shard IDs, want %d", i, len(s.IDs), l.Total())
		}
		// A segment's ciphertext is a mode byte, at most the plaintext
		// (compression is only kept when it shrinks) and the GCM tag.
		if s.CipherLen < 1+tagSize || s.CipherLen > 1+l.PlainLen(i)+tagSize {
			return formatErr("segment %d: ciphertext length %d impossible for %d plaintext bytes", i, s.CipherLen, l.PlainLen(i))
		}
	}
	return nil
}

// String summarises the layout for logs.
func (l *Layout) String() string {
	return fmt.Sprintf("%d bytes, %d segments of %d, k=%d m=%d %s", l.Size, len(l.Segments), l.SegmentSize, l.K, l.M, l.Compression)
}
