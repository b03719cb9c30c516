package netlab_test

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/fstests/netlab"
)

// TestLinkRoundTrip: a home host's link shaped to an 80 ms round trip
// (netem where the kernel has it, else the lab's own wire) delays a TCP
// echo by that much, and no more than a few milliseconds beyond; an
// unshaped home host answers in well under it.
func TestLinkRoundTrip(t *testing.T) {
	lab := netlab.New(t)
	pub := lab.Public("echo")
	slow := lab.Home("far", netlab.PortRestricted)
	near := lab.Home("near", netlab.PortRestricted)
	if !slow.Shape(netlab.Link{Up: 50_000_000, Down: 50_000_000, RTT: 80 * time.Millisecond}) {
		t.Fatal("the link was not given its round trip")
	}
	l, err := pub.Listen(pub.IP + ":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	rtts := func(h *netlab.Host) time.Duration {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := h.Dial(ctx, pub.IP+":7000")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var got []time.Duration
		b := []byte{1}
		for range 7 {
			start := time.Now()
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, b); err != nil {
				t.Fatal(err)
			}
			got = append(got, time.Since(start))
		}
		slices.Sort(got)
		t.Logf("%s: round trips %v", h.Name, got)
		return got[len(got)/2]
	}
	if m := rtts(slow); m < 80*time.Millisecond || m > 100*time.Millisecond {
		t.Fatalf("median round trip over an 80 ms link: %v", m)
	}
	if m := rtts(near); m > 20*time.Millisecond {
		t.Fatalf("median round trip over an unshaped link: %v", m)
	}
}
