// Package timeproto is the Jellyfish clock protocol, /jellyfish/time/1.0.0:
// one node asks another what time its Jellyfish clock reads, so that a
// process whose own clock is wrong can correct it by the median of its
// peers' (Estimate) instead of failing every signed request.
//
// Jellyfish signs requests and records with a timestamp that must lie
// within minutes of the verifier's clock; a laptop whose clock is five
// minutes off would have every put refused, one days off would have its
// records refused as from the future. NTP is not always there (or is
// wrong, on a machine that slept); the network is.
//
// One request per stream: the asker sends nothing and closes its side;
// the answer is the peer's time in Unix nanoseconds, i64 big-endian. The
// server answers within Timeout and caps the streams it serves in total
// and per peer. A time is one peer's unverified claim: Estimate takes the
// median of several, so a minority of liars moves nothing.
package timeproto

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/internal/streamcap"
)

// ID is the protocol ID.
const ID = "/jellyfish/time/1.0.0"

// ServiceName names the protocol's resource-manager service scope.
const ServiceName = "jellyfish.time"

// Limits of the service and of estimates.
const (
	// Timeout bounds one exchange, on both sides.
	Timeout = 5 * time.Second
	// MaxStreams and MaxPeerStreams cap the requests served at once.
	MaxStreams     = 32
	MaxPeerStreams = 2
	// MinSamples is the fewest peers an estimate believes.
	MinSamples = 3
	// MaxRTT drops samples whose round trip took longer: the answer's
	// age is uncertain by up to half of it.
	MaxRTT = 2 * time.Second
)

// Service answers time requests on a host from a clock.
type Service struct {
	*streamcap.Server
	clock func() time.Time
}

// NewService registers the protocol on h, answering from clock.
func NewService(h host.Host, clock func() time.Time) *Service {
	if clock == nil {
		clock = time.Now
	}
	s := &Service{clock: clock}
	s.Server = streamcap.Serve(h, streamcap.Spec{ID: ID, Service: ServiceName, Total: MaxStreams, PerPeer: MaxPeerStreams, Timeout: Timeout}, s.serve)
	return s
}

func (s *Service) serve(st network.Stream) error {
	// The request is empty: anything before the asker's end of stream
	// is a protocol error.
	var one [1]byte
	if n, err := st.Read(one[:]); n != 0 || err != io.EOF {
		return fmt.Errorf("timeproto: request of %d bytes (%v)", n, err)
	}
	_, err := st.Write(encodeAnswer(s.clock()))
	return err
}

// answerSize is the size of an answer: a time in Unix nanoseconds, i64.
const answerSize = 8

// encodeAnswer lays out an answer: t in Unix nanoseconds, i64 big-endian.
func encodeAnswer(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, answerSize), uint64(t.UnixNano()))
}

// decodeAnswer reads an answer. Every value is a time: whether to believe
// it is Estimate's business.
func decodeAnswer(b [answerSize]byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:])))
}

// Sample is one peer's answer: its time, and the local time halfway
// through the round trip, when the answer was most likely made.
type Sample struct {
	Peer   peer.ID
	Theirs time.Time
	Mid    time.Time
	RTT    time.Duration
}

// Offset is how far the peer's clock is ahead of the local one.
func (s Sample) Offset() time.Duration { return s.Theirs.Sub(s.Mid) }

// Query asks peer p for its time. local is the clock being corrected.
func Query(ctx context.Context, h host.Host, p peer.ID, local func() time.Time) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	st, err := h.NewStream(ctx, p, ID)
	if err != nil {
		return Sample{}, fmt.Errorf("timeproto: %s: %w", p, err)
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	// Time the exchange on the monotonic clock; place it on the local one.
	start := time.Now()
	if err := st.CloseWrite(); err != nil {
		st.Reset()
		return Sample{}, fmt.Errorf("timeproto: %s: %w", p, err)
	}
	var ans [answerSize]byte
	if _, err := io.ReadFull(st, ans[:]); err != nil {
		st.Reset()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return Sample{}, fmt.Errorf("timeproto: %s: %w", p, err)
	}
	rtt := time.Since(start)
	mid := local().Add(-rtt / 2)
	return Sample{Peer: p, Theirs: decodeAnswer(ans), Mid: mid, RTT: rtt}, nil
}

// ErrTooFewPeers: fewer than MinSamples peers answered.
var ErrTooFewPeers = errors.New("timeproto: too few peers answered to estimate the clock's offset")

// Estimate asks peers (at most max of them, at once) for their time and
// returns the median offset of their clocks from local, with the samples
// it used. Answers slower than MaxRTT are dropped. It fails with
// ErrTooFewPeers when fewer than MinSamples answered.
func Estimate(ctx context.Context, h host.Host, peers []peer.ID, max int, local func() time.Time) (time.Duration, []Sample, error) {
	if len(peers) > max {
		peers = peers[:max]
	}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		samples []Sample
	)
	for _, p := range peers {
		if p == h.ID() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Query(ctx, h, p, local)
			if err != nil || s.RTT > MaxRTT {
				return
			}
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(samples) < MinSamples {
		return 0, samples, fmt.Errorf("%w (%d of %d)", ErrTooFewPeers, len(samples), len(peers))
	}
	return Median(samples), samples, nil
}

// Median returns the median offset of samples (the mean of the two middle
// ones for an even count); 0 for none.
func Median(samples []Sample) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	offs := make([]time.Duration, len(samples))
	for i, s := range samples {
		offs[i] = s.Offset()
	}
	slices.Sort(offs)
	n := len(offs)
	if n%2 == 1 {
		return offs[n/2]
	}
	// The two middle offsets may be further apart than a Duration holds
	// (peers' times are anything); their distance fits in a uint64.
	lo, hi := offs[n/2-1], offs[n/2]
	return lo + time.Duration(uint64(hi-lo)/2)
}

// SetServiceLimits declares the service's resource-manager limits in cfg,
// before cfg.AutoScale: twice its own stream caps, so its admission is
// the one that refuses, and 1 KiB of memory a stream.
func SetServiceLimits(cfg *rcmgr.ScalingLimitConfig) {
	streamcap.SetLimits(cfg, ServiceName, MaxStreams, MaxPeerStreams, 1<<10)
}
