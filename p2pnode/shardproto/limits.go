package shardproto

import (
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// putWindow is the stream receive window a put should be able to grow to
// (yamux grows windows on demand, up to 16 MiB, from the stream's memory).
const putWindow = 4 << 20

// SetServiceLimits declares the resource-manager limits of the shard
// service (scope ServiceName) in cfg, before cfg.AutoScale. Streams are
// allowed twice the service's own caps on waiting and served streams
// (DefaultMaxPending + DefaultMaxStreams in total, DefaultMaxPeerPending +
// DefaultMaxPeerStreams per peer), so that the service's admission, which
// makes room for new streams and answers with a code clients retry on, is
// the one that refuses: the second half is room for the refusals held
// before their reset (maxHeld in total, maxPeerHeld per peer). Memory covers, for every serving slot, what a put
// reserves (shardstore.PutMemory of the largest shard) plus a receive
// window of putWindow, and for every pending place a request header;
// libp2p's default of 16 MiB per service peer would hold back concurrent
// puts.
func SetServiceLimits(cfg *rcmgr.ScalingLimitConfig) {
	perStream := int64(shardstore.PutMemory(shardstore.DefaultMaxShardSize)) + putWindow
	streams, peerStreams := DefaultMaxPending+DefaultMaxStreams, DefaultMaxPeerPending+DefaultMaxPeerStreams
	memory := DefaultMaxStreams*perStream + DefaultMaxPending*MaxHeaderSize
	peerMemory := DefaultMaxPeerStreams*perStream + DefaultMaxPeerPending*MaxHeaderSize
	cfg.AddServiceLimit(ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 2 * streams, StreamsOutbound: 2 * streams, Streams: 4 * streams, Memory: memory},
		rcmgr.BaseLimitIncrease{StreamsInbound: streams, StreamsOutbound: streams, Streams: 2 * streams, Memory: memory},
	)
	cfg.AddServicePeerLimit(ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 2 * peerStreams, StreamsOutbound: 2 * peerStreams, Streams: 4 * peerStreams, Memory: 2 * peerMemory},
		rcmgr.BaseLimitIncrease{},
	)
}
