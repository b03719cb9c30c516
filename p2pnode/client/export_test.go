package client

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// SmallNetwork exposes smallNetwork to the package's tests.
func (c *Client) SmallNetwork(ctx context.Context) bool { return c.smallNetwork(ctx) }

// ReadsOnLoopback lets the reads host dial holders on loopback addresses.
func (c *Client) ReadsOnLoopback() { c.reads.loopback = true }

// ReadsHost returns the reads host's peer ID and whether it is connected
// to p.
func (c *Client) ReadsHost(p peer.ID) (peer.ID, bool) {
	return c.reads.h.ID(), c.reads.h.Network().Connectedness(p) == network.Connected
}

// ReadStreams returns how many streams the reads host has opened.
func (c *Client) ReadStreams() int64 { return c.reads.streams.Load() }

// ShardHost returns the host shard traffic goes through.
func (c *Client) ShardHost() host.Host { return c.shardHost }

// PunchWaits returns how often finding a holder waited for PunchReady.
func (c *Client) PunchWaits() int64 { return c.routing.waits.Load() }

// HolderSearches returns how many searches for a holder ran.
func (c *Client) HolderSearches() int64 { return c.routing.searches.Load() }

// SetRoutingClock sets the clock the holder searches keep their answers
// and the hole punching wait by.
func (c *Client) SetRoutingClock(now func() time.Time) { c.routing.now = now }
