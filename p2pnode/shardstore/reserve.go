package shardstore

import (
	"context"
	"fmt"
	"net/netip"
)

type sourceKey struct{}

// ContextWithSource returns ctx naming the network a put comes from. Put
// charges the bytes it reserves to that source as well as to the put's
// owner, and caps both alike (WithReservationShare). The store does not
// interpret the prefix; the shard protocol names the requester's IPv4
// address, or the /56 of its IPv6 address. An invalid prefix names none.
func ContextWithSource(ctx context.Context, src netip.Prefix) context.Context {
	return context.WithValue(ctx, sourceKey{}, src.Masked())
}

// sourceOf returns the source ctx names, or the zero (invalid) prefix.
func sourceOf(ctx context.Context) netip.Prefix {
	src, _ := ctx.Value(sourceKey{}).(netip.Prefix)
	return src
}

// reservations accounts the bytes reserved by puts in flight: in total,
// per owner and per source. The Disk's mutex guards it.
type reservations struct {
	total    int64
	byOwner  map[Owner]int64
	bySource map[netip.Prefix]int64
}

func newReservations() reservations {
	return reservations{byOwner: make(map[Owner]int64), bySource: make(map[netip.Prefix]int64)}
}

// admit reserves size bytes for a put of owner from src when the owner's
// and the source's reservations stay within limit, and fails with ErrBusy
// otherwise. An invalid src is not charged.
func (r *reservations) admit(owner Owner, src netip.Prefix, size, limit int64) error {
	if held := r.byOwner[owner]; held+size > limit {
		return fmt.Errorf("%w: owner %s has %d bytes reserved by puts in flight, %d more would pass its limit of %d",
			ErrBusy, owner.Short(), held, size, limit)
	}
	if src.IsValid() {
		if held := r.bySource[src]; held+size > limit {
			return fmt.Errorf("%w: source %s has %d bytes reserved by puts in flight, %d more would pass its limit of %d",
				ErrBusy, src, held, size, limit)
		}
		r.bySource[src] += size
	}
	r.byOwner[owner] += size
	r.total += size
	return nil
}

// release returns what admit reserved.
func (r *reservations) release(owner Owner, src netip.Prefix, size int64) {
	r.total -= size
	if r.byOwner[owner] -= size; r.byOwner[owner] <= 0 {
		delete(r.byOwner, owner)
	}
	if src.IsValid() {
		if r.bySource[src] -= size; r.bySource[src] <= 0 {
			delete(r.bySource, src)
		}
	}
}

// reservationLimit is what one owner or source may hold reserved when
// free bytes are left: free/share, but at least one shard of the largest
// size, so that a lone put of any accepted size is never refused for it.
func (c *config) reservationLimit(free int64) int64 {
	return max(c.maxShardSize, free/int64(c.share))
}
