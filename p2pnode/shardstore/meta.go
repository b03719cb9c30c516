package shardstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"time"
)

// Metadata record, version 1, all integers big-endian:
//
//	0   4  magic "JFSM"
//	4   1  version (1)
//	5   1  flags (0)
//	6   2  owner count n (1..MaxOwners)
//	8   8  shard size in bytes
//	16  8  stored-at, Unix nanoseconds
//	24  n×40 owners, sorted: 32-byte Owner ‖ 8-byte lease expiry (Unix nanoseconds)
//	..  4  CRC-32C of all preceding bytes
const (
	metaMagic      = "JFSM"
	metaVersion    = 1
	metaHeaderSize = 24
	metaOwnerSize  = OwnerSize + 8
)

// MaxOwners caps the number of owners referencing one shard, which bounds
// the metadata record.
const MaxOwners = 1024

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var errMeta = errors.New("shardstore: bad metadata record")

// meta is the in-memory form of a metadata record.
type meta struct {
	size     int64
	storedAt time.Time
	owners   map[Owner]time.Time
}

// lease returns the latest lease over all owners.
func (m *meta) lease() time.Time {
	var l time.Time
	for _, t := range m.owners {
		if t.After(l) {
			l = t
		}
	}
	return l
}

func (m *meta) sortedOwners() []OwnerLease {
	out := make([]OwnerLease, 0, len(m.owners))
	for o, l := range m.owners {
		out = append(out, OwnerLease{Owner: o, Lease: l})
	}
	sort.Slice(out, func(i, j int) bool {
		return string(out[i].Owner[:]) < string(out[j].Owner[:])
	})
	return out
}

func (m *meta) marshal() []byte {
	owners := m.sortedOwners()
	b := make([]byte, 0, metaHeaderSize+len(owners)*metaOwnerSize+4)
	b = append(b, metaMagic...)
	b = append(b, metaVersion, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(owners)))
	b = binary.BigEndian.AppendUint64(b, uint64(m.size))
	b = binary.BigEndian.AppendUint64(b, uint64(m.storedAt.UnixNano()))
	for _, ol := range owners {
		b = append(b, ol.Owner[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(ol.Lease.UnixNano()))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func unmarshalMeta(b []byte) (*meta, error) {
	if len(b) < metaHeaderSize+4 {
		return nil, fmt.Errorf("%w: %d bytes", errMeta, len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", errMeta)
	}
	if string(b[:4]) != metaMagic {
		return nil, fmt.Errorf("%w: magic %q", errMeta, b[:4])
	}
	if b[4] != metaVersion || b[5] != 0 {
		return nil, fmt.Errorf("%w: version %d flags %d", errMeta, b[4], b[5])
	}
	n := int(binary.BigEndian.Uint16(b[6:]))
	if n < 1 || n > MaxOwners || len(body) != metaHeaderSize+n*metaOwnerSize {
		return nil, fmt.Errorf("%w: %d owners in %d bytes", errMeta, n, len(b))
	}
	size := int64(binary.BigEndian.Uint64(b[8:]))
	if size <= 0 || size > hardMaxShardSize {
		return nil, fmt.Errorf("%w: size %d", errMeta, size)
	}
	m := &meta{
		size:     size,
		storedAt: time.Unix(0, int64(binary.BigEndian.Uint64(b[16:]))),
		owners:   make(map[Owner]time.Time, n),
	}
	for i := 0; i < n; i++ {
		rec := body[metaHeaderSize+i*metaOwnerSize:]
		var o Owner
		copy(o[:], rec[:OwnerSize])
		if _, dup := m.owners[o]; dup {
			return nil, fmt.Errorf("%w: duplicate owner %s", errMeta, o.Short())
		}
		m.owners[o] = time.Unix(0, int64(binary.BigEndian.Uint64(rec[OwnerSize:])))
	}
	return m, nil
}
