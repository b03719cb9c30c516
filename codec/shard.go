package codec

import (
	"encoding/binary"
	"errors"
	"io"

	"github.com/zeebo/blake3"
)

// HeaderSize is the length of a shard header.
const HeaderSize = 24

// shardMagic opens every shard.
var shardMagic = [4]byte{'J', 'F', 's', 'h'}

// Header is the versioned header at the start of every shard. It is covered
// by the shard's ID like the rest of the shard.
//
//	offset size field
//	0      4    magic "JFsh"
//	4      1    format version (1)
//	5      1    k, data shards per segment (1..255)
//	6      1    m, parity shards per segment
//	7      1    shard index in its segment (0..k+m-1; < k are data shards)
//	8      8    segment index, big-endian
//	16     4    segment ciphertext length, big-endian (what Reed-Solomon joins)
//	20     4    payload length, big-endian (bytes after the header)
type Header struct {
	Version    uint8
	K, M       uint8
	Index      uint8
	Segment    uint64
	CipherLen  uint32
	PayloadLen uint32
}

// put writes h into b[:HeaderSize].
func (h Header) put(b []byte) {
	_ = b[HeaderSize-1]
	copy(b[0:4], shardMagic[:])
	b[4] = h.Version
	b[5] = h.K
	b[6] = h.M
	b[7] = h.Index
	binary.BigEndian.PutUint64(b[8:16], h.Segment)
	binary.BigEndian.PutUint32(b[16:20], h.CipherLen)
	binary.BigEndian.PutUint32(b[20:24], h.PayloadLen)
}

// ParseHeader parses and checks the header at the start of shard. It checks
// the header's own consistency and that the payload length matches the
// shard's length; it does not check the shard against an ID.
func ParseHeader(shard []byte) (Header, error) {
	var h Header
	if len(shard) < HeaderSize {
		return h, formatErr("shard of %d bytes is shorter than its header", len(shard))
	}
	if [4]byte(shard[0:4]) != shardMagic {
		return h, formatErr("not a Jellyfish shard (bad magic)")
	}
	h.Version = shard[4]
	h.K, h.M, h.Index = shard[5], shard[6], shard[7]
	h.Segment = binary.BigEndian.Uint64(shard[8:16])
	h.CipherLen = binary.BigEndian.Uint32(shard[16:20])
	h.PayloadLen = binary.BigEndian.Uint32(shard[20:24])
	switch {
	case h.Version != FormatVersion:
		return h, formatErr("shard format version %d not supported (want %d)", h.Version, FormatVersion)
	case h.K == 0:
		return h, formatErr("shard header has k=0")
	case int(h.Index) >= int(h.K)+int(h.M):
		return h, formatErr("shard index %d out of range for k+m=%d", h.Index, int(h.K)+int(h.M))
	case uint64(len(shard)-HeaderSize) != uint64(h.PayloadLen):
		return h, formatErr("shard payload is %d bytes, header says %d", len(shard)-HeaderSize, h.PayloadLen)
	case uint64(h.PayloadLen) != (uint64(h.CipherLen)+uint64(h.K)-1)/uint64(h.K):
		return h, formatErr("payload length %d does not fit ciphertext length %d and k=%d", h.PayloadLen, h.CipherLen, h.K)
	}
	return h, nil
}

// Shard is one encoded shard: a header and a payload, kept apart so the
// encoder never copies the payload. Its bytes on the wire and on disk are
// the header followed by the payload.
type Shard struct {
	Header  Header
	ID      ShardID
	head    [HeaderSize]byte
	Payload []byte
}

// Len returns the shard's length in bytes.
func (s *Shard) Len() int { return HeaderSize + len(s.Payload) }

// HeaderBytes returns the encoded header.
func (s *Shard) HeaderBytes() []byte { return s.head[:] }

// Bytes returns the shard's bytes in a new slice.
func (s *Shard) Bytes() []byte {
	b := make([]byte, 0, s.Len())
	b = append(b, s.head[:]...)
	return append(b, s.Payload...)
}

// WriteTo writes the shard's bytes to w.
func (s *Shard) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(s.head[:])
	if err != nil {
		return int64(n), err
	}
	m, err := w.Write(s.Payload)
	return int64(n + m), err
}

// seal encodes the header and computes the shard's ID.
func (s *Shard) seal(hasher *blake3.Hasher) {
	s.Header.put(s.head[:])
	hasher.Reset()
	hasher.Write(s.head[:])
	hasher.Write(s.Payload)
	hasher.Sum(s.ID[:0])
}

// Reader returns a reader of the shard's bytes (header, then payload)
// that can seek, so a sender can rewind it to retry, without copying the
// shard into one buffer.
func (s *Shard) Reader() io.ReadSeeker { return &shardReader{s: s} }

type shardReader struct {
	s   *Shard
	off int64
}

func (r *shardReader) Read(p []byte) (int, error) {
	total := int64(r.s.Len())
	if r.off >= total {
		return 0, io.EOF
	}
	n := 0
	if r.off < HeaderSize {
		n = copy(p, r.s.head[r.off:])
	}
	if n < len(p) && r.off+int64(n) >= HeaderSize {
		n += copy(p[n:], r.s.Payload[r.off+int64(n)-HeaderSize:])
	}
	r.off += int64(n)
	return n, nil
}

func (r *shardReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += int64(r.s.Len())
	}
	if offset < 0 {
		return r.off, errors.New("codec: seek before the start of a shard")
	}
	r.off = offset
	return offset, nil
}
