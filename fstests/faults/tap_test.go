package faults_test

import (
	"bytes"
	"context"
	be "encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// tap sees what the providers of a test network receive, as they receive
// it, and lets a test act at an exact point of a child's work: every shard
// put (its header, when it arrives and once it is stored) and every head
// record a node validates (one put to it, the one it holds when it
// compares the two, the ones it republishes). A hook runs in the
// provider's handler, before the child hears back: a child killed there
// has not learnt whether that put succeeded. A head hook runs before the
// node stores the record: the node goes on to store it after the hook,
// whether or not the child still runs, and serves it only once stored.
type tap struct {
	refuse   atomic.Bool // providers refuse every shard put
	mu       sync.Mutex
	onShard  func(shardEvent)
	onHeadAt func(node int, key string) // key: the head record's DHT key
	onHead   func(node int, body []byte)
}

// shardEvent is a shard put seen by a provider.
type shardEvent struct {
	node   int
	header codec.Header
	stored bool // false when it arrives, true once the store holds it
}

// meta reports whether the shard is of a metadata object (log batch,
// checkpoint node, reference stored apart): those are 2+6 in every test
// here, and file contents are not.
func (ev shardEvent) meta() bool { return ev.header.K == 2 && ev.header.M == 6 }

// set installs the hooks; nil ones are ignored.
func (tp *tap) set(onShard func(shardEvent), onHeadAt func(int, string), onHead func(int, []byte)) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.onShard, tp.onHeadAt, tp.onHead = onShard, onHeadAt, onHead
}

func (tp *tap) shard(ev shardEvent) {
	tp.mu.Lock()
	f := tp.onShard
	tp.mu.Unlock()
	if f != nil {
		f(ev)
	}
}

func (tp *tap) headKey(node int, key string) {
	tp.mu.Lock()
	f := tp.onHeadAt
	tp.mu.Unlock()
	if f != nil {
		f(node, key)
	}
}

func (tp *tap) headBody(node int, body []byte) {
	tp.mu.Lock()
	f := tp.onHead
	tp.mu.Unlock()
	if f != nil {
		f(node, body)
	}
}

// tapStore is a provider's shard store that reports every put to a tap.
type tapStore struct {
	*shardstore.Disk
	node int
	tap  *tap
}

// errRefused is what a provider of a tapped network answers to a shard
// put while the test has it refuse them.
var errRefused = errors.New("faults: this provider refuses shard puts for now")

func (s *tapStore) Put(ctx context.Context, owner shardstore.Owner, id codec.ShardID, size int64, r io.Reader, lease time.Time) error {
	if s.tap.refuse.Load() {
		return errRefused
	}
	hdr := make([]byte, codec.HeaderSize)
	n, err := io.ReadFull(r, hdr)
	h, ok := shardHeader(hdr[:n])
	if err == nil && ok {
		s.tap.shard(shardEvent{node: s.node, header: h})
	}
	err = s.Disk.Put(ctx, owner, id, size, io.MultiReader(bytes.NewReader(hdr[:n]), r), lease)
	if err == nil && ok {
		s.tap.shard(shardEvent{node: s.node, header: h, stored: true})
	}
	return err
}

// shardHeader reads the fields of a shard header (design §1.5) from its
// first codec.HeaderSize bytes; codec.ParseHeader wants the whole shard.
func shardHeader(b []byte) (codec.Header, bool) {
	if len(b) < codec.HeaderSize || string(b[:4]) != "JFsh" {
		return codec.Header{}, false
	}
	return codec.Header{
		Version: b[4], K: b[5], M: b[6], Index: b[7],
		Segment:    be.BigEndian.Uint64(b[8:16]),
		CipherLen:  be.BigEndian.Uint32(b[16:20]),
		PayloadLen: be.BigEndian.Uint32(b[20:24]),
	}, true
}

// newTappedEnv is newEnv on a network whose providers report to the
// returned tap.
func newTappedEnv(t *testing.T, n int, extra map[string]string) (*env, *tap) {
	t.Helper()
	tp := &tap{}
	cfg := provider.TestnetConfig{QuotaBytes: 256 << 20}
	cfg.Base.Configure = func(i int, nc *node.Config) {
		kinds := append(nc.RecordKinds[:0:0], nc.RecordKinds...)
		for j := range kinds {
			k := &kinds[j]
			if k.Kind != account.KindHead {
				continue
			}
			auth, check, name := k.Authorize, k.CheckBody, k.Name
			k.Authorize = func(rest string, signer crypto.PubKey) error {
				if err := auth(rest, signer); err != nil {
					return err
				}
				tp.headKey(i, record.KeyFor(name, rest))
				return nil
			}
			k.CheckBody = func(b []byte) error {
				if check != nil {
					if err := check(b); err != nil {
						return err
					}
				}
				tp.headBody(i, b)
				return nil
			}
		}
		nc.RecordKinds = kinds
	}
	net := jftest.StartNetworkConfig(t, n, cfg)
	for _, i := range net.Net.Live() {
		// Registering a service replaces the provider's handler of the
		// shard protocol on the node's host.
		svc, err := shardproto.NewService(net.Net.Node(i).Host(), &tapStore{Disk: net.Fleet.Provider(i).Store(), node: i, tap: tp})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close() })
	}
	return newEnvOn(t, net, extra), tp
}

// killNow ends c with SIGKILL at once, from inside a tap hook: the child
// stops before the reply to what the provider is handling reaches it.
// The caller still waits for it (child.wait).
func killNow(c *child) {
	_ = syscall.Kill(c.cmd.Process.Pid, syscall.SIGKILL)
}
