package shardstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sync"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"lukechampine.com/blake3/bao"
)

// ChunkSize is the unit in which a put reads a shard body. Each chunk is
// written to the temporary file by the reading goroutine and hashed by a
// second one, so reading the network, writing and hashing overlap; at most
// chunksInFlight chunks are held per put.
const ChunkSize = 64 << 10

const chunksInFlight = 4

// treeGroup is the Bao chunk-group exponent of codec.Tree (leaves of
// codec.LeafSize bytes = 2^treeGroup BLAKE3 chunks of 1 KiB). The streaming
// put must build byte-for-byte the tree codec.Tree builds; a test holds
// them together.
var treeGroup = bits.TrailingZeros(uint(codec.LeafSize)) - 10

// PutMemory returns the memory a put of a shard of size bytes holds while
// it streams the body in: the chunks in flight and the outboard tree. A
// network service reserves this much before handing a body to Put.
func PutMemory(size int64) int {
	m := chunksInFlight * ChunkSize
	if size > 0 && size <= hardMaxShardSize {
		m += codec.TreeSize(int(size))
	}
	return m
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}

// errBodyAborted tells the hashing goroutine that the body stopped early;
// the reading side reports why.
var errBodyAborted = errors.New("body aborted")

// chunkReader is the hashing goroutine's view of the body: the chunks the
// reading goroutine already wrote to disk, in order. Each chunk's buffer
// goes back to free once it has been consumed.
type chunkReader struct {
	full <-chan []byte
	free chan<- []byte
	cur  []byte // unread part of the current chunk
	buf  []byte // the current chunk's whole buffer
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.cur) == 0 {
		if c.buf != nil {
			c.free <- c.buf[:cap(c.buf)]
			c.buf = nil
		}
		b, ok := <-c.full
		if !ok {
			return 0, errBodyAborted
		}
		c.buf, c.cur = b, b
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}

// treeBuf is the io.WriterAt bao.Encode fills with the outboard tree.
type treeBuf []byte

func (b treeBuf) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(b)) || copy(b[off:], p) != len(p) {
		return 0, fmt.Errorf("tree write %d+%d outside %d bytes", off, len(p), len(b))
	}
	return len(p), nil
}

// receive streams exactly size bytes of r into a new temporary file while
// a second goroutine computes the shard's outboard tree and root from the
// same chunks, so nothing but a few chunks and the tree is held in memory.
// Bytes that do not hash to id fail with ErrIntegrity; otherwise the file
// is synced and receive returns its name (the caller removes it unless it
// commits it) and the tree. On error no file is left.
func (d *Disk) receive(ctx context.Context, id codec.ShardID, size int64, r io.Reader) (tmp string, tree []byte, err error) {
	name := tmpName(id, "")
	f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", nil, diskErr("create", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			d.root.Remove(name)
		}
	}()

	free := make(chan []byte, chunksInFlight)
	for range chunksInFlight {
		free <- *chunkPool.Get().(*[]byte)
	}
	defer func() {
		for range chunksInFlight {
			b := <-free
			chunkPool.Put(&b)
		}
	}()
	full := make(chan []byte, chunksInFlight)
	tree = make([]byte, codec.TreeSize(int(size)))
	type result struct {
		root [32]byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		cr := &chunkReader{full: full, free: free}
		root, err := bao.Encode(treeBuf(tree), cr, size, treeGroup, true)
		if cr.buf != nil {
			free <- cr.buf[:cap(cr.buf)]
		}
		// Hand back whatever the hash did not consume, so the reading side
		// can never wait for a buffer in vain.
		for b := range full {
			free <- b[:cap(b)]
		}
		done <- result{root, err}
	}()

	readErr := d.pump(ctx, f, r, size, free, full)
	close(full)
	res := <-done
	if readErr != nil {
		return "", nil, readErr
	}
	if res.err != nil {
		return "", nil, fmt.Errorf("hash body: %w", res.err)
	}
	if got := codec.ShardID(res.root); got != id {
		return "", nil, fmt.Errorf("%w: bytes hash to %s, not %s", ErrIntegrity, got.Short(), id.Short())
	}
	if err := f.Sync(); err != nil {
		return "", nil, diskErr("sync", err)
	}
	if err := f.Close(); err != nil {
		return "", nil, diskErr("close", err)
	}
	return name, tree, nil
}

// pump reads size bytes of r chunk by chunk, writes each chunk to f and
// passes it on to the hashing goroutine. A failure of the body (short,
// broken, ctx done) is reported as "read body", a failure of the file as
// a disk error (ErrNoSpace when full).
func (d *Disk) pump(ctx context.Context, f *os.File, r io.Reader, size int64, free chan []byte, full chan<- []byte) error {
	for left := size; left > 0; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		b := <-free
		want := int(min(int64(len(b)), left))
		n, err := io.ReadFull(r, b[:want])
		if err != nil {
			free <- b
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read body: %w", err)
		}
		if _, err := f.Write(b[:n]); err != nil {
			free <- b
			return diskErr("write", err)
		}
		left -= int64(n)
		full <- b[:n]
	}
	return nil
}
