package jfcmd

import (
	"context"
	"encoding/binary"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/spf13/cobra"
)

// BenchRawProtocol is the raw-stream sink `jellyfish testnet --bench-raw`
// serves on every node: the client writes any number of bytes and closes
// its side; the node discards them and answers with the count as 8 bytes,
// big-endian. It measures what one libp2p stream carries with the node's
// own transports, the ceiling the shard protocol is compared against.
const BenchRawProtocol protocol.ID = "/jellyfish/bench/raw/1.0.0"

// benchRawTimeout bounds one sink stream.
const benchRawTimeout = 5 * time.Minute

func init() {
	testnetReadyHooks = append(testnetReadyHooks, startBenchRawSinks)
}

// addBenchRawFlag registers the hidden --bench-raw flag of testnet.
func addBenchRawFlag(c *cobra.Command, v *bool) {
	c.Flags().BoolVar(v, "bench-raw", false, "BENCHMARKS ONLY: serve "+string(BenchRawProtocol)+" (a byte sink) on every node")
	_ = c.Flags().MarkHidden("bench-raw")
}

// startBenchRawSinks registers the sink on every node when --bench-raw is
// set. The handlers go away with the nodes' hosts.
func startBenchRawSinks(_ context.Context, r *TestnetReady) error {
	if !r.BenchRaw || r.Network == nil {
		return nil
	}
	for i := range r.Network.Len() {
		r.Network.Node(i).Host().SetStreamHandler(BenchRawProtocol, handleBenchRaw)
	}
	return nil
}

// handleBenchRaw discards what the stream carries and answers the count.
func handleBenchRaw(s network.Stream) {
	_ = s.SetDeadline(time.Now().Add(benchRawTimeout))
	// A plain read loop: io.Copy to io.Discard would read 8 KiB at a time.
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, err := s.Read(buf)
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			_ = s.Reset()
			return
		}
	}
	var ack [8]byte
	binary.BigEndian.PutUint64(ack[:], uint64(n))
	if _, err := s.Write(ack[:]); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}
