package shardstore

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"lukechampine.com/blake3/bao"
	"lukechampine.com/blake3/guts"
)

// Tree file, version 1: a cache of the shard's outboard tree, built from
// the stored shard the first time a proof needs it (a put does not build
// it). Integers big-endian:
//
//	0   4  magic "JFST"
//	4   1  version (1)
//	5   1  flags (0)
//	6   t  outboard tree, t = codec.TreeSize(size) bytes (codec.Tree's
//	       layout, which starts with the shard size as a little-endian u64)
//	6+t 4  CRC-32C of all preceding bytes
//
// A tree file that is missing, of the wrong length, fails its checksum,
// names another size or whose top node does not hash to the shard ID is
// rebuilt, never served.
const (
	treeMagic      = "JFST"
	treeVersion    = 1
	treeHeaderSize = 6
)

// treeGroup is the Bao chunk-group exponent of codec.Tree (leaves of
// codec.LeafSize bytes = 2^treeGroup BLAKE3 chunks of 1 KiB). The tree
// built from a stored shard must be byte-for-byte the one codec.Tree
// builds; a test holds them together.
var treeGroup = bits.TrailingZeros(uint(codec.LeafSize)) - 10

var errTree = errors.New("shardstore: bad tree file")

// treeFileSize returns the length of the tree file of a shard of size
// bytes.
func treeFileSize(size int64) int { return treeHeaderSize + codec.TreeSize(int(size)) + 4 }

// ProveMemory returns the memory Prove holds for a shard of size bytes
// besides the proof it returns: the tree file, and while the tree is
// built, a read buffer. A network service reserves this much before
// asking for proofs.
func ProveMemory(size int64) int {
	if size <= 0 || size > hardMaxShardSize {
		return 0
	}
	return treeFileSize(size) + treeReadBuf + codec.LeafSize
}

// treeReadBuf is the read buffer used while a tree is built from disk.
const treeReadBuf = 128 << 10

// parseTree checks a tree file read from disk against the shard's ID and
// size and returns the outboard tree inside it.
func parseTree(b []byte, id codec.ShardID, size int64) ([]byte, error) {
	if len(b) != treeFileSize(size) {
		return nil, fmt.Errorf("%w: %d bytes, want %d", errTree, len(b), treeFileSize(size))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", errTree)
	}
	if string(b[:4]) != treeMagic || b[4] != treeVersion || b[5] != 0 {
		return nil, fmt.Errorf("%w: magic %q version %d flags %d", errTree, b[:4], b[4], b[5])
	}
	tree := body[treeHeaderSize:]
	if n := binary.LittleEndian.Uint64(tree); n != uint64(size) {
		return nil, fmt.Errorf("%w: tree of %d bytes, shard of %d", errTree, n, size)
	}
	// A shard of more than one leaf has a top node, the chaining values
	// of its two halves, which must hash to the ID. (A one-leaf shard's
	// tree is only its size; its proofs carry the leaf itself.)
	if len(tree) >= 8+64 && topRoot(tree[8:8+64]) != id {
		return nil, fmt.Errorf("%w: top node does not hash to %s", errTree, id.Short())
	}
	return tree, nil
}

// topRoot returns the BLAKE3 root of a tree whose top parent node holds
// the 64 bytes node.
func topRoot(node []byte) codec.ShardID {
	var left, right [8]uint32
	for i := range left {
		left[i] = binary.LittleEndian.Uint32(node[4*i:])
		right[i] = binary.LittleEndian.Uint32(node[32+4*i:])
	}
	cv := guts.ChainingValue(guts.ParentNode(left, right, &guts.IV, guts.FlagRoot))
	var id codec.ShardID
	for i, w := range cv {
		binary.LittleEndian.PutUint32(id[4*i:], w)
	}
	return id
}

// treeBuf is the io.WriterAt bao.Encode fills with the outboard tree.
type treeBuf []byte

func (b treeBuf) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(b)) || copy(b[off:], p) != len(p) {
		return 0, fmt.Errorf("tree write %d+%d outside %d bytes", off, len(p), len(b))
	}
	return len(p), nil
}

// tree returns the outboard tree of a held shard of size bytes: from its
// tree file when that is intact, otherwise built from the stored shard and
// cached. Building rehashes the whole shard; if the bytes no longer hash
// to id the shard is damaged and tree fails with ErrIntegrity.
func (d *Disk) tree(ctx context.Context, id codec.ShardID, size int64) ([]byte, error) {
	_, _, treeName, _ := shardPath(id)
	if tree, err := d.readTree(treeName, id, size); err == nil {
		return tree, nil
	}
	// Several proofs of one shard may arrive at once: the shard's lock
	// makes one build the tree and the others read it. It also keeps the
	// build from racing a delete of the shard.
	unlock, err := d.locks.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	d.mu.Lock()
	m, held := d.index[id]
	d.mu.Unlock()
	if !held || m.size != size {
		return nil, ErrNotFound
	}
	if tree, err := d.readTree(treeName, id, size); err == nil {
		return tree, nil
	}
	file, err := d.buildTree(ctx, id, size)
	if err != nil {
		return nil, err
	}
	// The file is a cache: if writing it fails, the next proof builds the
	// tree again. It is written whole under tmp/ and renamed, so a tree
	// file is never seen half written; after a crash one that is lost or
	// torn is rebuilt, so the shard directory need not be synced.
	tmp := tmpName(id, treeExt)
	if err := d.writeSync(tmp, os.O_EXCL, file); err != nil {
		d.root.Remove(tmp)
	} else if err := d.root.Rename(tmp, treeName); err != nil {
		d.root.Remove(tmp)
	}
	return file[treeHeaderSize : len(file)-4], nil
}

// readTree reads and checks a tree file.
func (d *Disk) readTree(name string, id codec.ShardID, size int64) ([]byte, error) {
	b, err := d.root.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return parseTree(b, id, size)
}

// buildTree hashes the stored shard into a tree file image and checks its
// root against id.
func (d *Disk) buildTree(ctx context.Context, id codec.ShardID, size int64) ([]byte, error) {
	_, data, _, _ := shardPath(id)
	f, err := d.root.Open(data)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	file := make([]byte, treeFileSize(size))
	copy(file, treeMagic)
	file[4], file[5] = treeVersion, 0
	tree := file[treeHeaderSize : len(file)-4]
	br := bufio.NewReaderSize(ctxReader{ctx, io.LimitReader(f, size)}, treeReadBuf)
	root, err := bao.Encode(treeBuf(tree), br, size, treeGroup, true)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: stored shard shorter than %d bytes", ErrIntegrity, size)
		}
		return nil, fmt.Errorf("hash stored shard: %w", err)
	}
	if got := codec.ShardID(root); got != id {
		return nil, fmt.Errorf("%w: stored bytes hash to %s", ErrIntegrity, got.Short())
	}
	binary.BigEndian.PutUint32(file[len(file)-4:], crc32.Checksum(file[:len(file)-4], crcTable))
	return file, nil
}
