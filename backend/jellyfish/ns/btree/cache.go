package btree

import (
	"container/list"
	"sync"
)

// nodeCache keeps the most recently used decoded nodes, keyed by reference.
// A stored node never changes, so a cached node is never stale. It is safe
// for concurrent use; a nil or zero-capacity cache keeps nothing.
type nodeCache struct {
	max int

	mu    sync.Mutex
	order list.List // of *cacheEntry, most recently used first
	byRef map[string]*list.Element
}

type cacheEntry struct {
	ref string
	n   *node
}

func newNodeCache(max int) *nodeCache {
	return &nodeCache{max: max, byRef: make(map[string]*list.Element)}
}

func (c *nodeCache) get(ref []byte) *node {
	if c == nil || c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byRef[string(ref)]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).n
}

func (c *nodeCache) add(ref []byte, n *node) {
	if c == nil || c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byRef[string(ref)]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.byRef[string(ref)] = c.order.PushFront(&cacheEntry{ref: string(ref), n: n})
	for c.order.Len() > c.max {
		e := c.order.Back()
		c.order.Remove(e)
		delete(c.byRef, e.Value.(*cacheEntry).ref)
	}
}

func (c *nodeCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
