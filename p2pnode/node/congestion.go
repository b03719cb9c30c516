package node

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/tcpreuse"
	manet "github.com/multiformats/go-multiaddr/net"
)

// DefaultCongestion is the TCP congestion control a host sets on each of
// its TCP connections, dialled and accepted. Loss-based controls (CUBIC,
// Linux's usual default, and QUIC's) read every lost packet as congestion:
// at 0.5 % random loss and an 80 ms round trip one flow carries about
// MSS/RTT × 1.22/√p ≈ 2.4 Mbit/s whatever the link. BBR paces by the
// bandwidth and round trip it measures, so a holder sending a shard over
// such a path fills it.
const DefaultCongestion = "bbr"

// NoCongestion, as HostConfig.Congestion, leaves the system's default.
const NoCongestion = "system"

// congestion sets the TCP congestion control name on connections: an
// upgrader wrapper sees each dialled connection before its handshake and
// each listener before it is gated, whose accepted connections it sets.
type congestion struct {
	name string
	log  *slog.Logger
	// failed is set at the first connection the control could not be
	// set on, which is logged once.
	failed atomic.Bool
}

// newCongestion checks that name can be set in this process (the kernel
// has it, and it is in net.ipv4.tcp_allowed_congestion_control or the
// process may set any) and returns nil with a log line when not, or when
// name is NoCongestion or empty.
func newCongestion(name string, log *slog.Logger) *congestion {
	if name == "" || name == NoCongestion {
		return nil
	}
	if err := trySetCongestion(name); err != nil {
		log.Info("tcp congestion control not set: connections use the system's default",
			"congestion", name, "err", err)
		return nil
	}
	log.Debug("tcp congestion control set on each connection", "congestion", name)
	return &congestion{name: name, log: log}
}

// set sets the control on c, a TCP connection.
func (cc *congestion) set(c manet.Conn) {
	if err := setCongestion(c, cc.name); err != nil && !cc.failed.Swap(true) {
		cc.log.Info("tcp congestion control not set on a connection", "congestion", cc.name, "err", err)
	}
}

// transport is the TCP transport's constructor for libp2p.Transport, with
// the upgrader wrapped.
func (cc *congestion) transport() any {
	return func(up transport.Upgrader, rm network.ResourceManager, shared *tcpreuse.ConnMgr) (*tcp.TcpTransport, error) {
		return tcp.NewTCPTransport(&ccUpgrader{Upgrader: up, cc: cc}, rm, shared)
	}
}

// ccUpgrader is the host's upgrader, setting the congestion control of
// the raw TCP connections it is handed.
type ccUpgrader struct {
	transport.Upgrader
	cc *congestion
}

var _ transport.Upgrader = (*ccUpgrader)(nil)

func (u *ccUpgrader) Upgrade(ctx context.Context, t transport.Transport, c manet.Conn, dir network.Direction, p peer.ID, scope network.ConnManagementScope) (transport.CapableConn, error) {
	u.cc.set(c)
	return u.Upgrader.Upgrade(ctx, t, c, dir, p, scope)
}

func (u *ccUpgrader) GateMaListener(l manet.Listener) transport.GatedMaListener {
	return u.Upgrader.GateMaListener(&ccListener{Listener: l, cc: u.cc})
}

func (u *ccUpgrader) UpgradeListener(t transport.Transport, l manet.Listener) transport.Listener {
	return u.Upgrader.UpgradeGatedMaListener(t, u.GateMaListener(l))
}

// ccListener sets the congestion control of each connection it accepts.
type ccListener struct {
	manet.Listener
	cc *congestion
}

func (l *ccListener) Accept() (manet.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.cc.set(c)
	}
	return c, err
}
