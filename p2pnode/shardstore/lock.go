package shardstore

import (
	"context"
	"sync"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

// keyLock serialises the operations on one shard ID (put, delete, renew,
// GC) without holding the store-wide mutex across disk I/O.
type keyLock struct {
	mu sync.Mutex
	m  map[codec.ShardID]*lockEntry
}

type lockEntry struct {
	ch    chan struct{} // holds one token while locked
	users int           // holders and waiters; the entry is dropped at 0
}

// lock waits for id's lock or for ctx to be done. The returned function
// releases the lock.
func (k *keyLock) lock(ctx context.Context, id codec.ShardID) (func(), error) {
	k.mu.Lock()
	e := k.m[id]
	if e == nil {
		e = &lockEntry{ch: make(chan struct{}, 1)}
		k.m[id] = e
	}
	e.users++
	k.mu.Unlock()
	select {
	case e.ch <- struct{}{}:
		return func() {
			<-e.ch
			k.release(id, e)
		}, nil
	case <-ctx.Done():
		k.release(id, e)
		return nil, ctx.Err()
	}
}

func (k *keyLock) release(id codec.ShardID, e *lockEntry) {
	k.mu.Lock()
	e.users--
	if e.users == 0 {
		delete(k.m, id)
	}
	k.mu.Unlock()
}
