package shardstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/zeebo/blake3"
)

// ChunkSize is the unit in which a put reads a shard body: each chunk is
// read from the body, written to the temporary file and hashed, in one
// goroutine, while it is hot in the cache. (Handing chunks to a second
// hashing goroutine measured more CPU per put, and a holder serving
// several puts is CPU bound.)
const ChunkSize = 128 << 10

// PutMemory returns the memory a put of a shard of size bytes holds while
// it streams the body in: one chunk, whatever the shard size (the outboard
// tree is not built during a put). A network service reserves this much
// before handing a body to Put.
func PutMemory(size int64) int {
	return ChunkSize
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}

// receive streams exactly size bytes of r into a new temporary file and
// hashes them on the way, holding one chunk in memory. Bytes that do not
// hash to id fail with ErrIntegrity; otherwise the file is synced and
// receive returns its name (the caller removes it unless it commits it).
// A failure of the body (short, broken, ctx done) is reported as "read
// body", a failure of the file as a disk error (ErrNoSpace when full). On
// error no file is left.
func (d *Disk) receive(ctx context.Context, id codec.ShardID, size int64, r io.Reader) (tmp string, err error) {
	name := tmpName(id, "")
	f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", diskErr("create", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			d.root.Remove(name)
		}
	}()
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	// zeebo/blake3 computes the same root as the Bao tree code
	// (codec.Tree), about twice as fast; the tree itself is built only
	// when a proof needs it (see Disk.tree).
	h := blake3.New()
	for left := size; left > 0; {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("read body: %w", err)
		}
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), left)])
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", fmt.Errorf("read body: %w", err)
		}
		if _, err := f.Write(buf[:n]); err != nil {
			return "", diskErr("write", err)
		}
		h.Write(buf[:n])
		left -= int64(n)
	}
	var root codec.ShardID
	h.Sum(root[:0])
	if root != id {
		return "", fmt.Errorf("%w: bytes hash to %s, not %s", ErrIntegrity, root.Short(), id.Short())
	}
	d.syncs.Add(1)
	if err := f.Sync(); err != nil {
		return "", diskErr("sync", err)
	}
	if err := f.Close(); err != nil {
		return "", diskErr("close", err)
	}
	return name, nil
}
