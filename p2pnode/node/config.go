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
	// ModeAuto serves the DHT unless AutoNAT has found that other nodes
	// cannot dial this one, and only queries while that lasts: a node
	// behind a router that forwards nothing to it holds no records and is
	// handed no shards (the peers placement finds are the DHT's servers).
	// Until anything is measured the node serves, so that networks without
	// public addresses (a LAN, a test network) work as before.
	ModeAuto
)

// String implements fmt.Stringer.
func (m Mode) String() string {
	switch m {
	case ModeServer:
		return "server"
	case ModeClient:
		return "client"
	case ModeAuto:
		return "auto"
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

// Default limits on what the node stores for the DHT (docs/design.md §2.1,
// "Limits"). A record is at most 4 KiB, so the record limits bound the
// record database to 2 GiB (1.5 GiB for the six kinds known today); a
// mark takes about 130 bytes, so the mark limits bound the marks to about
// 550 MB.
const (
	// DefaultMaxRecords bounds the records of all kinds together; it is
	// above six kinds' worth, so it binds only when more kinds exist.
	DefaultMaxRecords = 1 << 19
	// DefaultMaxRecordsPerKind bounds the records of one kind. Each key is
	// stored by the 20 nodes closest to it, so in a network of N ≥ 20
	// nodes a node holds about 20/N of every kind: 65,536 per node lets a
	// network of N nodes hold 3,276·N keys of a kind (100 nodes: 327,000
	// accounts, or as many device heads); below 20 nodes every node holds
	// everything.
	DefaultMaxRecordsPerKind = 1 << 16
	// DefaultMaxRecordsPerPublisher bounds the keys of one publisher within
	// a kind that names publishers: head records of one account, which
	// lists at most 32 devices, while heads of retired devices linger until
	// they expire.
	DefaultMaxRecordsPerPublisher = 256
	// DefaultMaxMarks, DefaultMaxMarksPerKind and
	// DefaultMaxMarksPerPublisher bound the high-water marks. A mark
	// outlives its record (by the margin for most kinds, for ever for
	// login records), so the limits are above the record limits: login
	// marks grow with every account ever created and reach 1,048,576 on a
	// node when 20/N × accounts × passwords per account does.
	DefaultMaxMarks             = 1 << 22
	DefaultMaxMarksPerKind      = 1 << 20
	DefaultMaxMarksPerPublisher = 1024
	// DefaultMarkMargin is how long past the longest record lifetime a
	// mark is kept, unless its kind keeps marks for ever: it covers clocks
	// that are days wrong.
	DefaultMarkMargin = 7 * 24 * time.Hour
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
	// Mode is ModeServer (the default), ModeClient or ModeAuto.
	Mode Mode
	// AnnounceAddrs, when set, are the only addresses the node gives
	// others, instead of those it listens on and those peers observed: for
	// a node behind a router with a forwarded port, or with a public
	// address its interfaces do not show.
	AnnounceAddrs []ma.Multiaddr
	// PortMapping asks the local router, by UPnP or NAT-PMP, to forward a
	// port to each listening address, and announces the mapped addresses.
	PortMapping bool
	// AutoNATService answers other nodes' AutoNAT probes: the node dials
	// back the addresses a peer asks about, so that the peer learns
	// whether it can be reached (rate-limited by libp2p). Nodes of a real
	// network all run it; without it nobody learns whether it is behind a
	// NAT.
	AutoNATService bool
	// HolePunching runs libp2p's hole punching (DCUtR): a peer that
	// reached this node through a relay, or that this node reached through
	// one, is then connected directly where the NATs allow it.
	HolePunching bool
	// Relays makes the node serve as a circuit relay while it is public
	// and, while it is private, keep relay reservations on connected
	// public peers and give their relayed addresses, so that peers can
	// reach it for a hole punch. Relayed connections carry only the punch;
	// streams wait for the direct connection it makes.
	Relays bool
	// TCPCongestion is the congestion control set on each TCP connection
	// of the node's host: empty means DefaultCongestion (BBR), NoCongestion
	// the system's default. Where the kernel lacks it or does not let the
	// process set it, the node logs that once and uses the default.
	TCPCongestion string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Clock is the time source of record validation, expiry and
	// republishing; nil means time.Now.
	Clock record.Clock
	// BootstrapTimeout bounds Bootstrap.
	BootstrapTimeout time.Duration
	// BootstrapSelfLookup makes Bootstrap, once connected, look up the
	// node's own ID and wait for that lookup, instead of starting a
	// refresh of every bucket of the routing table: the peers closest to
	// the node learn of it and it of them, which is what lookups of keys
	// near it need, at the cost of one lookup instead of one per bucket
	// (about ten in a network of hundreds). The other buckets fill from
	// the peers the node talks to and from the DHT's periodic refreshes.
	// For in-process networks of hundreds of nodes, whose joins would
	// otherwise all refresh at once.
	BootstrapSelfLookup bool
	// RepublishInterval is the period of the republisher; keep it well
	// inside MaxRecordAge. Negative disables the loop (RepublishOnce still
	// works).
	RepublishInterval time.Duration
	// MaxRecordAge is kad-dht's limit on how long a stored record is kept
	// since it was last received.
	MaxRecordAge time.Duration
	// ConnLow and ConnHigh are the connection manager's watermarks.
	ConnLow, ConnHigh int
	// ConnGrace is how long a new connection is spared when the
	// connection manager trims connections above ConnHigh; zero means a
	// minute (libp2p's default). Many nodes in one process use a short
	// one so that connections opened by lookups close again soon.
	ConnGrace time.Duration
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
	// RecordLimits bound the records the node stores for the DHT; when
	// one is reached, records under new keys are refused and updates of
	// stored keys still accepted. Zero fields take the DefaultMaxRecords…
	// values; a negative field sets no limit, as does a Kinds entry of zero
	// or less.
	RecordLimits record.Limits
	// MarkLimits bound the high-water marks the node keeps, the same way;
	// zero fields take the DefaultMaxMarks… values.
	MarkLimits record.Limits
	// MarkMargin is how long past record.DefaultMaxLifetime, counted from
	// when it was last raised, a mark is kept unless its kind keeps marks
	// for ever (record.KindRules.KeepMarks). Zero means DefaultMarkMargin;
	// negative keeps every mark.
	MarkMargin time.Duration
}

// withLimitDefaults fills l's zero fields from the given defaults.
func withLimitDefaults(l record.Limits, total, perKind, perPublisher int) record.Limits {
	if l.Total == 0 {
		l.Total = total
	}
	if l.PerKind == 0 {
		l.PerKind = perKind
	}
	if l.PerPublisher == 0 {
		l.PerPublisher = perPublisher
	}
	return l
}

// withDefaults returns cfg with defaults filled in, or an error for values
// that cannot work.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.DataDir == "" {
		return cfg, fmt.Errorf("%w: DataDir is empty", ErrConfig)
	}
	if cfg.Mode != ModeServer && cfg.Mode != ModeClient && cfg.Mode != ModeAuto {
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
	if cfg.TCPCongestion == "" {
		cfg.TCPCongestion = DefaultCongestion
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
	cfg.RecordLimits = withLimitDefaults(cfg.RecordLimits, DefaultMaxRecords, DefaultMaxRecordsPerKind, DefaultMaxRecordsPerPublisher)
	cfg.MarkLimits = withLimitDefaults(cfg.MarkLimits, DefaultMaxMarks, DefaultMaxMarksPerKind, DefaultMaxMarksPerPublisher)
	if cfg.MarkMargin == 0 {
		cfg.MarkMargin = DefaultMarkMargin
	}
	if cfg.ConnGrace < 0 {
		return cfg, fmt.Errorf("%w: ConnGrace %v is negative", ErrConfig, cfg.ConnGrace)
	}
	if cfg.ConnLow > cfg.ConnHigh {
		return cfg, fmt.Errorf("%w: ConnLow %d > ConnHigh %d", ErrConfig, cfg.ConnLow, cfg.ConnHigh)
	}
	return cfg, nil
}
