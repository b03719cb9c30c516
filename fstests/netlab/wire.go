package netlab

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A wire is the link between a home host and its router when the kernel
// cannot delay or drop packets itself (no netem): two TUN devices, eth0 in
// the host's namespace and lan in the router's, and this process between
// them, which holds every packet for half the round trip and drops a
// share of them, each direction on its own. Rates are still the kernel's
// (tbf on the TUN devices, as on the veth pair it replaces), so a packet
// waits in the token bucket, then on the wire.
type wire struct {
	host, router *os.File
	delay        time.Duration
	loss         float64
	wg           sync.WaitGroup
}

// tunIn opens a TUN device called name in namespace ns (the device lives
// in the namespace of the thread that makes it).
func tunIn(ns, name string) (f *os.File, err error) {
	err = inNamespace(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err == nil {
			ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
			if err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
				err = fmt.Errorf("TUNSETIFF %s in %s: %w", name, ns, err)
			}
		}
		if err == nil {
			err = unix.SetNonblock(fd, true)
		}
		if err != nil {
			unix.Close(fd)
			return err
		}
		f = os.NewFile(uintptr(fd), name)
		return nil
	})
	return f, err
}

// emulate replaces the veth pair between h and its router by a wire that
// delays each direction by rtt/2 and drops loss percent of packets.
func (h *Host) emulate(rtt time.Duration, loss float64) error {
	if h.Router == "" {
		return fmt.Errorf("netlab: %s is not behind a router", h.Name)
	}
	n := h.routerIndex()
	lanGW := fmt.Sprintf("10.%d.0.1", n)
	// Deleting one end of a veth pair deletes the other.
	if err := run(h.NS, "ip", "link", "del", "eth0"); err != nil {
		return err
	}
	w := &wire{delay: rtt / 2, loss: loss / 100}
	var err error
	if w.host, err = tunIn(h.NS, "eth0"); err != nil {
		return err
	}
	if w.router, err = tunIn(h.Router, "lan"); err != nil {
		w.host.Close()
		return err
	}
	for _, c := range [][]string{
		{h.Router, "ip", "addr", "add", lanGW + "/24", "dev", "lan"},
		{h.Router, "ip", "link", "set", "lan", "up"},
		{h.NS, "ip", "addr", "add", h.IP + "/24", "dev", "eth0"},
		{h.NS, "ip", "link", "set", "eth0", "up"},
		{h.NS, "ip", "route", "add", "default", "via", lanGW},
	} {
		if err := run(c[0], c[1:]...); err != nil {
			w.close()
			return err
		}
	}
	w.wg.Add(2)
	go w.carry(w.host, w.router)
	go w.carry(w.router, w.host)
	h.lab.mu.Lock()
	h.lab.wires = append(h.lab.wires, w)
	h.lab.mu.Unlock()
	return nil
}

// packet is one packet on the wire and when it leaves it.
type packet struct {
	b   []byte
	due time.Time
}

// carry moves packets read from one end to the other, each delay after it
// was read, in order, dropping a share of them. It ends when either end
// is closed.
func (w *wire) carry(from, to *os.File) {
	defer w.wg.Done()
	q := make(chan packet, 1<<16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range q {
			if d := time.Until(p.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := to.Write(p.b); err != nil {
				// The far end is gone (the lab closed): drain and stop.
				for range q {
				}
				return
			}
		}
	}()
	buf := make([]byte, 65536)
	for {
		n, err := from.Read(buf)
		if err != nil {
			break
		}
		if w.loss > 0 && rand.Float64() < w.loss {
			continue
		}
		select {
		case q <- packet{b: append([]byte(nil), buf[:n]...), due: time.Now().Add(w.delay)}:
		default:
			// A full wire drops, as a full queue does.
		}
	}
	close(q)
	<-done
}

func (w *wire) close() {
	if w.host != nil {
		w.host.Close()
	}
	if w.router != nil {
		w.router.Close()
	}
}
