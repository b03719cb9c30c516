package nodestatus

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/timeproto"
)

// NotComputed is what a snapshot says of a figure the network does not
// compute yet.
const NotComputed = "not yet computed"

// Config is what New needs. Node and Provider are required.
type Config struct {
	Node     *node.Node
	Provider *provider.Provider
	// Clock is the node's corrected clock; nil if the node runs none.
	Clock *timeproto.Corrected
	// Version names the running build (Version() by default).
	Version string
	// Account names the account the node is linked to, "" if none.
	Account string
	// CollectInterval is the period of the provider's collection rounds,
	// shown next to them; zero shows none.
	CollectInterval time.Duration
	// Started is when the node started; zero means when New was called.
	Started time.Time
}

// Status reads Snapshots of a running node. Create it with New and
// release it with Close (before closing the node).
type Status struct {
	cfg   Config
	reach *reachability

	mu     sync.Mutex
	rounds []*Round
}

// New returns a Status of cfg's node. It subscribes to the host's
// reachability events at once.
func New(cfg Config) (*Status, error) {
	if cfg.Node == nil || cfg.Provider == nil {
		return nil, errors.New("nodestatus: a node and its provider are needed")
	}
	if cfg.Version == "" {
		cfg.Version = Version()
	}
	if cfg.Started.IsZero() {
		cfg.Started = time.Now()
	}
	reach, err := watchReachability(cfg.Node.Host().EventBus())
	if err != nil {
		return nil, fmt.Errorf("nodestatus: %w", err)
	}
	return &Status{cfg: cfg, reach: reach}, nil
}

// Close stops watching the host's events.
func (s *Status) Close() error { return s.reach.close() }

// Round returns the recorder of the background round called name, run
// every interval (zero: no fixed period), adding it to the snapshot.
// Snapshots list rounds in the order they were added, after the
// provider's collection rounds.
func (s *Status) Round(name string, every time.Duration) *Round {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &Round{name: name, every: every}
	s.rounds = append(s.rounds, r)
	return r
}

// Snapshot is what a node knows about itself at one moment. It is the
// body of /status.json; the page and the metrics show the same.
type Snapshot struct {
	Time    time.Time    `json:"time"`
	Node    NodeInfo     `json:"node"`
	Storage Storage      `json:"storage"`
	Service ShardService `json:"shard_service"`
	Network Network      `json:"network"`
	Records Records      `json:"records"`
	// Clock is nil for a node that runs no corrected clock.
	Clock  *Clock        `json:"clock,omitempty"`
	Rounds []RoundStatus `json:"rounds"`
	// Allowance (the storage the node's owner may use in return) and
	// Standing (how other nodes rate this one) are NotComputed.
	Allowance string `json:"allowance"`
	Standing  string `json:"standing"`
}

// NodeInfo identifies the node and its process.
type NodeInfo struct {
	ID            string    `json:"id"`
	Version       string    `json:"version"`
	ShardProtocol string    `json:"shard_protocol"`
	DHTMode       string    `json:"dht_mode"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	// Account is the linked account, "none" if the node is not linked.
	Account string `json:"account"`
}

// Storage is the shard store's space accounting.
type Storage struct {
	Tier       int   `json:"tier"`
	QuotaBytes int64 `json:"quota_bytes"`
	UsedBytes  int64 `json:"used_bytes"`
	// ReservedBytes are held by puts in flight; FreeBytes is what is left
	// of the quota after UsedBytes and ReservedBytes.
	ReservedBytes int64 `json:"reserved_bytes"`
	FreeBytes     int64 `json:"free_bytes"`
	Shards        int   `json:"shards"`
	// Owners is the number of accounts with a reference to a shard held.
	Owners int `json:"owners"`
	// Admission is the node's rule for other accounts' shards, in words
	// (docs/design.md §6.11); HeldByClass sums the bytes it holds for the
	// node's own account ("own"), for accounts that share a node
	// ("sharing") and for those that share none ("starter"), and
	// StarterShareBytes is what starters may hold together (0: no rule).
	// TrustedObservers counts the providers whose test shards the node
	// takes outside that share ("observer" in HeldByClass): those holding
	// the linked account's shards at its last maintenance round here.
	Admission         string           `json:"admission"`
	HeldByClass       map[string]int64 `json:"held_by_class"`
	StarterShareBytes int64            `json:"starter_share_bytes"`
	TrustedObservers  int              `json:"trusted_observers"`
}

// ShardService is what the shard protocol service and the store did since
// the node started.
type ShardService struct {
	// Puts counts the puts the store accepted (a shard already held
	// included) and PutBytes their sizes; NewShards and NewBytes those
	// that wrote a shard not held before. PutsInFlight are running now.
	Puts         int64 `json:"puts"`
	PutBytes     int64 `json:"put_bytes"`
	NewShards    int64 `json:"new_shards"`
	NewBytes     int64 `json:"new_bytes"`
	PutsInFlight int64 `json:"puts_in_flight"`
	// AuditsAnswered counts the challenges and proof requests answered
	// with the shard's data (status ok).
	AuditsAnswered int64 `json:"audits_answered"`
	// Refused counts the requests answered with a refusal (quota, space,
	// size, busy, unauthorized, too soon, invalid, integrity: every status
	// but ok and not_found) and the streams refused a serving slot.
	Refused int64 `json:"refused"`
	// Answers counts every answer by request and status.
	Answers []Answer `json:"answers"`
	// Resets counts the streams reset by request (transport failures,
	// bodies cut short, deadlines; "undecoded": before a request was
	// read).
	Resets map[string]int64 `json:"resets"`
	// StreamsEvicted were reset while waiting for their header to make
	// room; StreamsRefused were refused a serving slot. StreamsPending and
	// StreamsServing are open now.
	StreamsEvicted int64 `json:"streams_evicted"`
	StreamsRefused int64 `json:"streams_refused"`
	// RefusalsHeld counts the refusals and Busy answers held before they
	// were sent, their peer being over its refusal budget.
	RefusalsHeld   int64 `json:"refusals_held"`
	StreamsPending int   `json:"streams_pending"`
	StreamsServing int   `json:"streams_serving"`
}

// Answer counts the requests of one kind answered with one status.
type Answer struct {
	Request string `json:"request"`
	Status  string `json:"status"`
	Count   int64  `json:"count"`
}

// Network is the node's place in the network as its host sees it.
type Network struct {
	ListenAddrs []string `json:"listen_addrs"`
	// AnnouncedAddrs are the addresses the node gives others (identify,
	// its node record), with /p2p/<ID>; PublicAddrs counts those with a
	// public IP address.
	AnnouncedAddrs []string `json:"announced_addrs"`
	PublicAddrs    int      `json:"public_addrs"`
	PeersConnected int      `json:"peers_connected"`
	// Connections counts open connections, RelayedConnections those
	// through a relay (the rest are direct).
	Connections        int `json:"connections"`
	RelayedConnections int `json:"relayed_connections"`
	RoutingTablePeers  int `json:"routing_table_peers"`
	// Reachability is what libp2p's AutoNAT last concluded: "public",
	// "private" or "unknown"; ReachabilityNote says what that rests on.
	Reachability     string `json:"reachability"`
	ReachabilityNote string `json:"reachability_note"`
	// HolePunching says whether the host punches holes through NATs and
	// uses relays, with HolePunches and RelayAddrs in words.
	HolePunching string `json:"hole_punching"`
	// HolePunches counts the punches this node started (when a peer
	// reached it through a relay) and how they ended.
	HolePunches node.Punches `json:"hole_punches"`
	// RelayAddrs counts the announced addresses through a relay: a
	// private node's reservations.
	RelayAddrs int `json:"relay_addrs"`
	// Paths says how each connected peer is reached, at most maxPaths of
	// them (hole-punched first, then relayed, then direct); PathsOmitted
	// counts the rest.
	Paths        []PeerPath `json:"paths"`
	PathsOmitted int        `json:"paths_omitted,omitempty"`
}

// PeerPath is how one connected peer is reached.
type PeerPath struct {
	Peer string `json:"peer"`
	// Path is "hole-punched" (a direct connection opened by a hole punch
	// this node started), "direct" (another direct connection) or
	// "relayed" (connections through a relay only).
	Path string `json:"path"`
	// Addr is the peer's address on the connection the path rests on.
	Addr string `json:"addr"`
}

// maxPaths bounds the peers Network.Paths lists.
const maxPaths = 100

// Records counts what the node keeps for the DHT.
type Records struct {
	Records        int            `json:"records"`
	RecordsByKind  map[string]int `json:"records_by_kind"`
	Publishers     int            `json:"publishers"`
	RecordsRefused uint64         `json:"records_refused"`
	Marks          int            `json:"marks"`
	MarksRefused   uint64         `json:"marks_refused"`
}

// Clock is the node's clock correction by its peers' clocks.
type Clock struct {
	CorrectionSeconds float64 `json:"correction_seconds"`
	// NetworkOffsetSeconds is the peers' median offset at the last
	// measurement, from Peers peers at MeasuredAt; nil if none succeeded
	// yet (Error then says why, if an attempt failed).
	NetworkOffsetSeconds *float64  `json:"network_offset_seconds,omitempty"`
	Peers                int       `json:"peers"`
	MeasuredAt           time.Time `json:"measured_at,omitzero"`
	Error                string    `json:"error,omitempty"`
	// InDoubt: that offset is beyond what the node corrects
	// (timeproto.Corrected.InDoubt); shard collection waits meanwhile.
	InDoubt bool `json:"in_doubt"`
}

// RoundStatus is what one kind of background round did since the node
// started.
type RoundStatus struct {
	Name            string  `json:"name"`
	IntervalSeconds float64 `json:"interval_seconds,omitempty"`
	Runs            int     `json:"runs"`
	Failed          int     `json:"failed"`
	// The last round: when it began, how long it took, what it reported
	// and its error. Absent before the first round.
	LastStart       *time.Time     `json:"last_start,omitempty"`
	LastTookSeconds float64        `json:"last_took_seconds,omitempty"`
	LastFigures     map[string]any `json:"last_figures,omitempty"`
	LastError       string         `json:"last_error,omitempty"`
}

// Snapshot reads the node's state now.
func (s *Status) Snapshot() Snapshot {
	now := time.Now()
	n, p := s.cfg.Node, s.cfg.Provider
	snap := Snapshot{
		Time: now.UTC(),
		Node: NodeInfo{
			ID: n.ID().String(), Version: s.cfg.Version, ShardProtocol: shardproto.ID,
			DHTMode: dhtMode(n), Started: s.cfg.Started.UTC(), UptimeSeconds: now.Sub(s.cfg.Started).Seconds(),
			Account: s.cfg.Account,
		},
		Allowance: NotComputed,
		Standing:  NotComputed,
	}
	if snap.Node.Account == "" {
		snap.Node.Account = "none"
	}

	u := p.Store().Usage()
	snap.Storage = Storage{
		Tier: int(p.Info().Tier), QuotaBytes: u.Quota, UsedBytes: u.Used, ReservedBytes: u.Reserved,
		FreeBytes: max(u.Quota-u.Used-u.Reserved, 0), Shards: u.Shards, Owners: len(u.PerOwner),
		Admission: "every account may store up to the quota (admit-all)",
		HeldByClass: map[string]int64{
			"own": u.PerGroup[provider.GroupOwn], "sharing": u.PerGroup[provider.GroupSharing], "starter": u.PerGroup[provider.GroupStarter],
			"observer": u.PerGroup[provider.GroupObserver],
		},
	}
	if adm := p.Admission(); adm != nil {
		starter := adm.AllowanceOf(provider.ClassStarter, 0)
		snap.Storage.StarterShareBytes = starter.GroupMax
		snap.Storage.TrustedObservers = adm.TrustedObservers()
		snap.Storage.Admission = fmt.Sprintf("the node's own account up to the quota; an account with a node this node vetted up to a quarter of what its nodes earned, at least %s and at most %s; one that shares none, or no node vetted here yet, up to %s, and all of those together up to %s; the test shards of the %d providers holding the linked account's shards up to %s each, outside that share; shards rebuilt by an account's repair up to %.0f %% past these",
			shardstore.FormatBytes(adm.SharingCap(0)), shardstore.FormatBytes(adm.SharingCap(1<<62)), shardstore.FormatBytes(starter.Max), shardstore.FormatBytes(starter.GroupMax),
			snap.Storage.TrustedObservers, shardstore.FormatBytes(provider.ObserverBytes), 100*adm.Config().RepairSlack)
	}

	ps := p.Store().PutStats()
	ss := p.Service().Stats()
	svc := ShardService{
		Puts: ps.Puts, PutBytes: ps.Bytes, NewShards: ps.NewShards, NewBytes: ps.NewBytes, PutsInFlight: ps.InFlight,
		AuditsAnswered: ss.Answered("challenge", shardproto.StatusOK) + ss.Answered("proof", shardproto.StatusOK),
		Refused:        ss.Refused,
		Resets:         ss.Resets,
		StreamsEvicted: ss.Evicted, StreamsRefused: ss.Refused, RefusalsHeld: ss.RefusalsHeld, StreamsPending: ss.Pending, StreamsServing: ss.Serving,
		Answers: []Answer{},
	}
	for _, a := range ss.Answers {
		svc.Answers = append(svc.Answers, Answer{Request: a.Request, Status: a.Status.String(), Count: a.N})
		if a.Status != shardproto.StatusOK && a.Status != shardproto.StatusNotFound {
			svc.Refused += a.N
		}
	}
	snap.Service = svc

	snap.Network = s.network(now)

	st := n.StoreStats()
	snap.Records = Records{
		Records: st.Records.Keys, RecordsByKind: st.Records.Kinds, Publishers: st.Records.Publishers,
		RecordsRefused: st.Records.Refused, Marks: st.Marks.Keys, MarksRefused: st.Marks.Refused,
	}
	if snap.Records.RecordsByKind == nil {
		snap.Records.RecordsByKind = map[string]int{}
	}

	if s.cfg.Clock != nil {
		cs := s.cfg.Clock.State()
		c := &Clock{CorrectionSeconds: cs.Correction.Seconds(), Peers: cs.Peers, InDoubt: cs.InDoubt()}
		if !cs.At.IsZero() {
			off := cs.Measured.Seconds()
			c.NetworkOffsetSeconds = &off
			c.MeasuredAt = cs.At.UTC()
		}
		if cs.Err != nil {
			c.Error = cs.Err.Error()
		}
		snap.Clock = c
	}

	cl := p.Collections()
	snap.Rounds = append(snap.Rounds, roundStatus("collection", s.cfg.CollectInterval, cl.Rounds, cl.Failed, roundRun{
		start: cl.Last.At, took: cl.Last.Took, err: cl.Last.Err,
		figures: map[string]any{"refs_dropped": cl.Last.Stats.Refs, "shards_removed": cl.Last.Stats.Shards, "bytes_freed": cl.Last.Stats.Bytes},
	}))
	s.mu.Lock()
	rounds := append([]*Round(nil), s.rounds...)
	s.mu.Unlock()
	for _, r := range rounds {
		snap.Rounds = append(snap.Rounds, r.snapshot())
	}
	if p.Admission() != nil {
		// The observer: the nodes linked to accounts storing here, by
		// the standing this node measured (docs/design.md §6.12).
		ob := p.Observations()
		l := ob.Last
		snap.Rounds = append(snap.Rounds, roundStatus("observation", ob.Interval, ob.Rounds, 0, roundRun{
			start: l.At, took: l.Took,
			figures: map[string]any{"nodes_watched": ob.Watched, "good": ob.Good, "vetting": ob.Vetting, "unknown": ob.Unknown, "malicious": ob.Malicious,
				"probes": l.Probes, "answered": l.Answered, "audits": l.Audits, "passed": l.Passed, "deleted": l.Deleted, "test_shards_put": l.Puts, "skipped": l.Skipped},
		}))
	}
	return snap
}

func dhtMode(n *node.Node) string {
	if n.ServesDHT() {
		return "server"
	}
	return "client"
}

// network reads the host's addresses, connections and reachability.
func (s *Status) network(now time.Time) Network {
	n := s.cfg.Node
	h := n.Host()
	out := Network{
		ListenAddrs:       addrStrings(h.Network().ListenAddresses()),
		AnnouncedAddrs:    addrStrings(n.Addrs()),
		PeersConnected:    len(h.Network().Peers()),
		RoutingTablePeers: n.DHT().RoutingTable().Size(),
		HolePunches:       n.HolePunches(),
	}
	for _, a := range n.Addrs() {
		if node.IsRelayed(a) {
			out.RelayAddrs++
		}
	}
	out.HolePunching = holePunchingNote(n, out)
	for _, a := range h.Addrs() {
		if manet.IsPublicAddr(a) {
			out.PublicAddrs++
		}
	}
	for _, c := range h.Network().Conns() {
		out.Connections++
		if isRelayed(c) {
			out.RelayedConnections++
		}
	}
	out.Paths, out.PathsOmitted = peerPaths(n, h.Network())
	r, since := s.reach.get()
	out.Reachability = reachabilityName(r)
	switch {
	case r != network.ReachabilityUnknown:
		out.ReachabilityNote = fmt.Sprintf("concluded by AutoNAT %s ago", now.Sub(since).Round(time.Second))
	case out.PublicAddrs == 0:
		out.ReachabilityNote = "nothing measured it yet: AutoNAT has no public address of this node to test (none of its own, and too few peers have reported one they see it at)"
	default:
		out.ReachabilityNote = "nothing measured it yet: no peer has answered an AutoNAT probe"
	}
	return out
}

// holePunchingNote says in words what the node does to cross NATs.
func holePunchingNote(n *node.Node, nw Network) string {
	punch, relays := n.HolePunching()
	switch {
	case !punch && !relays:
		return "not enabled"
	case !relays:
		return fmt.Sprintf("enabled, no relays; punches started: %d succeeded, %d failed", nw.HolePunches.Succeeded, nw.HolePunches.Failed)
	}
	return fmt.Sprintf("enabled; relayed addresses: %d (a relay serves this node while it is private); punches started: %d succeeded, %d failed",
		nw.RelayAddrs, nw.HolePunches.Succeeded, nw.HolePunches.Failed)
}

// peerPaths says how each connected peer is reached: through a direct
// connection if it has one (hole-punched when it was opened by a punch
// this node started, at most a minute before the punch ended), else
// through a relay.
func peerPaths(n *node.Node, nw network.Network) ([]PeerPath, int) {
	var out []PeerPath
	for _, p := range nw.Peers() {
		var pp PeerPath
		for _, c := range nw.ConnsToPeer(p) {
			if isRelayed(c) {
				if pp.Path == "" {
					pp = PeerPath{Peer: p.String(), Path: "relayed", Addr: c.RemoteMultiaddr().String()}
				}
				continue
			}
			at, punched := n.PunchedAt(p)
			path := directPath(c.Stat().Opened, at, punched)
			if pp.Path == "" || pathRank[path] < pathRank[pp.Path] || pp.Path == "relayed" {
				pp = PeerPath{Peer: p.String(), Path: path, Addr: c.RemoteMultiaddr().String()}
			}
		}
		if pp.Path != "" {
			out = append(out, pp)
		}
	}
	return limitPaths(out)
}

// punchOpens is how long before a punch ended its direct connection may
// have opened (the punch dials, then reports).
const punchOpens = time.Minute

// directPath names a direct connection opened at opened: hole-punched if
// a punch to its peer succeeded at punchedAt and the connection opened at
// most punchOpens before that, else direct.
func directPath(opened, punchedAt time.Time, punched bool) string {
	if punched && !opened.Before(punchedAt.Add(-punchOpens)) {
		return "hole-punched"
	}
	return "direct"
}

// pathRank orders paths on the page: punched first, then relayed, then
// direct.
var pathRank = map[string]int{"hole-punched": 0, "relayed": 1, "direct": 2}

// limitPaths sorts paths by pathRank then peer and keeps the first
// maxPaths, returning how many it left out.
func limitPaths(paths []PeerPath) ([]PeerPath, int) {
	sort.Slice(paths, func(i, j int) bool {
		if pathRank[paths[i].Path] != pathRank[paths[j].Path] {
			return pathRank[paths[i].Path] < pathRank[paths[j].Path]
		}
		return paths[i].Peer < paths[j].Peer
	})
	if len(paths) > maxPaths {
		return paths[:maxPaths], len(paths) - maxPaths
	}
	return paths, 0
}

func isRelayed(c network.Conn) bool {
	return node.IsRelayed(c.RemoteMultiaddr()) || c.Stat().Limited
}

func addrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	sort.Strings(out)
	return out
}

func reachabilityName(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

// reachability keeps the last EvtLocalReachabilityChanged of a host.
type reachability struct {
	sub  event.Subscription
	done chan struct{}

	mu    sync.Mutex
	r     network.Reachability
	since time.Time
}

func watchReachability(bus event.Bus) (*reachability, error) {
	sub, err := bus.Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		return nil, fmt.Errorf("subscribe to reachability: %w", err)
	}
	w := &reachability{sub: sub, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for e := range sub.Out() {
			ev := e.(event.EvtLocalReachabilityChanged)
			w.mu.Lock()
			w.r, w.since = ev.Reachability, time.Now()
			w.mu.Unlock()
		}
	}()
	return w, nil
}

func (w *reachability) get() (network.Reachability, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.r, w.since
}

func (w *reachability) close() error {
	err := w.sub.Close()
	<-w.done
	return err
}

// Version names the running build: the main module's version and, when
// the build recorded them, its VCS revision and whether the tree had
// uncommitted changes.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v != "" && v != "(devel)" {
		return v // a released or pseudo-version names its revision
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = " " + s.Value[:min(len(s.Value), 12)]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	return "(devel)" + rev + dirty
}
