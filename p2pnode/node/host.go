package node

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	cmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// HostConfig is what NewHost needs.
type HostConfig struct {
	// ListenAddrs are where the host listens; none, and it only dials.
	ListenAddrs []ma.Multiaddr
	// AnnounceAddrs, PortMapping and AutoNATService are as in Config.
	AnnounceAddrs  []ma.Multiaddr
	PortMapping    bool
	AutoNATService bool
	// HolePunching and Relays are as in Config.
	HolePunching, Relays bool
	// PunchTracer, if set, is told the hole punching service's events.
	PunchTracer holepunch.EventTracer
	// RelayACL, if set, is the relay service's ACL (with Relays).
	RelayACL relayv2.ACLFilter
	// ConnLow and ConnHigh are the connection manager's watermarks.
	ConnLow, ConnHigh int
	// ConnGrace is how long a new connection is spared by the connection
	// manager's trimming, which then also runs that often (at most every
	// 10 s); zero keeps the manager's defaults (a minute, every 10 s).
	ConnGrace time.Duration
	// Gater may refuse connections; nil allows all.
	Gater connmgr.ConnectionGater
	// Limits replaces the scaled default resource limits; nil keeps them.
	Limits *rcmgr.ConcreteLimitConfig
	// Congestion is the TCP congestion control set on each TCP connection
	// (see DefaultCongestion); empty or NoCongestion leaves the system's.
	Congestion string
	// Logger receives the host's few log lines; nil discards them.
	Logger *slog.Logger
	// ServiceLimits declare the limits of the services the caller will
	// run on the host (such as shardproto.SetServiceLimits) in the
	// default limits before they are scaled. Unused when Limits is set.
	ServiceLimits []func(*rcmgr.ScalingLimitConfig)
}

// NewHost starts a libp2p host with identity priv listening on
// cfg.ListenAddrs over TCP (with cfg.Congestion) and QUIC, securing connections with Noise or
// TLS, multiplexing with yamux, with the resource manager on (libp2p's
// default limits scaled to this machine, plus libp2p's own service limits
// and cfg.ServiceLimits) and a connection manager. The caller owns the host and must Close it.
func NewHost(priv crypto.PrivKey, cfg HostConfig) (host.Host, error) {
	var limits rcmgr.ConcreteLimitConfig
	if cfg.Limits != nil {
		limits = *cfg.Limits
	} else {
		scaling := rcmgr.DefaultLimits
		libp2p.SetDefaultServiceLimits(&scaling)
		for _, set := range cfg.ServiceLimits {
			set(&scaling)
		}
		limits = scaling.AutoScale()
	}
	// Without WithMetricsDisabled the resource manager reports every
	// event to a Prometheus collector in the process-wide registry,
	// formatting a timestamp each time: 14 % of a provider's CPU under a
	// stream flood (make bench-hostile), for metrics nobody reads. The
	// node's own metrics are served by its status page.
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits), rcmgr.WithMetricsDisabled())
	if err != nil {
		return nil, fmt.Errorf("node: resource manager: %w", err)
	}
	var cmOpts []cmgr.Option
	if cfg.ConnGrace > 0 {
		// The manager trims at most once per silence period (10 s by
		// default); a shorter grace needs trims as often to take effect.
		cmOpts = append(cmOpts, cmgr.WithGracePeriod(cfg.ConnGrace), cmgr.WithSilencePeriod(min(cfg.ConnGrace, 10*time.Second)))
	}
	cm, err := cmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, cmOpts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("node: connection manager: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var tcpTransport any = tcp.NewTCPTransport
	if cc := newCongestion(cfg.Congestion, log); cc != nil {
		tcpTransport = cc.transport()
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.ListenAddrs(cfg.ListenAddrs...),
		libp2p.Transport(tcpTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(tls.ID, tls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		// Metrics would register per-host collectors in the process-wide
		// Prometheus registry; a testnet runs many hosts in one process.
		libp2p.DisableMetrics(),
	}
	if len(cfg.ListenAddrs) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	if cfg.Gater != nil {
		opts = append(opts, libp2p.ConnectionGater(cfg.Gater))
	}
	if len(cfg.AnnounceAddrs) > 0 {
		announce := slices.Clone(cfg.AnnounceAddrs)
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return announce }))
	}
	if cfg.PortMapping {
		opts = append(opts, libp2p.NATPortMap())
	}
	if cfg.AutoNATService {
		opts = append(opts, libp2p.EnableNATService())
	}
	var self atomic.Pointer[host.Host]
	if cfg.HolePunching {
		var hopts []holepunch.Option
		if cfg.PunchTracer != nil {
			hopts = append(hopts, holepunch.WithTracer(cfg.PunchTracer))
		}
		opts = append(opts, libp2p.EnableHolePunching(hopts...))
	}
	if cfg.Relays {
		opts = append(opts, relays(&self, cfg.RelayACL)...)
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		// libp2p.New closes what it built on failure except the managers
		// handed to it.
		cm.Close()
		rm.Close()
		return nil, fmt.Errorf("node: start host: %w", err)
	}
	self.Store(&h)
	return h, nil
}

// relays returns the options that let a host behind a NAT be reached: a
// circuit relay v2 service that starts only while AutoNAT finds the host
// public, and AutoRelay, which, while the host is private, reserves a
// slot on up to two relays among its connected peers and adds the relayed
// addresses to those it gives. A relayed connection is limited (2
// minutes, 128 KiB by the relay's defaults) and carries only the hole
// punch's synchronisation: a stream without network.WithAllowLimitedConn
// waits for the direct connection the punch makes, and fails if there is
// none.
func relays(self *atomic.Pointer[host.Host], acl relayv2.ACLFilter) []libp2p.Option {
	var ropts []relayv2.Option
	if acl != nil {
		ropts = append(ropts, relayv2.WithACL(acl))
	}
	return []libp2p.Option{
		libp2p.EnableRelayService(ropts...),
		libp2p.EnableAutoRelayWithPeerSource(func(ctx context.Context, num int) <-chan peer.AddrInfo {
			return relayCandidates(ctx, self.Load(), num)
		},
			autorelay.WithNumRelays(2),
			autorelay.WithMinCandidates(1),
			autorelay.WithBootDelay(5*time.Second),
			autorelay.WithMinInterval(30*time.Second),
		),
	}
}

// relayCandidates offers AutoRelay up to num of the host's connected peers
// (it keeps those that speak the relay protocol). A node's connected peers
// are its DHT neighbours and bootstrap peers: public nodes when the node
// is private, since a private node serves no DHT and is dialled by none.
func relayCandidates(ctx context.Context, hp *host.Host, num int) <-chan peer.AddrInfo {
	ch := make(chan peer.AddrInfo, num)
	defer close(ch)
	if hp == nil {
		return ch
	}
	h := *hp
	for _, p := range h.Network().Peers() {
		if len(ch) == num || ctx.Err() != nil {
			break
		}
		addrs := h.Peerstore().Addrs(p)
		if len(addrs) == 0 {
			continue
		}
		ch <- peer.AddrInfo{ID: p, Addrs: addrs}
	}
	return ch
}
