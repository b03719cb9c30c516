package shardstore

import (
	"fmt"
	"io"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/zeebo/blake3"
)

// VerifyingReader passes a shard through while hashing it. It reads
// exactly the expected size from its source and no further, and when the
// last byte has been read it checks the hash against the shard ID: the
// final Read returns io.EOF only if the bytes match, ErrIntegrity
// otherwise (also when the source ends early).
type VerifyingReader struct {
	src  io.ReadCloser
	id   codec.ShardID
	size int64
	left int64
	h    *blake3.Hasher
	err  error
}

// NewVerifyingReader returns a reader that verifies src against id and
// size. Closing it closes src.
func NewVerifyingReader(src io.ReadCloser, id codec.ShardID, size int64) *VerifyingReader {
	return &VerifyingReader{src: src, id: id, size: size, left: size, h: blake3.New()}
}

// Read implements io.Reader.
func (v *VerifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.left == 0 {
		v.err = v.finish()
		return 0, v.err
	}
	if int64(len(p)) > v.left {
		p = p[:v.left]
	}
	n, err := v.src.Read(p)
	v.h.Write(p[:n])
	v.left -= int64(n)
	if err == io.EOF && v.left > 0 {
		v.err = fmt.Errorf("%w: shard %s ended after %d of %d bytes", ErrIntegrity, v.id.Short(), v.size-v.left, v.size)
		return n, v.err
	}
	if err != nil && err != io.EOF {
		v.err = err
		return n, err
	}
	if v.left == 0 {
		v.err = v.finish()
		if v.err == io.EOF && n > 0 {
			return n, nil // report EOF on the next call, with the data first
		}
		return n, v.err
	}
	return n, nil
}

func (v *VerifyingReader) finish() error {
	var got codec.ShardID
	v.h.Sum(got[:0])
	if got != v.id {
		return fmt.Errorf("%w: shard %s: bytes hash to %s", ErrIntegrity, v.id.Short(), got.Short())
	}
	return io.EOF
}

// Close closes the source.
func (v *VerifyingReader) Close() error { return v.src.Close() }
