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
// allowed somewhat beyond the service's own caps (DefaultMaxStreams,
// DefaultMaxPeerStreams), so that the service's admission, which answers
// with a code clients retry on, is the one that refuses. Memory covers,
// for every admitted stream, what a put reserves (shardstore.PutMemory
// of the largest shard) plus a receive window of putWindow; libp2p's
// default of 16 MiB per service peer would hold back concurrent puts.
func SetServiceLimits(cfg *rcmgr.ScalingLimitConfig) {
	perStream := int64(shardstore.PutMemory(shardstore.DefaultMaxShardSize)) + putWindow
	cfg.AddServiceLimit(ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 2 * DefaultMaxStreams, StreamsOutbound: 2 * DefaultMaxStreams, Streams: 4 * DefaultMaxStreams,
			Memory: DefaultMaxStreams * perStream},
		rcmgr.BaseLimitIncrease{StreamsInbound: DefaultMaxStreams, StreamsOutbound: DefaultMaxStreams, Streams: 2 * DefaultMaxStreams,
			Memory: DefaultMaxStreams * perStream},
	)
	cfg.AddServicePeerLimit(ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 2 * DefaultMaxPeerStreams, StreamsOutbound: 2 * DefaultMaxPeerStreams, Streams: 4 * DefaultMaxPeerStreams,
			Memory: 2 * DefaultMaxPeerStreams * perStream},
		rcmgr.BaseLimitIncrease{},
	)
}
