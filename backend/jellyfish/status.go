package jellyfish

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
)

// NotMeasured is what status says of a node's uptime, audits and standing
// when no provider reports watching it: providers measure the nodes of the
// accounts that store on them, each for itself (docs/design.md §6.12).
const NotMeasured = "not measured: no provider reports watching it (a provider watches an account's linked nodes once the account stores on it)"

// Allowance is what the account may store as the network grants it today:
// the providers' admission rule (docs/design.md §6.11), in shard bytes.
// About, `backend status` and `jellyfish status` all compute it with
// session.allowance.
type Allowance struct {
	// Used is the shard bytes of the account's live files, Files their
	// number (the namespace's summaries).
	Used  int64 `json:"used"`
	Files int64 `json:"files"`
	// Free is what the providers would still take from the account in
	// the remote's segments (storable), Total = Used + Free. Both are
	// valid only when Known.
	Free  int64 `json:"free"`
	Total int64 `json:"total"`
	Known bool  `json:"known"`
	// From says where Free comes from: "providers" (their answers to a
	// usage request), "own nodes" (the offered space of the account's own
	// nodes, when no provider answered) or "" (unknown).
	From string `json:"from"`
	// Asked and Answered count the providers asked for the account's
	// usage; Held is the shard bytes those that answered hold for it.
	Asked    int   `json:"providers_asked"`
	Answered int   `json:"providers_answered"`
	Held     int64 `json:"held_at_providers"`
	// DataShards and ParityShards are the remote's k and m: the file
	// bytes that fit are k/(k+m) of Free.
	DataShards   int `json:"data_shards"`
	ParityShards int `json:"parity_shards"`
}

// allowance computes the account's Allowance: used from the namespace,
// free from what the providers say they would take (providerRooms), else
// from the offered space of the account's own nodes.
func (s *session) allowance(ctx context.Context) (Allowance, error) {
	a := Allowance{DataShards: s.opt.DataShards, ParityShards: s.opt.ParityShards}
	files, _, used, err := s.log.usage(ctx)
	if err != nil {
		return a, err
	}
	a.Files, a.Used = files, used
	if pr, ok := s.providerRooms(ctx); ok {
		a.Free = storable(pr.rooms, a.DataShards, a.ParityShards)
		a.Total, a.Known, a.From = used+a.Free, true, "providers"
		a.Asked, a.Answered, a.Held = pr.asked, pr.answered, pr.held
		fs.Debugf(nil, "jellyfish: about: %d of %d providers answered, holding %d shard bytes of this account; room for %d more in %d+%d segments",
			pr.answered, pr.asked, pr.held, a.Free, a.DataShards, a.ParityShards)
	} else if capacity, nodes, err := s.net.OwnedCapacity(ctx, s.acct.ID()); err == nil && nodes > 0 {
		a.Total, a.Free, a.Known, a.From = capacity, max(0, capacity-used), true, "own nodes"
	}
	return a, nil
}

// nodeChecker is the optional ability of a network to check the nodes an
// account's record lists: client.Client.CheckNodes.
type nodeChecker interface {
	CheckNodes(ctx context.Context, acct peer.ID, ids []peer.ID, punchWait time.Duration) []client.NodeCheck
}

var _ nodeChecker = (*clientNet)(nil)

// CheckNodes checks nodes of acct as this process's client sees them.
func (n *clientNet) CheckNodes(ctx context.Context, acct peer.ID, ids []peer.ID, punchWait time.Duration) []client.NodeCheck {
	return n.c.CheckNodes(ctx, acct, ids, punchWait)
}

// NodeStatus is one node the account record lists, as this device sees it.
type NodeStatus struct {
	ID string `json:"id"`
	// Record: its node record was read (RecordError says why not); Owner
	// is the account it names.
	Record      bool   `json:"record"`
	RecordError string `json:"record_error,omitempty"`
	Owner       string `json:"owner,omitempty"`
	// Linked: the account record lists it and its node record names the
	// account: the link providers and karma count.
	Linked bool `json:"linked"`
	// OfferedGiB is the space its record's tier offers.
	OfferedGiB uint64 `json:"offered_gib,omitempty"`
	// Reachability is what its record's addresses say
	// (client.ReachabilityOf): "public", "relayed" (behind a NAT),
	// "local only" (private or loopback addresses only) or "no
	// addresses"; Addrs are those addresses, RelayedAddrs how many go
	// through a relay.
	Reachability string   `json:"reachability,omitempty"`
	Addrs        []string `json:"addrs,omitempty"`
	RelayedAddrs int      `json:"relayed_addrs"`
	// Connection is how this device connected to it now: "direct",
	// "hole-punched", "relayed" (no direct connection: shards cannot go
	// to it from here), "failed" (ConnectError says why) or "not tried"
	// (no record to find it by).
	Connection   string `json:"connection"`
	ConnectError string `json:"connect_error,omitempty"`
	// Shards: it speaks the shard protocol; Counts: linked, reachable and
	// speaking it, so providers class the account as sharing.
	Shards bool `json:"shard_protocol"`
	Counts bool `json:"counts_for_sharing"`
	// Uptime, Audits and Standing are NotMeasured.
	Uptime   string `json:"uptime"`
	Audits   string `json:"audits"`
	Standing string `json:"standing"`
	// Credit is what it earns the account and why: the median of the
	// providers that vetted it and answer with it (standing answer
	// version 2), with what other accounts say it keeps; empty when
	// none does.
	Credit string `json:"credit,omitempty"`
}

// ClassStatus is the account's class at providers under the admission
// rule and what would change it.
type ClassStatus struct {
	// Class is "sharing" or "starter": what a provider that is not the
	// account's own node makes of it ("unknown" when the account record
	// could not be read). Own lists the account's linked nodes
	// that hold shards: a node run with --account-config is the account's
	// own provider, where the account is limited by the quota only.
	Class string   `json:"class"`
	Own   []string `json:"own,omitempty"`
	// Why says what made the class, Change what would change it.
	Why    string `json:"why"`
	Change string `json:"change"`
	// AtProviders counts the classes the providers reported, in words;
	// empty when none answered the standing request.
	AtProviders string `json:"at_providers,omitempty"`
}

// classAtProviders returns the account's class from its nodes' links,
// refined by what the providers say (nil when none could be asked), and
// fills each node's uptime, audits and standing from their answers.
func (s *session) classAtProviders(ctx context.Context, nodes []NodeStatus) (ClassStatus, *ProvidersView) {
	cs := classOf(nodes)
	view, ok := s.providerStandings(ctx)
	if !ok {
		return cs, nil
	}
	for i := range nodes {
		if id, err := peer.Decode(nodes[i].ID); err == nil {
			view.describeNode(&nodes[i], id)
		}
	}
	cs.refine(view)
	return cs, &view
}

// refine sets the class to the one most providers that enforce the rule
// reported (the account's links alone cannot tell vetting from sharing,
// nor see a node caught deleting), with its reasons.
func (cs *ClassStatus) refine(v ProvidersView) {
	if v.Answered == 0 {
		return
	}
	cs.AtProviders = v.classesWords()
	top := v.enforcing()
	if len(top) == 0 {
		return
	}
	switch cs.Class = top[0]; cs.Class {
	case "vetting":
		cs.Why = "a node of the account is linked both ways and answers, but the providers have not vetted one yet"
		cs.Change = "keep the node up and reachable: each provider vets it itself after 7 days of answering its probes and 10 passed audits of its test shard, and treats the account as a starter until then"
	case "zeroed":
		cs.Why = fmt.Sprintf("a node of the account lost shards it held: %d providers caught it deleting (by their own audits or owners' reports) on 3 days of the last 30", v.Classes["zeroed"])
		cs.Change = "nothing new is stored there until " + v.ZeroedUntil.UTC().Format(time.DateOnly) + "; what the account stored stays; run nodes that keep what they accept"
	}
}

// nodesStatus reads the account record and checks each node it lists. A
// network that cannot check nodes (memnet) lists their IDs only.
func (s *session) nodesStatus(ctx context.Context) ([]NodeStatus, error) {
	pub, err := s.mgr.Lookup(ctx, s.acct.ID())
	if err != nil {
		return nil, fmt.Errorf("read account record: %w", err)
	}
	out := make([]NodeStatus, len(pub.Nodes))
	nc, ok := s.net.(nodeChecker)
	if !ok {
		for i, id := range pub.Nodes {
			out[i] = NodeStatus{ID: id.String(), Connection: "not tried", RecordError: "this network cannot read node records",
				Uptime: NotMeasured, Audits: NotMeasured, Standing: NotMeasured}
		}
		return out, nil
	}
	for i, c := range nc.CheckNodes(ctx, s.acct.ID(), pub.Nodes, client.DefaultPunchWait) {
		out[i] = nodeStatusOf(c)
	}
	return out, nil
}

func nodeStatusOf(c client.NodeCheck) NodeStatus {
	ns := NodeStatus{
		ID: c.ID.String(), Record: c.Record, Linked: c.Linked, RelayedAddrs: c.Relayed,
		Shards: c.Shards, Counts: c.Answers(),
		Uptime: NotMeasured, Audits: NotMeasured, Standing: NotMeasured,
	}
	if c.RecordErr != nil {
		ns.RecordError = c.RecordErr.Error()
	}
	if c.Record {
		if c.Owner != "" {
			ns.Owner = c.Owner.String()
		}
		ns.OfferedGiB = client.BelievedCapacityGiB(c.Tier)
		ns.Reachability = string(c.Reach)
		for _, a := range c.Addrs {
			ns.Addrs = append(ns.Addrs, a.String())
		}
	}
	switch {
	case c.Path.Kind != "":
		ns.Connection = string(c.Path.Kind)
	case c.ConnErr != nil:
		ns.Connection, ns.ConnectError = "failed", c.ConnErr.Error()
	default:
		ns.Connection = "not tried"
	}
	return ns
}

// classOf tells the account's class at providers from its nodes, as
// provider.LinkLookup decides it, and what would change it.
func classOf(nodes []NodeStatus) ClassStatus {
	cs := ClassStatus{Class: "starter"}
	var linked, listed int
	for _, n := range nodes {
		if n.Counts {
			cs.Class = "sharing"
			cs.Own = append(cs.Own, n.ID)
		}
		if n.Linked {
			linked++
		}
		listed++
	}
	switch {
	case cs.Class == "sharing":
		cs.Why = fmt.Sprintf("linked both ways and answering with the shard protocol: %d of the account's %d nodes", len(cs.Own), listed)
		cs.Change = "each provider counts a linked node once it has vetted it itself (answering its probes on 7 days and passing 10 audits of its test shard) and treats the account as a starter until then; " +
			"then the account may store there a quarter of what its nodes earned (shared space, up to twice what other vetted accounts say a node keeps for them plus 2 GiB, times uptime; each maintenance round tells the providers what they keep for the account), and nothing new while one of them is caught deleting shards. " +
			"The account becomes a starter again at each provider that finds none of its nodes answering (by default providers look again every 30 minutes)"
	case listed == 0:
		cs.Why = "the account record lists no node"
		cs.Change = "link a node: run `jellyfish node --account-config <device cache from jellyfish account login>` on a machine that stays up; it names the account in its node record and lists itself in the account record, and providers then start watching the node (by default within 3 minutes: they look again that often while the account is a starter) and class the account as sharing once they have vetted it, after 7 days"
	case linked == 0:
		cs.Why = "the account record lists nodes, but no node record names the account"
		cs.Change = "run the nodes with `jellyfish node --account-config <device cache>` so that their records name the account"
	default:
		cs.Why = "the account's linked nodes do not answer from here (or do not serve shards)"
		cs.Change = "start a linked node (`jellyfish node --account-config ...`) and keep it reachable; providers check that one answers when they class the account (by default every 3 minutes while it is a starter)"
	}
	return cs
}

// Status is what `jellyfish status` shows of an account.
type Status struct {
	Account   string       `json:"account"`
	Device    string       `json:"device"`
	Allowance Allowance    `json:"allowance"`
	Class     ClassStatus  `json:"class"`
	Nodes     []NodeStatus `json:"nodes"`
	// Earned says what the account's nodes earned as the providers
	// measured it (§6.8, §6.12), in words; Providers is what they said.
	Earned      string         `json:"earned_allowance"`
	Providers   *ProvidersView `json:"providers,omitempty"`
	Lifetime    map[string]any `json:"lifetime"`
	RepairQueue map[string]int `json:"repair_queue"`
	// Errors says what could not be read.
	Errors []string `json:"errors,omitempty"`
}

// Status computes the account's Status: its allowance as About does, its
// nodes and class, its lifetime and repair queue as `backend status` does.
func (f *Fs) Status(ctx context.Context) (*Status, error) {
	return f.s.status(ctx)
}

func (s *session) status(ctx context.Context) (*Status, error) {
	st := &Status{Account: s.acct.ID().String(), Device: s.device.String(), Earned: "not reported: this network cannot ask providers"}
	a, err := s.allowance(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	st.Allowance = a
	nodes, err := s.nodesStatus(ctx)
	if err != nil {
		st.Errors = append(st.Errors, err.Error())
	}
	st.Nodes = nodes
	if st.Nodes == nil {
		st.Nodes = []NodeStatus{}
	}
	st.Class, st.Providers = s.classAtProviders(ctx, st.Nodes)
	if st.Providers != nil {
		st.Earned = st.Providers.earnedWords()
	}
	if err != nil {
		st.Class = ClassStatus{Class: "unknown", Why: "the account record could not be read: " + err.Error(), Change: "run it again"}
	}
	st.Lifetime = s.lifetimeStatus(ctx)
	segs, shards := s.repairs.stats()
	st.RepairQueue = map[string]int{"segments": segs, "shards": shards}
	return st, nil
}
