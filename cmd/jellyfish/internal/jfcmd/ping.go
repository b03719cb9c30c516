package jfcmd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rclone/rclone/fs"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// pingOptions are the flags of `jellyfish ping`.
type pingOptions struct {
	boot      bootstrapFlags
	count     int
	interval  time.Duration
	send      fs.SizeSuffix
	shardSize fs.SizeSuffix
	timeout   time.Duration
}

func init() { commands = append(commands, newPingCommand()) }

func newPingCommand() *cobra.Command {
	o := pingOptions{count: 3, shardSize: 4 << 20}
	c := &cobra.Command{
		Use:   "ping NODE",
		Short: "Reach a node as a client would: the path, round trips and, with --send, a transfer",
		Long: `Joins the network through --bootstrap as a client and reaches NODE, a peer ID
(its addresses are read from its node record) or a multiaddr ending in
/p2p/<peer ID>. It prints how the connection was made: direct, or through a
relay and then hole punched (a node behind a NAT gives relayed addresses;
shard traffic never goes through a relay), then --count round trips, --interval apart.

--send SIZE also puts SIZE of random test shards (--shard-size each) on the
node under a throw-away key with a lease of an hour, reads them back,
checks them and removes them, and prints both rates. A node that admits
only accounts it knows counts them as a starter account's.

The last line sums it up for scripts:
  result: path=direct|hole-punched|relayed connect=S direct=S rtt=S sent=B put=S get=S`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, o.timeout)
			defer cancel()
			return runPing(ctx, cmd.OutOrStdout(), o, args[0])
		}),
	}
	o.boot.register(c)
	c.Flags().IntVar(&o.count, "count", o.count, "round trips to time")
	c.Flags().DurationVar(&o.interval, "interval", 0, "wait this long between round trips")
	c.Flags().Var(&o.send, "send", "put this much of test shards on the node, read them back and remove them (0: none)")
	c.Flags().Var(&o.shardSize, "shard-size", "size of each test shard")
	c.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after this long")
	return c
}

func runPing(ctx context.Context, out io.Writer, o pingOptions, target string) error {
	boot, err := o.boot.parse()
	if err != nil {
		return err
	}
	if len(boot) == 0 {
		return errors.New("no network to join: give --bootstrap or --bootstrap-file")
	}
	if o.send < 0 || o.shardSize <= 0 || int64(o.shardSize) > shardstore.DefaultMaxShardSize {
		return fmt.Errorf("--send must be 0 or more and --shard-size between 1 and %d bytes", shardstore.DefaultMaxShardSize)
	}
	dir, err := os.MkdirTemp("", "jellyfish-ping-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c, err := client.New(ctx, client.Config{DataDir: dir, Bootstrap: boot, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer c.Close()
	info, err := resolveNode(ctx, c, target, out)
	if err != nil {
		return err
	}
	// 40 s: a hole punch takes a few round trips and retries.
	path, err := c.Reach(ctx, info, 40*time.Second)
	if err != nil {
		return err
	}
	switch path.Kind {
	case client.PathDirect:
		fmt.Fprintf(out, "connected directly in %.3f s (%s)\n", path.Connect.Seconds(), path.Remote)
	case client.PathHolePunched:
		if path.Via == "" {
			fmt.Fprintf(out, "connected directly in %.3f s, over the connection an earlier hole punch made (%s)\n", path.Connect.Seconds(), path.Remote)
			break
		}
		fmt.Fprintf(out, "connected through relay %s in %.3f s; hole punched, direct after %.3f s (%s)\n",
			path.Via.ShortString(), path.Connect.Seconds(), path.Direct.Seconds(), path.Remote)
	default:
		fmt.Fprintf(out, "connected through relay %s in %.3f s; no direct connection (the NATs on the way allow no hole punch): shard traffic cannot reach this node\n",
			path.Via.ShortString(), path.Connect.Seconds())
	}
	h := c.Node().Host()
	var rtt time.Duration
	for i := 0; i < o.count; i++ {
		if i > 0 && o.interval > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(o.interval):
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		d, err := node.PingOnce(pctx, h, info.ID)
		cancel()
		if err != nil {
			return fmt.Errorf("ping %s: %w", info.ID.ShortString(), err)
		}
		fmt.Fprintf(out, "round trip %d: %.3f ms\n", i+1, float64(d.Microseconds())/1000)
		if rtt == 0 || d < rtt {
			rtt = d
		}
	}
	var put, get time.Duration
	if o.send > 0 {
		if path.Kind == client.PathRelayed {
			return fmt.Errorf("--send: no direct connection to %s", info.ID.ShortString())
		}
		if put, get, err = sendTestShards(ctx, c, info.ID, int64(o.send), int64(o.shardSize)); err != nil {
			return err
		}
		fmt.Fprintf(out, "put %s in %.3f s (%.1f Mbit/s), read back and checked in %.3f s (%.1f Mbit/s), removed\n",
			o.send, put.Seconds(), rate(int64(o.send), put), get.Seconds(), rate(int64(o.send), get))
	}
	fmt.Fprintf(out, "result: path=%s connect=%.3f direct=%.3f rtt=%.4f sent=%d put=%.3f get=%.3f\n",
		path.Kind, path.Connect.Seconds(), path.Direct.Seconds(), rtt.Seconds(), int64(o.send), put.Seconds(), get.Seconds())
	return nil
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) * 8 / d.Seconds() / 1e6
}

// resolveNode returns the node's ID and addresses: those of a multiaddr
// target, else those of its node record.
func resolveNode(ctx context.Context, c *client.Client, target string, out io.Writer) (peer.AddrInfo, error) {
	if strings.HasPrefix(target, "/") {
		a, err := ma.NewMultiaddr(target)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("node address %q: %w", target, err)
		}
		info, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("node address %q: %w (it must end in /p2p/<peer ID>)", target, err)
		}
		return *info, nil
	}
	id, err := peer.Decode(target)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("node %q is neither a peer ID nor a multiaddr: %w", target, err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ni, rec, err := c.Node().NodeInfo(rctx, id)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("node record of %s: %w", id.ShortString(), err)
	}
	relayed := 0
	for _, a := range ni.Addrs {
		if node.IsRelayed(a) {
			relayed++
		}
	}
	fmt.Fprintf(out, "node record of %s (sequence %d): %d addresses, %d of them through a relay\n", id.ShortString(), rec.Seq, len(ni.Addrs), relayed)
	for _, a := range ni.Addrs {
		fmt.Fprintf(out, "  %s\n", a)
	}
	return peer.AddrInfo{ID: id, Addrs: ni.Addrs}, nil
}

// sendTestShards puts size bytes of random shards of shardSize on the
// node under a fresh key, four at a time, reads each back (the client
// checks its ID while reading) and removes them.
func sendTestShards(ctx context.Context, c *client.Client, holder peer.ID, size, shardSize int64) (put, get time.Duration, err error) {
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return 0, 0, err
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(sk)
	if err != nil {
		return 0, 0, err
	}
	sc, err := c.Shards(key)
	if err != nil {
		return 0, 0, err
	}
	var shards [][]byte
	for left := size; left > 0; left -= shardSize {
		b := make([]byte, min(left, shardSize))
		rand.Read(b)
		shards = append(shards, b)
	}
	ids := make([]codec.ShardID, len(shards))
	for i, b := range shards {
		ids[i] = codec.IDOf(b)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, id := range ids {
			sc.Delete(dctx, holder, id)
		}
	}()
	lease := time.Now().Add(time.Hour)
	each := func(f func(i int) error) (time.Duration, error) {
		start := time.Now()
		var g errgroup.Group
		g.SetLimit(4)
		for i := range shards {
			g.Go(func() error { return f(i) })
		}
		err := g.Wait()
		return time.Since(start), err
	}
	put, err = each(func(i int) error {
		_, err := sc.Put(ctx, holder, ids[i], shards[i], lease)
		return err
	})
	if err != nil {
		return put, 0, fmt.Errorf("put test shards: %w", err)
	}
	get, err = each(func(i int) error {
		r, _, err := sc.Get(ctx, holder, ids[i])
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.Copy(io.Discard, r)
		return err
	})
	if err != nil {
		return put, get, fmt.Errorf("read test shards back: %w", err)
	}
	return put, get, nil
}
