package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/errgroup"
)

// The DHT's key space: kad-dht places a peer at SHA-256 of its ID and a
// key at SHA-256 of the key, and measures distance by XOR, so the peers
// closest to a key are those sharing the longest prefix with it.
const (
	// bucketSize is kad-dht's K: the routing table keeps at most this
	// many peers per bucket and a lookup returns the K closest peers.
	bucketSize = 20
	// walkLookups bounds the lookups of one walk. A region holds about
	// 5 to 20 peers when it is not split further, so this lists networks
	// of several hundred providers whole and a part of larger ones.
	walkLookups = 64
	// walkParallel is how many lookups of a walk run at once.
	walkParallel = 4
	// walkMaxBits is the longest prefix a walk looks up: a key with a
	// given prefix of b bits takes about 2^b hashes to find.
	walkMaxBits = 16
	// walkSplitBits is how many bits a region too full to list in one
	// lookup is split by (into 2^walkSplitBits parts).
	walkSplitBits = 2
)

// region is the part of the key space whose keys start with the first
// bits of prefix.
type region struct {
	prefix [32]byte
	bits   int
}

// contains reports whether key k lies in r.
func (r region) contains(k [32]byte) bool {
	for i := range r.bits {
		if bit(k, i) != bit(r.prefix, i) {
			return false
		}
	}
	return true
}

// split returns the 2^walkSplitBits parts of r.
func (r region) split() []region {
	parts := make([]region, 0, 1<<walkSplitBits)
	for v := range 1 << walkSplitBits {
		p := region{prefix: r.prefix, bits: r.bits + walkSplitBits}
		for j := range walkSplitBits {
			setBit(&p.prefix, r.bits+j, v>>(walkSplitBits-1-j)&1)
		}
		parts = append(parts, p)
	}
	return parts
}

func bit(k [32]byte, i int) int { return int(k[i/8]>>(7-i%8)) & 1 }

func setBit(k *[32]byte, i, v int) {
	mask := byte(1) << (7 - i%8)
	if v == 1 {
		k[i/8] |= mask
	} else {
		k[i/8] &^= mask
	}
}

// keyIn returns a DHT key whose place in the key space lies in r, found
// by hashing random keys (about 2^r.bits tries).
func keyIn(r region) string {
	var b [16]byte
	_, _ = rand.Read(b[:8])
	for n := uint64(0); ; n++ {
		binary.BigEndian.PutUint64(b[8:], n)
		if r.contains(sha256.Sum256(b[:])) {
			return string(b[:])
		}
	}
}

// fullRegions returns the regions of the buckets of the client's routing
// table that are full: each holds more peers than the table keeps.
func (c *Client) fullRegions() []region {
	rt := c.n.DHT().RoutingTable()
	self := sha256.Sum256([]byte(c.n.ID()))
	var out []region
	for cpl := 0; cpl < walkMaxBits; cpl++ {
		if rt.NPeersForCpl(uint(cpl)) < bucketSize {
			continue
		}
		// Peers at common prefix length cpl share cpl bits with self and
		// differ in the next one.
		r := region{prefix: self, bits: cpl + 1}
		setBit(&r.prefix, cpl, 1-bit(self, cpl))
		out = append(out, r)
	}
	return out
}

// walk finds the DHT servers in the parts of the key space where the
// routing table is full, by looking up keys spread over them: a lookup
// returns the bucketSize peers closest to its key, which are all the
// peers of the key's region when it holds fewer than that (XOR distance
// puts every peer inside a region closer to a key in it than any peer
// outside); a region whose lookup comes back with bucketSize peers all
// inside it is split and its parts looked up. A full bucket's region
// is split at once. At most walkLookups lookups run, walkParallel at a
// time; a failed lookup only leaves its region unlisted. Small networks,
// whose routing tables hold every peer, need no lookup.
func (c *Client) walk(ctx context.Context) []peer.ID {
	var (
		mu      sync.Mutex
		found   = map[peer.ID]struct{}{}
		pending []region
		budget  = walkLookups
	)
	for _, r := range c.fullRegions() {
		pending = append(pending, r.split()...)
	}
	for len(pending) > 0 && budget > 0 && ctx.Err() == nil {
		batch := pending[:min(len(pending), budget)]
		pending = pending[len(batch):]
		budget -= len(batch)
		var g errgroup.Group
		g.SetLimit(walkParallel)
		for _, r := range batch {
			g.Go(func() error {
				peers, err := c.n.DHT().GetClosestPeers(ctx, keyIn(r))
				if err != nil {
					return nil
				}
				inside := 0
				mu.Lock()
				defer mu.Unlock()
				for _, p := range peers {
					found[p] = struct{}{}
					if r.contains(sha256.Sum256([]byte(p))) {
						inside++
					}
				}
				if len(peers) >= bucketSize && inside == len(peers) && r.bits+walkSplitBits <= walkMaxBits {
					pending = append(pending, r.split()...)
				}
				return nil
			})
		}
		_ = g.Wait()
	}
	out := make([]peer.ID, 0, len(found))
	for p := range found {
		out = append(out, p)
	}
	return out
}
