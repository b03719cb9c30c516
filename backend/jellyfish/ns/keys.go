package ns

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// A checkpoint is a sorted map (package btree) whose keys start with a
// kind byte:
//
//	'e' | parent path | 0x00 | name     a path's heads (entries)
//	'l' | shard ID [32]                  extra holders of a shard (locations)
//	'p' | pack ID [16]                   a pack record
//
// An entry key sorts a folder's children next to each other (a listing is
// one range), and a folder's descendants into one more range: the keys
// whose parent starts with the folder's path and a slash. Names never hold
// 0x00 or a slash (CheckPath), so the ranges are exact.
const (
	kindEntry    = 'e'
	kindLocation = 'l'
	kindPack     = 'p'
)

// Limits on paths that new writes must respect. Older batches may hold
// longer paths (up to maxPath); they are still read.
const (
	// MaxPath bounds a path in bytes.
	MaxPath = 4096
	// MaxName bounds one path element in bytes.
	MaxName = 1024
)

// CheckPath reports whether p (clean, as Clean returns it) can be stored:
// at most MaxPath bytes, elements of at most MaxName bytes, no NUL byte
// (names are bytes, as rclone hands them over, valid UTF-8 or not). The
// error names the limit.
func CheckPath(p string) error {
	if len(p) > MaxPath {
		return fmt.Errorf("path of %d bytes is longer than the %d bytes Jellyfish stores", len(p), MaxPath)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("path %q holds a NUL byte", p)
	}
	for el := range strings.SplitSeq(p, "/") {
		if len(el) > MaxName {
			return fmt.Errorf("name of %d bytes is longer than the %d bytes Jellyfish stores", len(el), MaxName)
		}
	}
	if !isClean(p) {
		return fmt.Errorf("path %q is not clean", p)
	}
	return nil
}

// EntryKey returns the checkpoint key of path p.
func EntryKey(p string) []byte {
	parent, name := Parent(p), p[strings.LastIndexByte(p, '/')+1:]
	k := make([]byte, 0, 2+len(p))
	k = append(k, kindEntry)
	k = append(k, parent...)
	k = append(k, 0)
	return append(k, name...)
}

// PathOfKey returns the path of an entry key, or false for another kind.
func PathOfKey(k []byte) (string, bool) {
	if len(k) < 2 || k[0] != kindEntry {
		return "", false
	}
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return "", false
	}
	parent, name := k[1:i], k[i+1:]
	if len(parent) == 0 {
		return string(name), true
	}
	return string(parent) + "/" + string(name), true
}

// ChildrenRange returns the key range [start, end) of dir's children.
func ChildrenRange(dir string) (start, end []byte) {
	start = append(append([]byte{kindEntry}, dir...), 0)
	end = append(append([]byte{kindEntry}, dir...), 1)
	return start, end
}

// DescendantsRange returns the key range [start, end) of the entries
// below dir's children (their parents are inside dir).
func DescendantsRange(dir string) (start, end []byte) {
	if dir == "" {
		return []byte{kindEntry, 1}, []byte{kindEntry + 1}
	}
	start = append(append([]byte{kindEntry}, dir...), '/')
	end = append(append([]byte{kindEntry}, dir...), '/'+1)
	return start, end
}

// PackKey returns the checkpoint key of pack id.
func PackKey(id PackID) []byte { return append([]byte{kindPack}, id[:]...) }

// PackRange is the key range of every pack record.
func PackRange() (start, end []byte) { return []byte{kindPack}, []byte{kindPack + 1} }

// ShardID names a shard (the BLAKE3 root of its bytes).
type ShardID [32]byte

// LocationKey returns the checkpoint key of shard id's locations.
func LocationKey(id ShardID) []byte { return append([]byte{kindLocation}, id[:]...) }

// EncodeHeads encodes a path's heads as a checkpoint value:
//
//	head count uv | { entry without its path (flags, size, modtime, hash,
//	content, inline, stamp, bases) }*
//
// The heads carry, as extra bases, the superseded stamps the checkpoint
// must remember (see Layer.CheckpointHeads).
func EncodeHeads(heads []Entry) ([]byte, error) {
	if len(heads) == 0 || len(heads) > maxBases {
		return nil, fmt.Errorf("%w: %d heads", ErrFormat, len(heads))
	}
	n := binary.MaxVarintLen64
	for i := range heads {
		n += 64 + len(heads[i].Hash) + len(heads[i].Content) + len(heads[i].Inline) + len(heads[i].Bases)*stampSize
	}
	out := binary.AppendUvarint(make([]byte, 0, n), uint64(len(heads)))
	for i := range heads {
		if err := checkEntry(&heads[i]); err != nil {
			return nil, err
		}
		out = appendEntryBody(out, &heads[i])
	}
	return out, nil
}

// DecodeHeads decodes the heads of path p from a checkpoint value. Their
// byte slices share value's memory.
func DecodeHeads(p string, value []byte) ([]Entry, error) {
	r := reader{b: value, what: "checkpoint value"}
	n := r.count(maxBases, minEntrySize-1, "heads")
	if r.err == nil && n == 0 {
		r.fail("no heads")
	}
	if r.err != nil {
		return nil, r.err
	}
	es := make([]Entry, n)
	var bases []Stamp
	for i := range es {
		es[i].Path = p
		bases = r.entryBody(&es[i], bases, n-i)
		if r.err != nil {
			return nil, r.err
		}
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return es, nil
}

// EncodePack encodes a pack record as a checkpoint value (the ID is in the
// key): device [16] | revision uv | size uv | reference bytes | extents.
func EncodePack(p *Pack) ([]byte, error) { return appendPack(nil, p) }

// DecodePack decodes a pack record of pack id from a checkpoint value.
func DecodePack(id PackID, value []byte) (*Pack, error) {
	r := reader{b: value, what: "pack value"}
	p := &Pack{ID: id}
	r.pack(p)
	if err := r.done(); err != nil {
		return nil, err
	}
	return p, nil
}

// maxHolders bounds the extra holders recorded for one shard.
const maxHolders = 256

// EncodeHolders encodes the extra holders of a shard (peer IDs, sorted,
// distinct): count uv | { peer ID bytes }*.
func EncodeHolders(holders [][]byte) ([]byte, error) {
	if len(holders) > maxHolders {
		return nil, fmt.Errorf("%w: %d holders of one shard", ErrFormat, len(holders))
	}
	out := binary.AppendUvarint(nil, uint64(len(holders)))
	for _, h := range holders {
		if len(h) == 0 || len(h) > maxPeerID {
			return nil, fmt.Errorf("%w: holder of %d bytes", ErrFormat, len(h))
		}
		out = appendBytes(out, h)
	}
	return out, nil
}

// DecodeHolders decodes what EncodeHolders wrote.
func DecodeHolders(value []byte) ([][]byte, error) {
	r := reader{b: value, what: "holders"}
	n := r.count(maxHolders, 2, "holders")
	out := make([][]byte, 0, n)
	for range n {
		h := r.blob(maxPeerID, "holder")
		if r.err == nil && len(h) == 0 {
			r.fail("empty holder")
		}
		out = append(out, h)
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return out, nil
}

// maxPeerID bounds a holder's peer ID.
const maxPeerID = 64

// Summary fields of a checkpoint (btree.Summary): live files, their
// bytes, the bytes the namespace's objects occupy on providers (files of
// their own, packs, tiny files kept inline), and paths stored (tombstones
// included).
const (
	SumFiles = iota
	SumBytes
	SumStored
	SumPaths
)

// Summarizer returns the function that gives what a checkpoint item adds
// to its subtree's summary; storedOf returns the bytes the objects an
// entry's content names occupy on providers, packStored a pack's share of
// its object's.
func Summarizer(storedOf func(content []byte) int64, packStored func(*Pack) int64) func(key, value []byte) [4]uint64 {
	return func(key, value []byte) [4]uint64 {
		var s [4]uint64
		if len(key) == 1+len(PackID{}) && key[0] == kindPack {
			var id PackID
			copy(id[:], key[1:])
			if p, err := DecodePack(id, value); err == nil {
				s[SumStored] = uint64(packStored(p))
			}
			return s
		}
		p, ok := PathOfKey(key)
		if !ok {
			return s
		}
		s[SumPaths] = 1
		heads, err := DecodeHeads(p, value)
		if err != nil {
			return s
		}
		return add(s, EntrySummary(winner(heads), storedOf))
	}
}

// EntrySummary is what the entry shown at a path adds to a summary.
func EntrySummary(w *Entry, storedOf func(content []byte) int64) [4]uint64 {
	var s [4]uint64
	if w.Deleted || w.Dir {
		return s
	}
	s[SumFiles], s[SumBytes] = 1, uint64(w.Size)
	s[SumStored] = uint64(len(w.Inline) + int(storedOf(w.Content)))
	return s
}

func add(a, b [4]uint64) [4]uint64 {
	for i := range a {
		a[i] += b[i]
	}
	return a
}

// winner returns the head with the greatest stamp.
func winner(heads []Entry) *Entry {
	w := &heads[0]
	for i := range heads[1:] {
		if w.Stamp.Less(heads[i+1].Stamp) {
			w = &heads[i+1]
		}
	}
	return w
}
