package shardstore

import "sync"

// PutStats counts the puts a store has answered since it was opened.
type PutStats struct {
	// Puts is the number of puts that succeeded, a shard already held
	// (a new reference or a longer lease) included, and Bytes their sizes.
	Puts, Bytes int64
	// NewShards and NewBytes count the successful puts that wrote a shard
	// the store did not hold.
	NewShards, NewBytes int64
	// InFlight is the number of puts begun and not yet answered. A
	// snapshot with InFlight zero counts every put that began before it.
	InFlight int64
}

// putCounter keeps PutStats consistent: a put's outcome is counted in the
// same step that ends it, so no snapshot sees it ended but uncounted.
type putCounter struct {
	mu sync.Mutex
	s  PutStats
}

func (c *putCounter) begin() {
	c.mu.Lock()
	c.s.InFlight++
	c.mu.Unlock()
}

// end counts a put of size bytes that returned err; stored says it wrote
// a new shard.
func (c *putCounter) end(size int64, stored bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.InFlight--
	if err != nil {
		return
	}
	c.s.Puts++
	c.s.Bytes += size
	if stored {
		c.s.NewShards++
		c.s.NewBytes += size
	}
}

func (c *putCounter) snapshot() PutStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}

// PutStats returns the store's put counters.
func (d *Disk) PutStats() PutStats { return d.puts.snapshot() }
