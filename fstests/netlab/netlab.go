// Package netlab builds networks of separate hosts on one Linux machine for
// tests: each host is a network namespace, "the internet" is a bridge in a
// namespace of its own, and a home host sits behind a router namespace that
// translates its addresses as home routers do (iptables MASQUERADE). Hosts
// run real jellyfish processes; nothing is simulated above the kernel's
// network stack.
//
// A lab needs root, the ip command and iptables. New skips the test, saying
// what is missing, where it cannot build one. A jellyfish mount on a host
// (StartMount) also needs FUSE (FUSE says whether there is) and nsenter.
//
// Addresses: the internet is 11.0.0.0/16 (public addresses to libp2p and
// AutoNAT, so that nodes on it count as publicly reachable; the namespaces
// are not connected to the machine's own network, so nothing leaves it).
// Public hosts are 11.0.0.N, routers' outside interfaces 11.0.1.N, and the
// home host behind router N is 10.N.0.2 with the router at 10.N.0.1.
package netlab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// NAT is how a router translates its home host's connections.
type NAT int

const (
	// PortRestricted is Linux's MASQUERADE: a connection keeps its
	// source port where it can, and only the peer it went to may answer
	// (a port-restricted cone, the common home router).
	PortRestricted NAT = iota
	// Symmetric is MASQUERADE --random-fully: every connection gets a
	// random source port, so no address seen by one peer works for
	// another (carrier-grade NATs and some routers).
	Symmetric
)

// Lab is a set of namespaces made for one test and removed by its cleanup.
type Lab struct {
	t      testing.TB
	prefix string // namespace and interface name prefix, unique per lab

	mu      sync.Mutex
	nss     []string // created namespaces, removed in reverse order
	wires   []*wire  // links this process carries (no netem), closed first
	public  int      // public hosts made
	routers int      // routers made
}

// New makes a lab with its internet namespace, or skips t if this machine
// cannot.
func New(t testing.TB) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netlab: network namespaces need root")
	}
	for _, cmd := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Skipf("netlab: %s is not installed (apt-get install iproute2 iptables)", cmd)
		}
	}
	var b [3]byte
	rand.Read(b[:])
	l := &Lab{t: t, prefix: "jf" + hex.EncodeToString(b[:])}
	t.Cleanup(l.close)
	if err := l.addNS(l.ns("net")); err != nil {
		t.Skipf("netlab: cannot make network namespaces here: %v", err)
	}
	l.must(l.ns("net"), "ip", "link", "add", "br0", "type", "bridge")
	l.must(l.ns("net"), "ip", "link", "set", "br0", "up")
	return l
}

// ns is the name of the lab's namespace called name.
func (l *Lab) ns(name string) string { return l.prefix + "-" + name }

func (l *Lab) addNS(ns string) error {
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("lo up in %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
	// A new namespace takes the machine's TCP congestion control, which
	// may be one a user's machine does not have (this one's is BBR). The
	// lab's hosts use a loss-based one, as most systems do: CUBIC, or Reno
	// where CUBIC is not in net.ipv4.tcp_allowed_congestion_control (only
	// allowed controls may be a namespace's default). Any other control a
	// flow uses is then one Jellyfish set on its own sockets.
	var ccErr error
	for _, cc := range []string{"cubic", "reno"} {
		out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.tcp_congestion_control="+cc).CombinedOutput()
		if err == nil {
			ccErr = nil
			break
		}
		ccErr = errors.Join(ccErr, fmt.Errorf("%s in %s: %v: %s", cc, ns, err, bytes.TrimSpace(out)))
	}
	if ccErr != nil {
		return ccErr
	}
	return nil
}

func (l *Lab) close() {
	l.mu.Lock()
	nss, wires := l.nss, l.wires
	l.nss, l.wires = nil, nil
	l.mu.Unlock()
	for _, w := range wires {
		w.close()
		w.wg.Wait()
	}
	for i := len(nss) - 1; i >= 0; i-- {
		// Deleting a namespace deletes its interfaces, and with them the
		// other ends of their veth pairs.
		if out, err := exec.Command("ip", "netns", "del", nss[i]).CombinedOutput(); err != nil {
			l.t.Logf("netlab: ip netns del %s: %v: %s", nss[i], err, bytes.TrimSpace(out))
		}
	}
}

// run runs a command, in namespace ns unless ns is "".
func run(ns string, args ...string) error {
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (l *Lab) must(ns string, args ...string) {
	l.t.Helper()
	if err := run(ns, args...); err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
}

// plug connects namespace ns to the internet bridge by a veth pair whose
// end in ns is called ifname and has address cidr.
func (l *Lab) plug(ns, ifname, cidr string) (outer string) {
	l.t.Helper()
	outer = fmt.Sprintf("%s%d", l.prefix, l.nextLink())
	l.must("", "ip", "link", "add", outer, "netns", l.ns("net"), "type", "veth", "peer", "name", ifname, "netns", ns)
	l.must(l.ns("net"), "ip", "link", "set", outer, "master", "br0", "up")
	l.must(ns, "ip", "addr", "add", cidr, "dev", ifname)
	l.must(ns, "ip", "link", "set", ifname, "up")
	return outer
}

var links struct {
	sync.Mutex
	n int
}

func (l *Lab) nextLink() int {
	links.Lock()
	defer links.Unlock()
	links.n++
	return links.n
}

// Host is one machine of the lab.
type Host struct {
	lab  *Lab
	Name string
	// NS is the host's network namespace.
	NS string
	// IP is the host's own address; PublicIP the address the internet
	// sees it at (its router's, behind a NAT).
	IP, PublicIP string
	// Router is the namespace of the host's router, "" for a public host.
	Router string
	outer  string // a public host's veth end on the internet bridge
}

// Public adds a host on the internet.
func (l *Lab) Public(name string) *Host {
	l.t.Helper()
	l.mu.Lock()
	l.public++
	n := l.public
	l.mu.Unlock()
	h := &Host{lab: l, Name: name, NS: l.ns(name), IP: fmt.Sprintf("11.0.0.%d", n)}
	h.PublicIP = h.IP
	if err := l.addNS(h.NS); err != nil {
		l.t.Fatal(err)
	}
	h.outer = l.plug(h.NS, "eth0", h.IP+"/16")
	return h
}

// Home adds a host behind a router of its own that translates its
// connections as nat says.
func (l *Lab) Home(name string, nat NAT) *Host {
	l.t.Helper()
	l.mu.Lock()
	l.routers++
	n := l.routers
	l.mu.Unlock()
	h := &Host{lab: l, Name: name, NS: l.ns(name), Router: l.ns(name + "-gw"),
		IP: fmt.Sprintf("10.%d.0.2", n), PublicIP: fmt.Sprintf("11.0.1.%d", n)}
	for _, ns := range []string{h.Router, h.NS} {
		if err := l.addNS(ns); err != nil {
			l.t.Fatal(err)
		}
	}
	l.plug(h.Router, "wan", h.PublicIP+"/16")
	lanGW := fmt.Sprintf("10.%d.0.1", n)
	l.must("", "ip", "link", "add", "lan", "netns", h.Router, "type", "veth", "peer", "name", "eth0", "netns", h.NS)
	l.must(h.Router, "ip", "addr", "add", lanGW+"/24", "dev", "lan")
	l.must(h.Router, "ip", "link", "set", "lan", "up")
	l.must(h.NS, "ip", "addr", "add", h.IP+"/24", "dev", "eth0")
	l.must(h.NS, "ip", "link", "set", "eth0", "up")
	l.must(h.NS, "ip", "route", "add", "default", "via", lanGW)
	l.must(h.Router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	masq := []string{"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
	if nat == Symmetric {
		masq = append(masq, "--random-fully")
	}
	l.must(h.Router, masq...)
	// Nothing from outside reaches the home network unless it answers a
	// connection from inside, or a port is forwarded.
	l.must(h.Router, "iptables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	l.must(h.Router, "iptables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT")
	l.must(h.Router, "iptables", "-A", "FORWARD", "-i", "wan", "-j", "DROP")
	// Nor the router itself, silently, as home routers do: a router that
	// answered an unsolicited packet (a reset, a port unreachable) would
	// kill the first packets of a hole punch, and one that accepted it
	// would keep a connection-tracking entry for it that makes the NAT
	// give the home host's own packets to that peer another port.
	l.must(h.Router, "iptables", "-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	l.must(h.Router, "iptables", "-A", "INPUT", "-i", "wan", "-j", "DROP")
	return h
}

// Forward makes the host's router forward port (TCP and UDP) on its outside
// address to the same port of the host, as a user does for a node.
func (h *Host) Forward(port int) {
	h.lab.t.Helper()
	if h.Router == "" {
		h.lab.t.Fatalf("netlab: %s has no router", h.Name)
	}
	for _, proto := range []string{"tcp", "udp"} {
		h.lab.must(h.Router, "iptables", "-t", "nat", "-A", "PREROUTING", "-i", "wan", "-p", proto,
			"--dport", fmt.Sprint(port), "-j", "DNAT", "--to-destination", fmt.Sprintf("%s:%d", h.IP, port))
	}
}

// Command returns a command that runs in the host's namespace.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Link is how a host's connection to the internet is shaped: rates in
// bit/s (0: unshaped), the round-trip time added (half each way) and the
// packet loss each way, in percent.
type Link struct {
	Up, Down int64
	RTT      time.Duration
	Loss     float64
}

// Shape shapes the host's link: its uplink on its own interface, its
// downlink on the interface facing it (its router's, or the internet
// bridge's port). The rate is a token bucket (tbf) with a queue of 100 ms;
// delay and loss are netem's, below which the bucket sits. Kernels built
// without netem (as some virtual machines' are) cannot add delay or loss:
// for a home host Shape then joins it to its router by a wire of this
// process's (TUN devices; see wire) that delays and drops, below the same
// token buckets; for a public host it shapes the rate only, logs that, and
// reports false.
func (h *Host) Shape(l Link) (full bool) {
	h.lab.t.Helper()
	far, farNS := h.farEnd()
	full = true
	wired := false
	shape := func(ns, dev string, rate int64) {
		parent := []string{"root"}
		if (l.RTT > 0 || l.Loss > 0) && !wired {
			args := []string{"tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "netem",
				"delay", fmt.Sprintf("%dus", (l.RTT / 2).Microseconds()), "limit", "100000"}
			if l.Loss > 0 {
				args = append(args, "loss", fmt.Sprintf("%g%%", l.Loss))
			}
			switch err := run(ns, args...); {
			case err == nil:
				parent = []string{"parent", "1:1"}
			case h.Router != "" && ns == h.NS:
				if werr := h.emulate(l.RTT, l.Loss); werr != nil {
					h.lab.t.Fatalf("netlab: no netem (%v), and no wire of our own: %v", err, werr)
				}
				wired = true
				h.lab.t.Logf("netlab: no netem here; %s's link to its router is a wire of this process: %v round trip, %g%% loss each way", h.Name, l.RTT, l.Loss)
			default:
				if full {
					h.lab.t.Logf("netlab: no delay or loss on %s's link (this kernel has no netem?): %v", h.Name, err)
				}
				full = false
			}
		}
		if rate > 0 {
			// A burst of a few milliseconds at the rate (at least 16 KiB).
			burst := max(rate/8/250, 16<<10)
			args := append([]string{"tc", "qdisc", "add", "dev", dev}, parent...)
			args = append(args, "handle", "10:", "tbf", "rate", fmt.Sprintf("%dbit", rate),
				"burst", fmt.Sprint(burst), "latency", "100ms")
			h.lab.must(ns, args...)
		}
	}
	shape(h.NS, "eth0", l.Up)
	shape(farNS, far, l.Down)
	return full
}

// routerIndex is N of the home host's addresses 10.N.0.2.
func (h *Host) routerIndex() int {
	var n int
	fmt.Sscanf(h.IP, "10.%d.0.2", &n)
	return n
}

// farEnd returns the interface at the other end of the host's link, and
// its namespace.
func (h *Host) farEnd() (dev, ns string) {
	if h.Router != "" {
		return "lan", h.Router
	}
	return h.outer, h.lab.ns("net")
}
