// Package markproto is the Jellyfish high-water mark protocol,
// /jellyfish/mark/1.0.0: one node asks another for the highest sequence
// number it has seen in a valid record at a DHT key.
//
// A node keeps that mark (record.HighWater) long after the record itself
// expired and the DHT stopped serving it: login marks for ever, the
// others until the longest record lifetime plus a margin has passed since
// they were last raised (node.Config.MarkMargin). kad-dht has no message
// that reveals it. Asking for it tells "nobody ever wrote here"
// apart from "a record lived here and expired", which a record lookup
// cannot: both answer "not found". Account creation asks, so that a
// username and password whose account expired are not silently given a
// new identity.
//
// One request per stream. Request: key length u16 (1..record.MaxKeySize),
// key bytes. Answer: status u8 (0 OK, 1 bad key), mark u64, all
// big-endian. The server answers within its deadline, caps the streams it
// serves in total and per peer, and resets the stream on any framing
// error. A mark is an unverified claim of one peer; callers decide how
// many agreeing peers they believe.
package markproto

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/internal/streamcap"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// ID is the protocol ID.
const ID = "/jellyfish/mark/1.0.0"

// ServiceName names the protocol's resource-manager service scope.
const ServiceName = "jellyfish.mark"

// Limits of the service.
const (
	// Timeout bounds one exchange, on both sides.
	Timeout = 10 * time.Second
	// MaxStreams and MaxPeerStreams cap the requests served at once.
	MaxStreams     = 64
	MaxPeerStreams = 4
)

// Answer statuses.
const (
	statusOK     byte = 0
	statusBadKey byte = 1
)

// ErrBadKey: the peer refused the key as malformed.
var ErrBadKey = errors.New("markproto: the peer refused the key")

// Source is where the service reads marks; record.HighWater satisfies it.
type Source interface {
	Seen(key string) (uint64, error)
}

// Service answers mark requests on a host. Create it with NewService and
// stop it with Close.
type Service struct {
	*streamcap.Server
	src Source
}

// NewService registers the protocol on h, answering from src.
func NewService(h host.Host, src Source) *Service {
	s := &Service{src: src}
	s.Server = streamcap.Serve(h, streamcap.Spec{ID: ID, Service: ServiceName, Total: MaxStreams, PerPeer: MaxPeerStreams, Timeout: Timeout}, s.serve)
	return s
}

func (s *Service) serve(st network.Stream) error {
	key, err := readKey(st)
	if err != nil {
		return err
	}
	var ans []byte
	if _, err := record.ParseKey(key); err != nil {
		ans = encodeAnswer(statusBadKey, 0)
	} else {
		mark, err := s.src.Seen(key)
		if err != nil {
			// The store failed; say nothing rather than "never seen".
			return err
		}
		ans = encodeAnswer(statusOK, mark)
	}
	_, err = st.Write(ans)
	return err
}

// answerSize is the size of an answer: status u8, mark u64.
const answerSize = 9

// encodeAnswer lays out an answer.
func encodeAnswer(status byte, mark uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, answerSize), status), mark)
}

// decodeAnswer reads an answer: the mark, ErrBadKey, or an error for a
// status it does not know.
func decodeAnswer(ans [answerSize]byte) (uint64, error) {
	switch ans[0] {
	case statusOK:
		return binary.BigEndian.Uint64(ans[1:]), nil
	case statusBadKey:
		return 0, ErrBadKey
	}
	return 0, fmt.Errorf("unknown status %d", ans[0])
}

// encodeRequest lays out a request: key length u16, key bytes.
func encodeRequest(key string) []byte {
	req := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(key)), uint16(len(key)))
	return append(req, key...)
}

// readKey reads a length-prefixed key of at most record.MaxKeySize bytes.
func readKey(r io.Reader) (string, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", err
	}
	size := binary.BigEndian.Uint16(n[:])
	if size == 0 || int(size) > record.MaxKeySize {
		return "", fmt.Errorf("markproto: key of %d bytes", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// Query asks peer p for its mark of key, within Timeout.
func Query(ctx context.Context, h host.Host, p peer.ID, key string) (uint64, error) {
	if len(key) == 0 || len(key) > record.MaxKeySize {
		return 0, fmt.Errorf("markproto: key of %d bytes", len(key))
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	st, err := h.NewStream(ctx, p, ID)
	if err != nil {
		return 0, fmt.Errorf("markproto: %s: %w", p, err)
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	if _, err := st.Write(encodeRequest(key)); err != nil {
		st.Reset()
		return 0, fmt.Errorf("markproto: %s: %w", p, err)
	}
	if err := st.CloseWrite(); err != nil {
		st.Reset()
		return 0, fmt.Errorf("markproto: %s: %w", p, err)
	}
	var ans [answerSize]byte
	if _, err := io.ReadFull(st, ans[:]); err != nil {
		st.Reset()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return 0, fmt.Errorf("markproto: %s: %w", p, err)
	}
	mark, err := decodeAnswer(ans)
	if err != nil {
		return 0, fmt.Errorf("markproto: %s: %w", p, err)
	}
	return mark, nil
}

// SetServiceLimits declares the service's resource-manager limits in cfg,
// before cfg.AutoScale: twice the service's own stream caps, so its
// admission is the one that refuses, and 4 KiB of memory a stream (a
// request is at most 258 bytes, an answer 9).
func SetServiceLimits(cfg *rcmgr.ScalingLimitConfig) {
	streamcap.SetLimits(cfg, ServiceName, MaxStreams, MaxPeerStreams, 4<<10)
}
