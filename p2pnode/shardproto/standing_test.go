package shardproto

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

func sampleStanding() AccountStanding {
	until := time.Date(2031, 5, 6, 0, 0, 0, 0, time.UTC)
	return AccountStanding{Class: "sharing", Earned: 3 << 30, Cap: 768 << 20, Nodes: []NodeStanding{
		{ID: peer.ID("node-one"), Watched: true, State: "good", KnownEpochs: 30, Uptime: 0.9731, AuditsPassed: 58, AuditsFailed: 1, Held: 5 << 30, Credit: 3 << 30},
		{ID: peer.ID("node-two"), Watched: true, State: "malicious", KnownEpochs: 12, Uptime: 0.5, AuditsPassed: 20, AuditsFailed: 3, Strikes: 3, Until: until},
		{ID: peer.ID("node-three"), State: "unknown"},
	}}
}

// A standing answer encodes and decodes to itself, in version 2 and in
// version 1 (without held bytes and credit); every prefix, trailing bytes,
// another version and each bound broken are refused.
func TestStandingEncoding(t *testing.T) {
	a := sampleStanding()
	b, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalAccountStanding(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := got.Marshal()
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("re-encoded differently: %v", err)
	}
	if got.Class != a.Class || got.Earned != a.Earned || got.Cap != a.Cap || !got.Until.IsZero() || len(got.Nodes) != 3 {
		t.Fatalf("decoded %+v", got)
	}
	if n := got.Nodes[1]; n.ID != "node-two" || !n.Watched || n.State != "malicious" || n.Strikes != 3 || !n.Until.Equal(a.Nodes[1].Until) || n.Uptime != 0.5 {
		t.Fatalf("node %+v", n)
	}
	if got.Nodes[0].Uptime != 0.9731 || got.Nodes[2].Watched || got.Nodes[0].Held != 5<<30 || got.Nodes[0].Credit != 3<<30 {
		t.Fatalf("nodes %+v", got.Nodes)
	}
	b1, err := a.MarshalVersion(1)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := UnmarshalAccountStanding(b1)
	if err != nil || len(b1) != len(b)-16*len(a.Nodes) || v1.Nodes[0].Held != 0 || v1.Nodes[0].Credit != 0 || v1.Nodes[0].Uptime != 0.9731 {
		t.Fatalf("version 1: %d bytes (version 2: %d), %+v, %v", len(b1), len(b), v1, err)
	}
	if _, err := a.MarshalVersion(3); err == nil {
		t.Fatal("version 3 encoded")
	}
	for i := range b {
		if _, err := UnmarshalAccountStanding(b[:i]); err == nil {
			t.Fatalf("a prefix of %d bytes decoded", i)
		}
	}
	if _, err := UnmarshalAccountStanding(append(b, 0)); err == nil {
		t.Fatal("trailing bytes decoded")
	}
	for _, v := range []byte{0, 3} {
		other := bytes.Clone(b)
		other[4] = v
		if _, err := UnmarshalAccountStanding(other); err == nil {
			t.Fatalf("version %d decoded", v)
		}
	}
	// A version 1 answer read as version 2 is short; the reverse long.
	mixed := bytes.Clone(b1)
	mixed[4] = 2
	if _, err := UnmarshalAccountStanding(mixed); err == nil {
		t.Fatal("a version 1 body decoded as version 2")
	}
	for name, mod := range map[string]func(*AccountStanding){
		"no class":       func(a *AccountStanding) { a.Class = "" },
		"long class":     func(a *AccountStanding) { a.Class = strings.Repeat("x", 17) },
		"negative cap":   func(a *AccountStanding) { a.Cap = -1 },
		"too many nodes": func(a *AccountStanding) { a.Nodes = make([]NodeStanding, MaxStandingNodes+1) },
		"uptime over 1":  func(a *AccountStanding) { a.Nodes[0].Uptime = 1.5 },
		"empty node ID":  func(a *AccountStanding) { a.Nodes[0].ID = "" },
		"no state":       func(a *AccountStanding) { a.Nodes[0].State = "" },
		"300 epochs":     func(a *AccountStanding) { a.Nodes[0].KnownEpochs = 300 },
		"negative held":  func(a *AccountStanding) { a.Nodes[0].Held = -1 },
	} {
		a := sampleStanding()
		mod(&a)
		if _, err := a.Marshal(); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	// A flag byte other than 0 or 1 is refused.
	i := bytes.Index(b, []byte("node-one")) + len("node-one")
	bad := bytes.Clone(b)
	bad[i] = 2
	if _, err := UnmarshalAccountStanding(bad); !errors.Is(err, errFrame) {
		t.Fatalf("watched flag 2: %v", err)
	}
}

func FuzzUnmarshalAccountStanding(f *testing.F) {
	b, _ := sampleStanding().Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := UnmarshalAccountStanding(b)
		if err != nil {
			return
		}
		out, err := a.Marshal()
		if err != nil {
			t.Fatalf("decoded but does not encode: %v", err)
		}
		a2, err := UnmarshalAccountStanding(out)
		if err != nil {
			t.Fatal(err)
		}
		out2, _ := a2.Marshal()
		if !bytes.Equal(out, out2) {
			t.Fatal("not stable")
		}
	})
}

// TestStandingVersions: a client asks for answer version 2 and gets the
// nodes' held bytes and credit; a request without the version byte, as
// clients before version 2 send it, gets version 1.
func TestStandingVersions(t *testing.T) {
	e := newEnv(t, nil, WithStanding(func(context.Context, peer.ID) AccountStanding { return sampleStanding() }))
	ctx := ctxT(t)
	a, err := e.client.Standing(ctx, e.holder.ID())
	if err != nil || a.Nodes[0].Held != 5<<30 || a.Nodes[0].Credit != 3<<30 {
		t.Fatalf("version 2: %+v, %v", a, err)
	}
	cl, resp, err := e.client.roundTrip(ctx, e.holder.ID(), e.client.standingRequest(t, e.holder.ID(), 0))
	if err != nil {
		t.Fatal(err)
	}
	cl.finish(nil)
	if !bytes.HasPrefix(resp.blob, []byte(standingMagic)) {
		t.Fatalf("a request without the version byte got %q…", resp.blob[:5])
	}
}

// standingRequest is a signed standing request to p asking for version v
// (0: without the byte).
func (c *Client) standingRequest(t *testing.T, p peer.ID, v byte) *request {
	t.Helper()
	ts := c.cfg.clock()
	sig, err := c.key.Sign(standingSigned(p, ts))
	if err != nil {
		t.Fatal(err)
	}
	return &request{typ: msgStanding, ts: ts, key: c.keyBytes, sig: sig, standingVersion: v}
}

// TestStandingFromAnEarlierHolder: a holder that knows only answer version
// 1 cannot decode a request with the version byte and resets it, as it
// resets any request it cannot decode (the holder here resets exactly
// those, before its service sees them); Standing then asks without the
// byte and gets version 1, with no held bytes or credit.
func TestStandingFromAnEarlierHolder(t *testing.T) {
	e := newEnv(t, nil, WithStanding(func(context.Context, peer.ID) AccountStanding { return sampleStanding() }))
	var resets atomic.Int64
	e.holder.SetStreamHandler(ID, func(st network.Stream) {
		head := make([]byte, 4) // the frame's length
		if _, err := io.ReadFull(st, head); err != nil {
			st.Reset()
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(head))
		if _, err := io.ReadFull(st, body); err != nil {
			st.Reset()
			return
		}
		if req, err := decodeRequest(body); err == nil && req.typ == msgStanding && req.standingVersion != 0 {
			resets.Add(1)
			st.Reset()
			return
		}
		e.svc.handle(&peekedStream{Stream: st, r: io.MultiReader(bytes.NewReader(head), bytes.NewReader(body), st)})
	})
	a, err := e.client.Standing(ctxT(t), e.holder.ID())
	if err != nil || resets.Load() != 1 || a.Class != "sharing" || a.Nodes[0].Uptime != 0.9731 || a.Nodes[0].Held != 0 || a.Nodes[0].Credit != 0 {
		t.Fatalf("standing from an earlier holder: %+v, %v (%d resets)", a, err, resets.Load())
	}
}
