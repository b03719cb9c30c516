package jfcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rclone/rclone/fs"
	"github.com/spf13/cobra"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/caretaker"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/nodestatus"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/timeproto"
)

// Defaults of `jellyfish node`.
const (
	defaultNodeDataDir = "~/.local/share/jellyfish/node"
	// bootstrapRetryMax caps the delay between bootstrap attempts of a
	// node that could not reach any bootstrap peer.
	bootstrapRetryMax = 5 * time.Minute
	// defaultStatusAddr serves the status page on this machine only.
	defaultStatusAddr = "127.0.0.1:7781"
	// defaultShutdownGrace is how long a stopping node lets the shard
	// requests it is serving finish: a put of a few MiB at a usual rate
	// ends well inside it; systemd's default stop timeout (90 s) leaves
	// the rest of the shutdown time to run.
	defaultShutdownGrace = 30 * time.Second
)

var defaultNodeListen = []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}

// nodeOptions are the flags of `jellyfish node`.
type nodeOptions struct {
	dataDir       string
	listen        []string
	announce      []string
	portMapping   bool
	holePunching  bool
	congestion    string
	dhtMode       string
	boot          bootstrapFlags
	tier          int
	accountConfig string
	passFile      string // --account-passphrase-file
	careEvery     time.Duration
	maintain      string
	maintainEvery time.Duration
	testSkew      time.Duration
	collectGrace  time.Duration
	collectEvery  time.Duration
	admitAll      bool
	starterCap    fs.SizeSuffix
	starterShare  float64
	sharingShare  float64
	statusAddr    string
	statusPublic  bool
	shutdownGrace time.Duration
	log           logFlags
	configFile    string // --node-config
	printConfig   bool   // --print-node-config
}

func init() { commands = append(commands, newNodeCommand()) }

// newNodeCommand returns the `jellyfish node` command with options of its
// own.
func newNodeCommand() *cobra.Command {
	c, _ := nodeCommand()
	return c
}

// nodeCommand returns the `jellyfish node` command and the options its
// flags set.
func nodeCommand() (*cobra.Command, *nodeOptions) {
	o := &nodeOptions{starterCap: provider.DefaultStarterBytes}
	c := &cobra.Command{
		Use:   "node",
		Short: "Run a Jellyfish provider node in the foreground",
		Long: `node shares 2^tier GiB of this disk with the Jellyfish network and serves the
network's records. It runs until interrupted (SIGINT or SIGTERM), then closes
everything and exits 0. Logs are structured (slog) on standard error.

Without --bootstrap the node starts a new network and waits for others to
connect to it; the addresses to give them are in its startup log line.

With --account-config the node holds every key of that account, in memory,
for as long as it runs. If the file is encrypted (jellyfish account login
--passphrase, jellyfish account passphrase) the node reads its passphrase from
--account-passphrase-file, else JELLYFISH_ACCOUNT_PASSPHRASE, else asks on the
terminal, and exits if it has none. The passphrase protects a copy of the file
at rest; it does not protect the running node's memory, and a passphrase file
on the same disk as the key file protects little.

The node keeps its whole space for the account it is linked to; another
account whose own node is linked to it may store up to --sharing-share of the
space here, and accounts without a node up to --starter-cap each and
--starter-share of the space together. A put past them is refused with a
message saying so, and the owner's upload goes to other nodes. --admit-all
lets every account store up to the space.

The node serves a status page, /status.json and Prometheus /metrics on
--status-addr (127.0.0.1:7781; "" turns it off). It refuses an address other
machines can reach unless --status-public is given.

--node-config FILE reads the flags from a YAML file (keys are the flag names,
without dashes); a flag given on the command line wins. --print-node-config
prints the configuration in that format, with every key explained, and exits.

On SIGINT or SIGTERM the node stops taking shard requests and lets those it
is serving finish for up to --shutdown-grace; a put cut off then is not
stored, and its client gets no receipt.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if o.configFile != "" {
				if err := applyNodeConfig(cmd.Flags(), o.configFile); err != nil {
					return err
				}
			}
			if o.printConfig {
				return printNodeConfig(cmd.OutOrStdout(), cmd.Flags())
			}
			ctx, stop := signalContext(context.Background())
			defer stop()
			return runNode(ctx, cmd, *o)
		}),
	}
	c.Flags().StringVar(&o.dataDir, "data-dir", defaultNodeDataDir, "folder for the node's identity, records and shards")
	c.Flags().StringArrayVar(&o.listen, "listen", defaultNodeListen, "multiaddr to listen on (repeatable)")
	o.boot.register(c)
	c.Flags().StringArrayVar(&o.announce, "announce", nil, "multiaddr to give other nodes instead of the listening and observed ones (repeatable), e.g. /ip4/PUBLIC-IP/tcp/PORT for a port the router forwards")
	c.Flags().BoolVar(&o.portMapping, "port-mapping", true, "ask the router, by UPnP or NAT-PMP, to forward a port to the node")
	c.Flags().BoolVar(&o.holePunching, "hole-punching", true, "reach and be reached through NATs: hole punching (DCUtR), a relay for others while public, relay reservations while private")
	c.Flags().StringVar(&o.congestion, "tcp-congestion", node.DefaultCongestion, "TCP congestion control set on each of the node's TCP connections (\"system\" for the system's default); where the kernel does not let the node set it, the node says so once and uses the default")
	c.Flags().StringVar(&o.dhtMode, "dht-mode", "auto", "auto: serve the DHT and hold shards unless AutoNAT finds other nodes cannot dial this one; server: always; client: never (store nothing for others)")
	c.Flags().IntVar(&o.tier, "tier", 0, fmt.Sprintf("shared space tier: 2^tier GiB, 0 to %d", shardstore.MaxTier))
	c.Flags().StringVar(&o.accountConfig, "account-config", "", "device cache file of the account that owns this node (from `jellyfish account login`); the node then keeps the account's records alive")
	c.Flags().StringVar(&o.passFile, "account-passphrase-file", "", "read the passphrase of an encrypted --account-config from the first line of this file (mode 0600; else JELLYFISH_ACCOUNT_PASSPHRASE, else asked on a terminal)")
	c.Flags().DurationVar(&o.careEvery, "caretaker-interval", 12*time.Hour, "how often a linked node checks the account's records and re-signs those near expiry")
	c.Flags().StringVar(&o.maintain, "maintain", "", "rclone remote of the owner's account (e.g. jellyfish:) whose data this node renews, audits and repairs")
	c.Flags().DurationVar(&o.maintainEvery, "maintain-interval", 24*time.Hour, "how often the node runs a maintenance round of --maintain's remote")
	c.Flags().DurationVar(&o.collectGrace, "collect-grace", provider.DefaultCollectGrace, "how long after an owner's lease ended its shards are kept for a late renewal before they are deleted")
	c.Flags().DurationVar(&o.collectEvery, "collect-interval", provider.DefaultCollectInterval, "how often the node deletes shards whose leases ended more than --collect-grace ago")
	c.Flags().BoolVar(&o.admitAll, "admit-all", false, "let every account store up to the shared space")
	c.Flags().Var(&o.starterCap, "starter-cap", "the most one account that shares no node may store on this node (e.g. 256Mi)")
	c.Flags().Float64Var(&o.starterShare, "starter-share", provider.DefaultStarterShare, "the share of the shared space that all accounts sharing no node may store here together, in (0, 1]")
	c.Flags().Float64Var(&o.sharingShare, "sharing-share", provider.DefaultSharingShare, "the share of the shared space one account sharing a node of its own may store here, in (0, 1]")
	c.Flags().StringVar(&o.statusAddr, "status-addr", defaultStatusAddr, "host:port of the status page, /status.json and /metrics (\"\" for none); a loopback address unless --status-public")
	c.Flags().BoolVar(&o.statusPublic, "status-public", false, "allow a --status-addr other machines can reach: the page shows the node's addresses, peers and usage to anyone who reaches it")
	c.Flags().DurationVar(&o.shutdownGrace, "shutdown-grace", defaultShutdownGrace, "on SIGINT or SIGTERM, how long the shard requests being served may take to finish before they are cut off")
	c.Flags().StringVar(&o.configFile, "node-config", "", "read flags from this YAML file (keys are flag names); flags on the command line win")
	c.Flags().BoolVar(&o.printConfig, "print-node-config", false, "print the configuration (defaults, --node-config's file and flags given) as a commented YAML file, and exit")
	c.Flags().DurationVar(&o.testSkew, "test-clock-skew", 0, "TESTS ONLY: run the node's clock this far from the machine's, to test the correction by its peers' clocks")
	_ = c.Flags().MarkHidden("test-clock-skew")
	o.log.register(c)
	return c, o
}

// clockCheckEvery is how often a node compares its clock with its peers'.
const clockCheckEvery = time.Hour

// correctClock keeps clk corrected by the median of n's peers' clocks: at
// once (a few tries while the routing table fills), then every
// clockCheckEvery, until ctx ends. A node whose clock is wrong otherwise
// refuses honest clients' signed requests and records.
func correctClock(ctx context.Context, n *node.Node, clk *timeproto.Corrected, log *slog.Logger) {
	wait := 2 * time.Second
	for {
		u, err := clk.Estimate(ctx, n.ClockOffset)
		switch {
		case err != nil:
			log.Debug("clock not compared with the network's", "err", err)
		case u.Disbelieved:
			log.Error("peers' clocks are too far from this machine's to believe; check this machine's clock", "offset", u.Measured.String(), "peers", u.Peers)
		case u.Changed:
			log.Warn("clock corrected by the network's", "correction", clk.Offset().String(), "offset", u.Measured.String(), "peers", u.Peers)
		}
		if err == nil {
			wait = clockCheckEvery
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err != nil {
			wait = min(2*wait, clockCheckEvery)
		}
	}
}

// parseDHTMode reads --dht-mode.
func parseDHTMode(s string) (node.Mode, error) {
	for _, m := range []node.Mode{node.ModeAuto, node.ModeServer, node.ModeClient} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("--dht-mode %q: want auto, server or client", s)
}

// admission reads --admit-all, --starter-cap, --starter-share and
// --sharing-share.
func (o nodeOptions) admission() (provider.AdmissionConfig, error) {
	if o.admitAll {
		return provider.AdmissionConfig{AdmitAll: true}, nil
	}
	if o.starterCap <= 0 {
		return provider.AdmissionConfig{}, fmt.Errorf("--starter-cap %v: must be positive (--admit-all lets every account store up to the space)", o.starterCap)
	}
	for name, v := range map[string]float64{"--starter-share": o.starterShare, "--sharing-share": o.sharingShare} {
		if !(v > 0 && v <= 1) {
			return provider.AdmissionConfig{}, fmt.Errorf("%s %v: want a share of the space in (0, 1]", name, v)
		}
	}
	return provider.AdmissionConfig{StarterBytes: int64(o.starterCap), StarterShare: o.starterShare, SharingShare: o.sharingShare}, nil
}

// runNode runs a provider node until ctx ends.
func runNode(ctx context.Context, cmd *cobra.Command, o nodeOptions) error {
	log, err := o.log.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	dataDir, err := expandHome(o.dataDir)
	if err != nil {
		return err
	}
	listen, err := parseListen(o.listen)
	if err != nil {
		return err
	}
	boot, err := o.boot.parse()
	if err != nil {
		return err
	}
	var announce []ma.Multiaddr
	for _, s := range o.announce {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("--announce %q: %w", s, err)
		}
		announce = append(announce, a)
	}
	mode, err := parseDHTMode(o.dhtMode)
	if err != nil {
		return err
	}
	admission, err := o.admission()
	if err != nil {
		return err
	}
	var (
		owner  []byte
		linked *account.Account
	)
	if o.passFile != "" && o.accountConfig == "" {
		return errors.New("--account-passphrase-file is the passphrase of --account-config's key file, and no --account-config was given")
	}
	if o.accountConfig != "" {
		path, err := expandHome(o.accountConfig)
		if err != nil {
			return err
		}
		// The file holds every key of the account, and a linked node is
		// a daemon facing the internet: refuse a file others can read.
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return fmt.Errorf("%s holds the account's keys and is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
		}
		cache, err := loadNodeKeyFile(cmd, path, o.passFile)
		if err != nil {
			return err
		}
		linked = cache.Account()
		owner = []byte(linked.ID())
	}

	if o.collectGrace <= 0 || o.collectEvery <= 0 {
		return fmt.Errorf("--collect-grace %v and --collect-interval %v must be positive", o.collectGrace, o.collectEvery)
	}
	if o.shutdownGrace < 0 {
		return fmt.Errorf("--shutdown-grace %v is negative", o.shutdownGrace)
	}
	if o.statusAddr != "" {
		if err := nodestatus.CheckAddr(o.statusAddr, o.statusPublic); errors.Is(err, nodestatus.ErrNotLoopback) {
			return fmt.Errorf("--status-addr %s is not a loopback address: the status page shows this node's addresses, peers and usage to anyone who can reach it. Use 127.0.0.1:PORT, or add --status-public to serve it there anyway", o.statusAddr)
		} else if err != nil {
			return fmt.Errorf("--status-addr %q: want host:port (%v)", o.statusAddr, err)
		}
	}
	started := time.Now()
	base := time.Now
	if o.testSkew != 0 {
		base = func() time.Time { return time.Now().Add(o.testSkew) }
	}
	// Records, leases and signature windows run on the network's time.
	clk := timeproto.NewCorrected(base)
	n, err := node.New(ctx, provider.NodeConfig(node.Config{
		DataDir: dataDir, ListenAddrs: listen, BootstrapPeers: boot, Logger: log, Clock: clk.Now,
		Mode: mode, AnnounceAddrs: announce, PortMapping: o.portMapping, AutoNATService: true,
		HolePunching: o.holePunching, Relays: o.holePunching, TCPCongestion: o.congestion,
	}))
	if err != nil {
		return err
	}
	prov, err := provider.Attach(ctx, n, provider.Config{
		DataDir: dataDir, Tier: o.tier, Owner: owner,
		CollectGrace: o.collectGrace, CollectInterval: o.collectEvery, ClockInDoubt: clk.InDoubt,
		Admission: admission,
	})
	if err != nil {
		// The provider closes with the node.
		return errors.Join(err, n.Close())
	}
	status, err := nodestatus.New(nodestatus.Config{
		Node: n, Provider: prov, Clock: clk, Account: accountLabel(linked),
		CollectInterval: o.collectEvery, Started: started,
	})
	if err != nil {
		return errors.Join(err, n.Close())
	}
	var careRound, maintainRound *nodestatus.Round
	if linked != nil {
		careRound = status.Round("caretaker", o.careEvery)
	}
	if o.maintain != "" {
		maintainRound = status.Round("maintenance", o.maintainEvery)
	}
	var srv *nodestatus.Server
	if o.statusAddr != "" {
		// The page only watches: a node whose status port is taken still
		// serves the network.
		if srv, err = nodestatus.Serve(o.statusAddr, o.statusPublic, status, log); err != nil {
			log.Error("status page not served", "addr", o.statusAddr, "err", err)
		} else {
			log.Info("status page", "url", "http://"+srv.Addr().String()+"/")
		}
	}
	addrs := n.Addrs()
	log.Info("jellyfish node running", "peer", n.ID().String(), "addrs", addrStrings(addrs),
		"tier", o.tier, "shared_gib", uint64(1)<<o.tier, "data_dir", dataDir, "account", accountLabel(linked))
	if len(boot) == 0 {
		log.Warn("no bootstrap peers configured: this node is the first of a new network; give others one of its addrs as --bootstrap")
	}

	// Background work owned by this function: joining the network and, for
	// a linked node, naming it in the account record.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if len(boot) > 0 && !joinNetwork(ctx, n, log) {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			correctClock(ctx, n, clk, log)
		}()
		if linked != nil {
			linkNode(ctx, n, linked, log)
			// Keep the account's login, account and head records alive
			// however long no device uses it.
			c, err := caretaker.New(caretaker.Config{
				Records: client.NodeRecords(n), Account: linked,
				Dir: filepath.Join(dataDir, "caretaker"), Logger: log,
				Done: func(start time.Time, st caretaker.Stats, err error) {
					careRound.Done(start, map[string]any{"checked": st.Checked, "resigned": st.Resigned, "restored": st.Restored}, err)
				},
			})
			if err != nil {
				log.Error("no caretaker for the account's records", "err", err)
				return
			}
			c.Run(ctx, o.careEvery)
		}
	}()

	if o.maintain != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var trust func([]peer.ID)
			if adm := prov.Admission(); adm != nil && linked != nil {
				trust = adm.TrustObservers
			}
			maintainLoop(ctx, o.maintain, o.maintainEvery, log, maintainRound, linkedID(linked), trust)
		}()
	}

	<-ctx.Done()
	// Shard requests being served finish (or are cut off at the grace)
	// before anything closes; background rounds end with ctx meanwhile.
	log.Info("shutting down", "serving", prov.Service().Stats().Serving, "grace", o.shutdownGrace.String())
	dctx, cancel := context.WithTimeout(context.Background(), o.shutdownGrace)
	if err := prov.Drain(dctx); err != nil {
		log.Warn("shard requests cut off at the end of the shutdown grace", "err", err)
	} else {
		log.Info("shard requests drained")
	}
	cancel()
	wg.Wait()
	if srv != nil {
		if err := srv.Close(); err != nil {
			log.Warn("closing the status page", "err", err)
		}
	}
	status.Close()
	if err := n.Close(); err != nil {
		return fmt.Errorf("close node: %w", err)
	}
	log.Info("jellyfish node stopped")
	return nil
}

// joinNetwork bootstraps n, retrying with a growing delay while no
// bootstrap peer answers. It returns false if ctx ended first.
func joinNetwork(ctx context.Context, n *node.Node, log *slog.Logger) bool {
	delay := 5 * time.Second
	for {
		err := n.Bootstrap(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		log.Error("cannot reach any bootstrap peer; the node keeps running and retries", "retry_in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		delay = min(2*delay, bootstrapRetryMax)
	}
}

// linkNode adds n to the account record's node list if it is not there.
// Failure is logged, not fatal: the node record already names the owner.
func linkNode(ctx context.Context, n *node.Node, a *account.Account, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	m := account.NewManager(client.NodeRecords(n))
	pub, err := m.Lookup(ctx, a.ID())
	if err != nil {
		log.Warn("account record not readable; node not listed in it", "account", a.ID().String(), "err", err)
		return
	}
	if slices.Contains(pub.Nodes, n.ID()) {
		return
	}
	// Update, not a publish of what was read: devices registering at the
	// same time are not dropped from the record.
	if _, err := m.Update(ctx, a, account.AddNode(n.ID())); err != nil {
		log.Warn("could not add this node to the account record", "err", err)
		return
	}
	log.Info("node listed in the account record", "account", a.ID().String())
}

func parseListen(ss []string) ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("--listen %q: %w", s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func addrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// linkedID returns a's ID, "" for none.
func linkedID(a *account.Account) peer.ID {
	if a == nil {
		return ""
	}
	return a.ID()
}

func accountLabel(a *account.Account) string {
	if a == nil {
		return "none"
	}
	return string(a.User) + " " + a.ID().String()
}

// maintainLoop opens remote (an account's rclone remote) and runs its
// maintenance round (`jellyfish backend maintain`) now and then every
// interval until ctx ends, logging each round's figures. When the remote
// is the account the node is linked to (linked), it then hands trust the
// providers the round found holding the account's shards (`jellyfish
// backend holders`): the provider takes their test shards outside its
// starters' share (provider.Admission.TrustObservers).
func maintainLoop(ctx context.Context, remote string, every time.Duration, log *slog.Logger, round *nodestatus.Round, linked peer.ID, trust func([]peer.ID)) {
	var f fs.Fs
	for delay := 5 * time.Second; ; delay = min(2*delay, bootstrapRetryMax) {
		var err error
		if f, err = fs.NewFs(ctx, remote); err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		log.Error("cannot open the remote to maintain; retrying", "remote", remote, "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if sh := f.Features().Shutdown; sh != nil {
			if err := sh(sctx); err != nil {
				log.Warn("closing the maintained remote", "err", err)
			}
		}
	}()
	cmd := f.Features().Command
	if cmd == nil {
		log.Error("the remote to maintain is not a Jellyfish remote", "remote", remote)
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		start := time.Now()
		out, err := cmd(ctx, "maintain", nil, nil)
		if ctx.Err() != nil {
			return
		}
		attrs := []any{"remote", remote, "took", time.Since(start).Round(time.Millisecond).String()}
		var m map[string]any
		if b, jerr := json.Marshal(out); jerr == nil && json.Unmarshal(b, &m) == nil {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				attrs = append(attrs, k, m[k])
			}
		}
		round.Done(start, m, err)
		if err != nil {
			log.Warn("maintenance round had errors", append(attrs, "err", err)...)
		} else {
			log.Info("maintenance round", attrs...)
		}
		if trust != nil && linked != "" {
			trustHolders(ctx, cmd, linked, trust, log)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// trustHolders asks the maintained remote which providers hold its
// shards and, when the remote is the linked account, hands them to trust.
func trustHolders(ctx context.Context, cmd func(context.Context, string, []string, map[string]string) (any, error), linked peer.ID, trust func([]peer.ID), log *slog.Logger) {
	out, err := cmd(ctx, "holders", nil, nil)
	if err != nil {
		log.Warn("the maintained account's holders not read", "err", err)
		return
	}
	m, _ := out.(map[string]any)
	if acct, _ := m["account"].(string); acct != linked.String() {
		log.Info("the maintained account is not the one this node is linked to: its holders' test shards take the starters' share", "maintained", acct, "linked", linked.String())
		return
	}
	list, _ := m["holders"].([]string)
	ids := make([]peer.ID, 0, len(list))
	for _, s := range list {
		if id, err := peer.Decode(s); err == nil {
			ids = append(ids, id)
		}
	}
	trust(ids)
	log.Info("observers trusted with test shards", "providers", len(ids))
}
