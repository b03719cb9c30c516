// Package objref holds the stored formats that say where an object's bytes
// live: object references (ObjRef), and the encodings of a file's content
// field — a reference, a range of a shared pack, or a reference to an object
// that holds a large reference. It is a pure format package: it knows the
// codec's layout and peer IDs, nothing of the network or of rclone.
//
// A content field starts with a tag byte:
//
//	1  ObjRef version 1 (read only)
//	2  pack member: pack ID [16] | offset uvarint | length uvarint
//	3  ObjRef version 2
//	4  indirect: stored bytes uvarint | an ObjRef version 2 (tag 3
//	   included) of a small object whose bytes are the ObjRef version 2 of
//	   the file's contents (stored bytes: what the file's shards occupy,
//	   so usage is known without reading the reference)
//
// Version 1 counts holders in a byte, so it cannot name more than 254 nodes;
// version 2 uses varints throughout and has no such limit.
package objref

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

// Tags of a content field.
const (
	TagRefV1    = 1
	TagMember   = 2
	TagRefV2    = 3
	TagIndirect = 4
)

// NoHolder marks a shard no node holds (as far as the reference knows).
const NoHolder = -1

// Limits of the format, checked before anything is allocated for them.
const (
	// MaxPeerID bounds one node's peer ID in bytes. Ed25519 and secp256k1
	// identities are 38 and 39 bytes; placement never uses longer ones.
	MaxPeerID = 64
	// maxLayout bounds an encoded layout (a 64 TiB file of 4 MiB segments
	// with 256 shards each is far beyond anything stored).
	maxLayout = 1 << 30
)

// ErrFormat is wrapped by every error about a malformed content field.
var ErrFormat = errors.New("objref: malformed object reference")

// ObjRef says how to read one stored object: its data key, its codec layout
// and which node holds each shard. It lives only inside encrypted metadata
// (file lists, head bodies), never in the clear.
type ObjRef struct {
	Key    codec.Key
	Layout *codec.Layout
	Nodes  []peer.ID
	// Holder[s][i] is the index in Nodes of the holder of segment s's shard
	// i, or NoHolder.
	Holder [][]int32
}

// Marshal encodes r as version 2 (tag 3):
//
//	3 | key [32] | layout length uvarint | layout | node count uvarint |
//	{ peer ID length uvarint | peer ID } |
//	per segment, per shard: holder uvarint (0 = none, i+1 = Nodes[i])
func (r *ObjRef) Marshal() ([]byte, error) {
	lb, err := r.Layout.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	n := 1 + len(r.Key) + binary.MaxVarintLen64 + len(lb) + binary.MaxVarintLen64
	for _, id := range r.Nodes {
		n += 1 + len(id)
	}
	for _, seg := range r.Holder {
		n += len(seg) * 2
	}
	b := make([]byte, 0, n)
	b = append(b, TagRefV2)
	b = append(b, r.Key[:]...)
	b = binary.AppendUvarint(b, uint64(len(lb)))
	b = append(b, lb...)
	b = binary.AppendUvarint(b, uint64(len(r.Nodes)))
	for _, id := range r.Nodes {
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
	}
	for _, seg := range r.Holder {
		for _, h := range seg {
			b = binary.AppendUvarint(b, uint64(h+1))
		}
	}
	return b, nil
}

// check verifies the holder table agrees with the layout and the nodes.
func (r *ObjRef) check() error {
	if len(r.Holder) != len(r.Layout.Segments) {
		return fmt.Errorf("%w: %d holder rows for %d segments", ErrFormat, len(r.Holder), len(r.Layout.Segments))
	}
	total := r.Layout.Total()
	for s, seg := range r.Holder {
		if len(seg) != total {
			return fmt.Errorf("%w: segment %d has %d holders for %d shards", ErrFormat, s, len(seg), total)
		}
		for _, h := range seg {
			if h != NoHolder && (h < 0 || int(h) >= len(r.Nodes)) {
				return fmt.Errorf("%w: holder index %d with %d nodes", ErrFormat, h, len(r.Nodes))
			}
		}
	}
	for _, id := range r.Nodes {
		if len(id) == 0 || len(id) > MaxPeerID {
			return fmt.Errorf("%w: peer ID of %d bytes", ErrFormat, len(id))
		}
	}
	return nil
}

// Unmarshal decodes an ObjRef of version 1 or 2 and checks it is
// consistent. It refuses pack members and indirect references: see Parse.
func Unmarshal(b []byte) (*ObjRef, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrFormat)
	}
	switch b[0] {
	case TagRefV1:
		return unmarshalV1(b[1:])
	case TagRefV2:
		return unmarshalV2(b[1:])
	}
	return nil, fmt.Errorf("%w: tag %d is not an object reference", ErrFormat, b[0])
}

func bad(what string) error { return fmt.Errorf("%w: %s", ErrFormat, what) }

func unmarshalV2(b []byte) (*ObjRef, error) {
	r := &ObjRef{Layout: new(codec.Layout)}
	if len(b) < len(r.Key) {
		return nil, bad("key truncated")
	}
	copy(r.Key[:], b)
	b = b[len(r.Key):]
	ll, n := binary.Uvarint(b)
	if n <= 0 || ll > maxLayout || ll > uint64(len(b)-n) {
		return nil, bad("layout length")
	}
	b = b[n:]
	if err := r.Layout.UnmarshalBinary(b[:ll]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	b = b[ll:]
	total := r.Layout.Total()
	nn, n := binary.Uvarint(b)
	// A reference names at most one node per shard.
	if n <= 0 || nn > uint64(total)*uint64(len(r.Layout.Segments)) || nn > uint64(len(b)-n)/2 {
		return nil, bad("node count")
	}
	b = b[n:]
	r.Nodes = make([]peer.ID, nn)
	for i := range r.Nodes {
		l, n := binary.Uvarint(b)
		if n <= 0 || l == 0 || l > MaxPeerID || l > uint64(len(b)-n) {
			return nil, bad("peer ID length")
		}
		id, err := peer.IDFromBytes(b[n : n+int(l)])
		if err != nil {
			return nil, bad("peer ID")
		}
		r.Nodes[i] = id
		b = b[n+int(l):]
	}
	if uint64(len(b)) < uint64(len(r.Layout.Segments))*uint64(total) {
		return nil, bad("holder table truncated")
	}
	r.Holder = make([][]int32, len(r.Layout.Segments))
	for s := range r.Holder {
		row := make([]int32, total)
		for i := range row {
			h, n := binary.Uvarint(b)
			if n <= 0 || h > uint64(len(r.Nodes)) {
				return nil, bad("holder index")
			}
			row[i] = int32(h) - 1
			b = b[n:]
		}
		r.Holder[s] = row
	}
	if len(b) != 0 {
		return nil, bad("trailing bytes")
	}
	return r, nil
}

// unmarshalV1 decodes the version 1 layout:
//
//	1 | key [32] | layout length u32 | layout | node count u8 |
//	{ length u8 | peer ID } | per segment, per shard: holder u8 (0xff = none)
func unmarshalV1(b []byte) (*ObjRef, error) {
	const none = 0xff
	r := &ObjRef{Layout: new(codec.Layout)}
	if len(b) < len(r.Key)+4 {
		return nil, bad("truncated")
	}
	copy(r.Key[:], b)
	b = b[len(r.Key):]
	ll := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(ll) > uint64(len(b)) {
		return nil, bad("layout length")
	}
	if err := r.Layout.UnmarshalBinary(b[:ll]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	b = b[ll:]
	if len(b) < 1 || b[0] == none {
		return nil, bad("node count")
	}
	nn := int(b[0])
	b = b[1:]
	for range nn {
		if len(b) < 1 || int(b[0]) > len(b)-1 {
			return nil, bad("node")
		}
		id, err := peer.IDFromBytes(b[1 : 1+int(b[0])])
		if err != nil {
			return nil, bad("node ID")
		}
		r.Nodes = append(r.Nodes, id)
		b = b[1+int(b[0]):]
	}
	total := r.Layout.Total()
	if uint64(len(b)) != uint64(len(r.Layout.Segments))*uint64(total) {
		return nil, bad("holder table size")
	}
	r.Holder = make([][]int32, len(r.Layout.Segments))
	for s := range r.Holder {
		row := make([]int32, total)
		for i, h := range b[:total] {
			switch {
			case h == none:
				row[i] = NoHolder
			case int(h) < len(r.Nodes):
				row[i] = int32(h)
			default:
				return nil, bad("holder index")
			}
		}
		r.Holder[s] = row
		b = b[total:]
	}
	return r, nil
}

// StoredBytes returns the bytes the object's held shards occupy.
func (r *ObjRef) StoredBytes() int64 {
	var n int64
	for s, seg := range r.Holder {
		shardLen := int64(codec.HeaderSize + (r.Layout.Segments[s].CipherLen+r.Layout.K-1)/r.Layout.K)
		for _, h := range seg {
			if h != NoHolder {
				n += shardLen
			}
		}
	}
	return n
}

// Health returns the fewest held shards of any segment, and k.
func (r *ObjRef) Health() (minHeld, k int) {
	minHeld = r.Layout.Total()
	for _, seg := range r.Holder {
		held := 0
		for _, h := range seg {
			if h != NoHolder {
				held++
			}
		}
		minHeld = min(minHeld, held)
	}
	return minHeld, r.Layout.K
}

// Location is one shard of an object and its holder.
type Location struct {
	ID     codec.ShardID
	Holder peer.ID
}

// Shards lists every held shard of the object with its holder.
func (r *ObjRef) Shards() []Location {
	var out []Location
	for s, seg := range r.Holder {
		for i, h := range seg {
			if h != NoHolder {
				out = append(out, Location{r.Layout.Segments[s].IDs[i], r.Nodes[h]})
			}
		}
	}
	return out
}

// HolderOf returns the holder of segment s's shard i, or "" if none.
func (r *ObjRef) HolderOf(s, i int) peer.ID {
	if h := r.Holder[s][i]; h != NoHolder {
		return r.Nodes[h]
	}
	return ""
}

// Build makes the reference of an object stored with layout under key,
// from each segment's holders ("" for a shard no node holds).
func Build(key codec.Key, layout *codec.Layout, holders [][]peer.ID) *ObjRef {
	r := &ObjRef{Key: key, Layout: layout, Holder: make([][]int32, len(holders))}
	index := map[peer.ID]int32{}
	for s, hs := range holders {
		row := make([]int32, len(hs))
		for i, h := range hs {
			if h == "" {
				row[i] = NoHolder
				continue
			}
			idx, ok := index[h]
			if !ok {
				idx = int32(len(r.Nodes))
				index[h] = idx
				r.Nodes = append(r.Nodes, h)
			}
			row[i] = idx
		}
		r.Holder[s] = row
	}
	return r
}
