package jellyfish

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/errgroup"
)

// usageReporter is the optional ability of a shardIO to ask a holder what
// the owner references there and how much more it may put:
// shardproto.Client.Usage.
type usageReporter interface {
	Usage(ctx context.Context, p peer.ID) (held, room int64, err error)
}

// Bounds of a usage survey, and of every request this device sends to
// each provider in turn (askEach).
const (
	usageParallel = 16
	usageTimeout  = 10 * time.Second
)

// askEach calls ask for each of peers, usageParallel at a time, each with
// usageTimeout, and returns once every call has. ask guards what it
// shares.
func askEach(ctx context.Context, peers []peer.ID, ask func(ctx context.Context, p peer.ID)) {
	var g errgroup.Group
	g.SetLimit(usageParallel)
	for _, p := range peers {
		g.Go(func() error {
			cctx, cancel := context.WithTimeout(ctx, usageTimeout)
			defer cancel()
			ask(cctx, p)
			return nil
		})
	}
	_ = g.Wait()
}

// providerRoom is what the providers said of this account: the shard
// bytes they hold for it, how much more each would take, and how many
// answered of how many asked.
type providerRoom struct {
	held            int64
	rooms           []int64
	answered, asked int
}

// providerRooms asks every provider for the account's usage there.
// ok is false when the shard client cannot ask or nobody answered.
func (s *session) providerRooms(ctx context.Context) (pr providerRoom, ok bool) {
	ur, can := s.store.shards.(usageReporter)
	if !can {
		return pr, false
	}
	providers, err := s.net.Providers(ctx)
	if err != nil {
		return pr, false
	}
	pr.asked = len(providers)
	var mu sync.Mutex
	askEach(ctx, providers, func(ctx context.Context, p peer.ID) {
		held, room, err := ur.Usage(ctx, p)
		if err != nil {
			return
		}
		mu.Lock()
		pr.held += held
		pr.rooms = append(pr.rooms, room)
		pr.answered++
		mu.Unlock()
	})
	return pr, pr.answered > 0
}

// storable returns the most shard bytes that can still be stored in
// segments of k data and m parity shards, one shard of a segment per
// provider, onto providers with rooms of shard bytes: n·x for the largest
// x with Σ min(room, x) ≥ n·x, n = k + m (a provider holds at most one
// shard of every segment, x bytes in all, when the segments' shards add
// up to n·x). It is an upper bound: placement's caps and the providers'
// rooms changing can only lower it. The file bytes that fit are k/n of it.
func storable(rooms []int64, k, m int) int64 {
	n := k + m
	if k <= 0 || m < 0 || len(rooms) < n {
		return 0
	}
	r := slices.Clone(rooms)
	slices.Sort(r)
	slices.Reverse(r) // the largest first: fits stops sooner
	fits := func(x int64) bool {
		var sum int64
		for _, v := range r {
			if sum += min(v, x); sum >= int64(n)*x {
				return true
			}
		}
		return false
	}
	var sum int64
	for _, v := range r {
		sum += v
	}
	lo, hi := int64(0), sum/int64(n)
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo * int64(n)
}
