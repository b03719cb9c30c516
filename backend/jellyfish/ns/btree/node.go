package btree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Limits of the node format. The decoder refuses a node beyond any of them
// and the encoder never writes one, so every node this package stores can
// be read back.
const (
	MaxNodeBytes = 4 << 20  // encoded node
	MaxNodeKeys  = 4 << 20  // a node's keys written out in full, summed
	MaxKey       = 16 << 10 // one key
	MaxValue     = 1 << 20  // one value
	MaxRef       = 64 << 10 // one node reference
	MaxLevel     = 32       // level of a node (leaves are level 0)
)

const formatVersion = 1

var nodeMagic = [4]byte{'J', 'F', 'b', 't'}

// headerSize is the size of a node's header before its item count.
const headerSize = len(nodeMagic) + 2

// Smallest encodings of one item, used to bound the item count before
// allocating: shared, suffix length and value length of one byte each; for
// an internal item also a reference of at least one byte and four
// one-byte summary numbers.
const (
	minLeafItem     = 3
	minInternalItem = 3 + 1 + 4
)

// ErrFormat is wrapped by every error about a malformed or unsupported
// node, whether found while decoding one or refused while encoding one.
var ErrFormat = errors.New("btree: malformed node")

// Summary is a fixed-size aggregate of a subtree, summed componentwise
// (modulo 2^64) from the summaries of its items; see Config.Summarize.
type Summary [4]uint64

// Add returns the componentwise sum of s and o.
func (s Summary) Add(o Summary) Summary {
	for i := range s {
		s[i] += o[i]
	}
	return s
}

// item is one entry of a node. In a leaf val is the value; in an internal
// node val is the child's reference, key the smallest key of the child's
// subtree and sum the child's summary.
type item struct {
	key []byte
	val []byte
	sum Summary
}

// node is a decoded node. Nodes are never modified once built: cached
// nodes are shared by every reader.
type node struct {
	level int
	size  int // encoded bytes
	items []item
}

// upper returns the number of items whose key is ≤ key; the child that
// covers key in an internal node is the one before that index.
func (n *node) upper(key []byte) int {
	lo, hi := 0, len(n.items)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(n.items[m].key, key) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// lower returns the number of items whose key is < key.
func (n *node) lower(key []byte) int {
	lo, hi := 0, len(n.items)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(n.items[m].key, key) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// sharedPrefix returns the length of the longest common prefix of a and b.
func sharedPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// itemSize returns the encoded size of it at the given level following an
// item whose key is prev (nil for the first item of a node).
func itemSize(prev []byte, it *item, level int) int {
	shared := sharedPrefix(prev, it.key)
	suffix := len(it.key) - shared
	n := uvarintLen(uint64(shared)) + uvarintLen(uint64(suffix)) + suffix +
		uvarintLen(uint64(len(it.val))) + len(it.val)
	if level > 0 {
		for _, s := range it.sum {
			n += uvarintLen(s)
		}
	}
	return n
}

// nodeSize returns the encoded size of a node holding items at level.
func nodeSize(items []item, level int) int {
	n := headerSize + uvarintLen(uint64(len(items)))
	var prev []byte
	for i := range items {
		n += itemSize(prev, &items[i], level)
		prev = items[i].key
	}
	return n
}

// encodeNode returns the encoding of a node holding items at level. It
// refuses, with ErrFormat, every node decodeNode would refuse.
func encodeNode(level int, items []item) ([]byte, error) {
	if level < 0 || level > MaxLevel {
		return nil, fmt.Errorf("%w: level %d", ErrFormat, level)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: empty node", ErrFormat)
	}
	size := nodeSize(items, level)
	if size > MaxNodeBytes {
		return nil, fmt.Errorf("%w: node of %d bytes exceeds %d", ErrFormat, size, MaxNodeBytes)
	}
	b := make([]byte, 0, size)
	b = append(b, nodeMagic[:]...)
	b = append(b, formatVersion, byte(level))
	b = binary.AppendUvarint(b, uint64(len(items)))
	var prev []byte
	keys := 0
	for i := range items {
		it := &items[i]
		if len(it.key) > MaxKey {
			return nil, fmt.Errorf("%w: key of %d bytes exceeds %d", ErrFormat, len(it.key), MaxKey)
		}
		if i > 0 && bytes.Compare(prev, it.key) >= 0 {
			return nil, fmt.Errorf("%w: keys not ascending at item %d", ErrFormat, i)
		}
		if keys += len(it.key); keys > MaxNodeKeys {
			return nil, fmt.Errorf("%w: keys of more than %d bytes", ErrFormat, MaxNodeKeys)
		}
		if level == 0 && len(it.val) > MaxValue {
			return nil, fmt.Errorf("%w: value of %d bytes exceeds %d", ErrFormat, len(it.val), MaxValue)
		}
		if level > 0 && (len(it.val) == 0 || len(it.val) > MaxRef) {
			return nil, fmt.Errorf("%w: reference of %d bytes", ErrFormat, len(it.val))
		}
		shared := sharedPrefix(prev, it.key)
		b = binary.AppendUvarint(b, uint64(shared))
		b = binary.AppendUvarint(b, uint64(len(it.key)-shared))
		b = append(b, it.key[shared:]...)
		b = binary.AppendUvarint(b, uint64(len(it.val)))
		b = append(b, it.val...)
		if level > 0 {
			for _, s := range it.sum {
				b = binary.AppendUvarint(b, s)
			}
		}
		prev = it.key
	}
	return b, nil
}

// decoder reads the fields of one node.
type decoder struct {
	b   []byte
	off int
}

// uvarint reads a uvarint in its shortest form (the only form the encoder
// writes, so that a decoded node re-encodes to the same bytes).
func (d *decoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad %s at byte %d", ErrFormat, what, d.off)
	}
	if n > 1 && d.b[d.off+n-1] == 0 {
		return 0, fmt.Errorf("%w: overlong %s at byte %d", ErrFormat, what, d.off)
	}
	d.off += n
	return v, nil
}

// length reads a uvarint that counts bytes that follow, at most limit.
func (d *decoder) length(what string, limit int) (int, error) {
	v, err := d.uvarint(what)
	if err != nil {
		return 0, err
	}
	if v > uint64(limit) {
		return 0, fmt.Errorf("%w: %s %d exceeds %d", ErrFormat, what, v, limit)
	}
	return int(v), nil
}

// bytes returns the next n bytes.
func (d *decoder) bytes(what string, n int) ([]byte, error) {
	if n > len(d.b)-d.off {
		return nil, fmt.Errorf("%w: %s of %d bytes cut short at byte %d", ErrFormat, what, n, d.off)
	}
	b := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return b, nil
}

// decodeNode decodes a node. The node's values and references share memory
// with data, which must not be modified afterwards.
func decodeNode(data []byte) (*node, error) {
	if len(data) > MaxNodeBytes {
		return nil, fmt.Errorf("%w: node of %d bytes exceeds %d", ErrFormat, len(data), MaxNodeBytes)
	}
	if len(data) < headerSize || !bytes.Equal(data[:len(nodeMagic)], nodeMagic[:]) {
		return nil, fmt.Errorf("%w: not a node", ErrFormat)
	}
	if v := data[len(nodeMagic)]; v != formatVersion {
		return nil, fmt.Errorf("%w: unknown version %d", ErrFormat, v)
	}
	level := int(data[len(nodeMagic)+1])
	if level > MaxLevel {
		return nil, fmt.Errorf("%w: level %d exceeds %d", ErrFormat, level, MaxLevel)
	}
	d := &decoder{b: data, off: headerSize}
	count, err := d.uvarint("item count")
	if err != nil {
		return nil, err
	}
	minItem := minLeafItem
	if level > 0 {
		minItem = minInternalItem
	}
	if count == 0 {
		return nil, fmt.Errorf("%w: empty node", ErrFormat)
	}
	if count > uint64((len(data)-d.off)/minItem) {
		return nil, fmt.Errorf("%w: %d items cannot fit in %d bytes", ErrFormat, count, len(data)-d.off)
	}
	n := &node{level: level, size: len(data), items: make([]item, count)}
	// Keys are written out into one arena; ends[i] is where key i ends.
	arena := make([]byte, 0, len(data))
	ends := make([]int, count)
	start := 0
	for i := range n.items {
		it := &n.items[i]
		prev := arena[start:]
		if i == 0 {
			prev = nil
		}
		shared, err := d.length("shared prefix", len(prev))
		if err != nil {
			return nil, err
		}
		suffixLen, err := d.length("key suffix length", MaxKey-shared)
		if err != nil {
			return nil, err
		}
		if len(arena)+shared+suffixLen > MaxNodeKeys {
			return nil, fmt.Errorf("%w: keys of more than %d bytes", ErrFormat, MaxNodeKeys)
		}
		suffix, err := d.bytes("key suffix", suffixLen)
		if err != nil {
			return nil, err
		}
		// The encoder shares the longest common prefix; anything else
		// would not re-encode to the same bytes.
		if shared < len(prev) && suffixLen > 0 && suffix[0] == prev[shared] {
			return nil, fmt.Errorf("%w: item %d shares less than the common prefix", ErrFormat, i)
		}
		if i > 0 {
			c := 1 // key ascending unless proven otherwise
			if suffixLen == 0 {
				c = -1 // a prefix of prev (or prev itself)
			} else if shared < len(prev) {
				c = int(suffix[0]) - int(prev[shared])
			}
			if c <= 0 {
				return nil, fmt.Errorf("%w: keys not ascending at item %d", ErrFormat, i)
			}
		}
		next := len(arena)
		arena = append(arena, prev[:shared]...)
		arena = append(arena, suffix...)
		start = next
		ends[i] = len(arena)
		limit, what, whatLen := MaxValue, "value", "value length"
		if level > 0 {
			limit, what, whatLen = MaxRef, "reference", "reference length"
		}
		vlen, err := d.length(whatLen, limit)
		if err != nil {
			return nil, err
		}
		if level > 0 && vlen == 0 {
			return nil, fmt.Errorf("%w: empty reference at item %d", ErrFormat, i)
		}
		if it.val, err = d.bytes(what, vlen); err != nil {
			return nil, err
		}
		if level > 0 {
			for j := range it.sum {
				if it.sum[j], err = d.uvarint("summary"); err != nil {
					return nil, err
				}
			}
		}
	}
	if d.off != len(data) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrFormat, len(data)-d.off)
	}
	start = 0
	for i := range n.items {
		n.items[i].key = arena[start:ends[i]:ends[i]]
		start = ends[i]
	}
	return n, nil
}
