package node

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/sys/unix"
)

// TestCongestionPerConnection starts two real hosts over TCP on loopback
// and reads, from the process's own sockets, the congestion control of
// both ends of the connection between them: the one dialled and the one
// accepted. The control asked for is one that is not the system's
// default, so a host that set nothing would fail.
func TestCongestionPerConnection(t *testing.T) {
	def, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	if err != nil {
		t.Skipf("no TCP congestion control to read: %v", err)
	}
	want := "reno"
	if strings.TrimSpace(string(def)) == want {
		want = "cubic"
	}
	if err := trySetCongestion(want); err != nil {
		t.Skipf("this process may not set %s (the system default is %s): %v", want, def, err)
	}
	a, b := ccHost(t, want), ccHost(t, want)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	for side, cc := range connEnds(t, a, b) {
		if cc != want {
			t.Errorf("%s end: congestion control %q, want %q (system default %s)", side, cc, want, strings.TrimSpace(string(def)))
		}
	}

	// NoCongestion leaves the system's default.
	c := ccHost(t, NoCongestion)
	if err := c.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
		t.Fatal(err)
	}
	ends := connEnds(t, c, a)
	if cc := ends["dialled"]; cc != strings.TrimSpace(string(def)) {
		t.Errorf("host with NoCongestion, dialled end: %q, want the default %s", cc, def)
	}
	if cc := ends["accepted"]; cc != want {
		t.Errorf("accepting host with %s: %q", want, cc)
	}
}

// TestCongestionRefusedIsLogged: a control the kernel does not have
// leaves the default and says so once, and the host still works.
func TestCongestionRefusedIsLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if cc := newCongestion("no-such-control", log); cc != nil {
		t.Fatal("an unknown control was accepted")
	}
	if !strings.Contains(buf.String(), "tcp congestion control not set") || !strings.Contains(buf.String(), "no-such-control") {
		t.Fatalf("log: %q", buf.String())
	}
	if cc := newCongestion(NoCongestion, log); cc != nil {
		t.Fatal("NoCongestion set a control")
	}
}

func ccHost(t *testing.T, cc string) host.Host {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHost(priv, HostConfig{
		ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		Congestion:  cc,
		ConnLow:     10, ConnHigh: 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// connEnds returns the congestion control of both sockets of the TCP
// connection from a to b, found among this process's file descriptors by
// the connection's exact addresses: "dialled" is a's, "accepted" b's.
func connEnds(t *testing.T, a, b host.Host) map[string]string {
	t.Helper()
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) != 1 {
		t.Fatalf("%d connections, want 1", len(conns))
	}
	la, err := manet.ToNetAddr(conns[0].LocalMultiaddr())
	if err != nil {
		t.Fatal(err)
	}
	ra, err := manet.ToNetAddr(conns[0].RemoteMultiaddr())
	if err != nil {
		t.Fatal(err)
	}
	lp, rp := la.(*net.TCPAddr).Port, ra.(*net.TCPAddr).Port
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || !strings.HasPrefix(target, "socket:") {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_STREAM {
			continue
		}
		local, err1 := unix.Getsockname(fd)
		remote, err2 := unix.Getpeername(fd)
		l4, ok1 := local.(*unix.SockaddrInet4)
		r4, ok2 := remote.(*unix.SockaddrInet4)
		if err1 != nil || err2 != nil || !ok1 || !ok2 {
			continue
		}
		var side string
		switch {
		case l4.Port == lp && r4.Port == rp:
			side = "dialled"
		case l4.Port == rp && r4.Port == lp:
			side = "accepted"
		default:
			continue
		}
		cc, err := unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION)
		if err != nil {
			t.Fatal(err)
		}
		out[side] = strings.TrimRight(cc, "\x00")
	}
	if len(out) != 2 {
		t.Fatalf("found %v of the connection %d→%d, want both ends", out, lp, rp)
	}
	return out
}
