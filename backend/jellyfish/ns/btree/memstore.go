package btree

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
)

// ErrNotFound is returned by MemStore.Get for a reference it does not hold.
var ErrNotFound = errors.New("btree: node not found")

// MemStore is an in-memory Store for tests of this and other packages. A
// node's reference is the SHA-256 of its bytes, so storing the same bytes
// twice gives the same reference. It counts the calls made to it and is
// safe for concurrent use. The zero MemStore is empty and ready to use.
type MemStore struct {
	mu    sync.Mutex
	nodes map[string][]byte
	stats MemStats
}

// MemStats counts the calls made to a MemStore.
type MemStats struct {
	Puts, Gets         int
	PutBytes, GetBytes int64
}

var _ Store = (*MemStore)(nil)

// Put stores node, which it keeps: the caller must not modify it afterwards.
func (s *MemStore) Put(ctx context.Context, node []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(node)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nodes == nil {
		s.nodes = make(map[string][]byte)
	}
	s.nodes[string(sum[:])] = node
	s.stats.Puts++
	s.stats.PutBytes += int64(len(node))
	return sum[:], nil
}

// Get returns the bytes stored under ref, which the caller must not modify,
// or an error wrapping ErrNotFound.
func (s *MemStore) Get(ctx context.Context, ref []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.nodes[string(ref)]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, refName(ref))
	}
	s.stats.Gets++
	s.stats.GetBytes += int64(len(b))
	return b, nil
}

// Delete forgets the node stored under ref, if any.
func (s *MemStore) Delete(ref []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.nodes, string(ref))
}

// Len returns the number of nodes stored.
func (s *MemStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.nodes)
}

// Stats returns the counts of calls so far.
func (s *MemStore) Stats() MemStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Sub returns the counts in s that are not in o: the calls made between two
// calls of Stats.
func (s MemStats) Sub(o MemStats) MemStats {
	return MemStats{
		Puts:     s.Puts - o.Puts,
		Gets:     s.Gets - o.Gets,
		PutBytes: s.PutBytes - o.PutBytes,
		GetBytes: s.GetBytes - o.GetBytes,
	}
}
