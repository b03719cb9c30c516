package codec

import (
	"bytes"
	"errors"
	"fmt"

	"lukechampine.com/blake3/bao"
)

// LeafSize is the size of a leaf of a shard's hash tree: 16 KiB, that is 16
// BLAKE3 chunks (a Bao chunk group of 2^4). Proofs and audits work on whole
// leaves.
const LeafSize = 1 << (10 + leafGroup)

// leafGroup is the Bao group exponent: leaves of 2^leafGroup BLAKE3 chunks.
const leafGroup = 4

// Tree returns the outboard hash tree of a shard (every interior node of
// its BLAKE3 tree at leaf granularity, in Bao's pre-order layout) together
// with the shard's ID, in one pass. A holder keeps the tree beside the shard
// so it can prove any range without rehashing the whole shard.
func Tree(shard []byte) ([]byte, ShardID) {
	tree, root := bao.EncodeBuf(shard, leafGroup, true)
	return tree, ShardID(root)
}

// TreeSize returns the length of the outboard tree of a shard of n bytes.
func TreeSize(n int) int { return bao.EncodedSize(n, leafGroup, true) }

// LeafCount returns the number of leaves of a shard of n bytes (at least 1).
func LeafCount(n int64) int64 {
	if n <= 0 {
		return 1
	}
	return (n + LeafSize - 1) / LeafSize
}

// LeafSpan returns the leaf-aligned byte range [start, end) of a shard of
// shardLen bytes that covers [off, off+n). Prove needs exactly those bytes.
func LeafSpan(off, n, shardLen int64) (start, end int64) {
	start = off / LeafSize * LeafSize
	end = (off + n + LeafSize - 1) / LeafSize * LeafSize
	if end > shardLen {
		end = shardLen
	}
	return start, end
}

// ErrProof means a range proof did not verify against the shard ID.
var ErrProof = errors.New("codec: proof does not match shard ID")

// Prove builds the proof that bytes [off, off+n) belong to the shard whose
// outboard tree is given. covering must hold the shard bytes of
// LeafSpan(off, n, shardLen) and nothing else. The proof carries the covered
// leaves and the sibling hashes on their paths to the root.
func Prove(tree, covering []byte, off, n int64) ([]byte, error) {
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("codec: prove: negative range %d+%d", off, n)
	}
	var buf bytes.Buffer
	if err := bao.ExtractSlice(&buf, bytes.NewReader(covering), bytes.NewReader(tree), leafGroup, uint64(off), uint64(n)); err != nil {
		return nil, fmt.Errorf("codec: prove range %d+%d: %w", off, n, err)
	}
	return buf.Bytes(), nil
}

// VerifyRange checks a proof made by Prove against id and returns the
// verified bytes [off, off+n) of the shard. It fails with ErrProof when the
// proof does not verify.
func VerifyRange(id ShardID, proof []byte, off, n int64) ([]byte, error) {
	// An empty range touches no leaf, so nothing would be checked against id.
	if off < 0 || n <= 0 {
		return nil, fmt.Errorf("codec: verify: empty or negative range %d+%d", off, n)
	}
	data, ok := bao.VerifySlice(proof, leafGroup, uint64(off), uint64(n), id)
	if !ok {
		return nil, ErrProof
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("%w: got %d bytes, want %d", ErrProof, len(data), n)
	}
	return data, nil
}

// ProofLen returns the shard length recorded at the start of a proof, so a
// verifier can check a leaf index against the real shard length.
func ProofLen(proof []byte) (int64, error) {
	if len(proof) < 8 {
		return 0, fmt.Errorf("%w: proof shorter than its length prefix", ErrProof)
	}
	var n uint64
	for i := 7; i >= 0; i-- {
		n = n<<8 | uint64(proof[i])
	}
	if n > 1<<40 {
		return 0, fmt.Errorf("%w: implausible shard length %d", ErrProof, n)
	}
	return int64(n), nil
}
