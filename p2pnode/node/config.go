package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/connmgr"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// Mode says whether the node serves the DHT.
type Mode int

const (
	// ModeServer answers DHT queries and stores records: provider nodes.
	ModeServer Mode = iota
	// ModeClient only queries: a pure client such as an rclone process
	// without a daemon.
	ModeClient
)

// String implements fmt.Stringer.
func (m Mode) String() string {
	switch m {
	case ModeServer:
		return "server"
	case ModeClient:
		return "client"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Defaults applied by New to zero Config fields.
const (
	DefaultBootstrapTimeout  = 30 * time.Second
	DefaultRepublishInterval = 4 * time.Hour
	// DefaultMaxRecordAge keeps stored records as long as the longest signed
	// expiry the validator accepts, so expiry, not kad-dht's age limit,
	// ends a record's life.
	DefaultMaxRecordAge = record.DefaultMaxLifetime
	DefaultConnLow      = 64
	DefaultConnHigh     = 192
)

// ProtocolPrefix is the DHT protocol prefix; the DHT protocol is
// ProtocolPrefix + "/kad/1.0.0".
const ProtocolPrefix = "/jellyfish"

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("node: invalid config")

// Config is everything New needs. DataDir is required; every other zero
// field takes a default.
type Config struct {
	// DataDir holds identity.key and the dht database. Created 0700 if
	// missing.
	DataDir string
	// ListenAddrs default to TCP and QUIC on all IPv4 interfaces at a
	// random port.
	ListenAddrs []ma.Multiaddr
	// BootstrapPeers are full multiaddrs ending in /p2p/<peer ID>. None
	// means this is the first node of a network.
	BootstrapPeers []ma.Multiaddr
	// Mode is ModeServer (the default) or ModeClient.
	Mode Mode
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Clock is the time source of record validation, expiry and
	// republishing; nil means time.Now.
	Clock record.Clock
	// BootstrapTimeout bounds Bootstrap.
	BootstrapTimeout time.Duration
	// RepublishInterval is the period of the republisher; keep it well
	// inside MaxRecordAge. Negative disables the loop (RepublishOnce still
	// works).
	RepublishInterval time.Duration
	// MaxRecordAge is kad-dht's limit on how long a stored record is kept
	// since it was last received.
	MaxRecordAge time.Duration
	// ConnLow and ConnHigh are the connection manager's watermarks.
	ConnLow, ConnHigh int
	// ConnectionGater, if set, may refuse connections (used by testnet to
	// partition nodes).
	ConnectionGater connmgr.ConnectionGater
	// ResourceLimits replaces the resource manager's scaled default limits.
	ResourceLimits *rcmgr.ConcreteLimitConfig
	// ServiceLimits add the resource limits of services the caller runs
	// on the node's host to the scaled defaults (see HostConfig); the node
	// itself knows no service beyond libp2p's, the DHT and the mark
	// protocol (markproto), whose limits it adds.
	ServiceLimits []func(*rcmgr.ScalingLimitConfig)
	// RecordKinds are registered with the record validator in addition to
	// the node kind.
	RecordKinds []record.KindRules
	// DHTOptions are appended after the node's own DHT options; for tuning
	// and tests.
	DHTOptions []dht.Option
}

// withDefaults returns cfg with defaults filled in, or an error for values
// that cannot work.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.DataDir == "" {
		return cfg, fmt.Errorf("%w: DataDir is empty", ErrConfig)
	}
	if cfg.Mode != ModeServer && cfg.Mode != ModeClient {
		return cfg, fmt.Errorf("%w: mode %v", ErrConfig, cfg.Mode)
	}
	if len(cfg.ListenAddrs) == 0 {
		cfg.ListenAddrs = []ma.Multiaddr{
			ma.StringCast("/ip4/0.0.0.0/tcp/0"),
			ma.StringCast("/ip4/0.0.0.0/udp/0/quic-v1"),
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.BootstrapTimeout == 0 {
		cfg.BootstrapTimeout = DefaultBootstrapTimeout
	}
	if cfg.RepublishInterval == 0 {
		cfg.RepublishInterval = DefaultRepublishInterval
	}
	if cfg.MaxRecordAge == 0 {
		cfg.MaxRecordAge = DefaultMaxRecordAge
	}
	if cfg.RepublishInterval > 0 && cfg.RepublishInterval >= cfg.MaxRecordAge {
		return cfg, fmt.Errorf("%w: republish interval %v not inside max record age %v", ErrConfig, cfg.RepublishInterval, cfg.MaxRecordAge)
	}
	if cfg.ConnLow == 0 {
		cfg.ConnLow = DefaultConnLow
	}
	if cfg.ConnHigh == 0 {
		cfg.ConnHigh = DefaultConnHigh
	}
	if cfg.ConnLow > cfg.ConnHigh {
		return cfg, fmt.Errorf("%w: ConnLow %d > ConnHigh %d", ErrConfig, cfg.ConnLow, cfg.ConnHigh)
	}
	return cfg, nil
}
