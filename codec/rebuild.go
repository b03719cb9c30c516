package codec

import (
	"fmt"
)

// RebuildShards rebuilds the shards of segment seg of l at the indexes in
// want from the given shards (any order; missing, duplicated, corrupt or
// foreign ones are skipped, as in DecodeSegment). Any k good ones are
// enough. It needs no key: repair never sees the plaintext. Every rebuilt
// shard is checked against its ID in the layout, so what it returns is
// byte for byte what the encoder stored. With fewer than k good shards it
// returns a *TooFewShardsError.
func RebuildShards(l *Layout, seg int, shards [][]byte, want []int) ([][]byte, error) {
	if seg < 0 || seg >= len(l.Segments) {
		return nil, fmt.Errorf("codec: segment %d out of range (file has %d)", seg, len(l.Segments))
	}
	info := &l.Segments[seg]
	total := l.Total()
	index := make(map[ShardID]int, total)
	for i, id := range info.IDs {
		index[id] = i
	}
	payloads := make([][]byte, total)
	good, bad := 0, 0
	for _, s := range shards {
		if s == nil {
			continue
		}
		idx, ok := index[IDOf(s)]
		if !ok {
			bad++
			continue
		}
		h, err := ParseHeader(s)
		if err != nil || int(h.Index) != idx || h.Segment != uint64(seg) || int(h.K) != l.K || int(h.M) != l.M || int(h.CipherLen) != info.CipherLen {
			bad++
			continue
		}
		if payloads[idx] == nil {
			payloads[idx] = s[HeaderSize:]
			good++
		}
	}
	if good < l.K {
		return nil, &TooFewShardsError{Segment: uint64(seg), Good: good, Bad: bad, Need: l.K}
	}
	for _, w := range want {
		if w < 0 || w >= total {
			return nil, fmt.Errorf("codec: shard index %d out of range for k+m=%d", w, total)
		}
	}
	shardLen := (info.CipherLen + l.K - 1) / l.K
	if good < total && shardLen > 0 {
		rs, err := newRS(l.K, l.M)
		if err != nil {
			return nil, err
		}
		if rs != nil {
			if err := rs.Reconstruct(payloads); err != nil {
				return nil, fmt.Errorf("codec: segment %d: reed-solomon: %w", seg, err)
			}
		}
	}
	out := make([][]byte, len(want))
	for j, w := range want {
		p := payloads[w]
		if p == nil {
			p = []byte{} // an empty segment's shards have no payload
		}
		h := Header{
			Version: FormatVersion, K: uint8(l.K), M: uint8(l.M), Index: uint8(w),
			Segment: uint64(seg), CipherLen: uint32(info.CipherLen), PayloadLen: uint32(shardLen),
		}
		b := make([]byte, HeaderSize+len(p))
		h.put(b)
		copy(b[HeaderSize:], p)
		if IDOf(b) != info.IDs[w] {
			return nil, fmt.Errorf("%w: segment %d: rebuilt shard %d does not match its ID", ErrBadShard, seg, w)
		}
		out[j] = b
	}
	return out, nil
}
