package nodestatus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/nodestatus"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/testnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/timeproto"
)

func TestCheckAddr(t *testing.T) {
	for _, c := range []struct {
		addr     string
		public   bool
		loopback bool // refused as not loopback
		bad      bool // refused as malformed
	}{
		{addr: "127.0.0.1:7781"}, {addr: "[::1]:7781"}, {addr: "localhost:0"}, {addr: "127.0.0.2:1"},
		{addr: ":7781", loopback: true}, {addr: "0.0.0.0:7781", loopback: true}, {addr: "192.168.1.2:80", loopback: true},
		{addr: "[::]:7781", loopback: true}, {addr: "example.com:80", loopback: true},
		{addr: "0.0.0.0:7781", public: true}, {addr: ":80", public: true},
		{addr: "127.0.0.1", bad: true}, {addr: "", bad: true},
	} {
		err := nodestatus.CheckAddr(c.addr, c.public)
		switch {
		case c.loopback && !errors.Is(err, nodestatus.ErrNotLoopback),
			c.bad && (err == nil || errors.Is(err, nodestatus.ErrNotLoopback)),
			!c.loopback && !c.bad && err != nil:
			t.Errorf("CheckAddr(%q, %v): %v", c.addr, c.public, err)
		}
	}
}

// get fetches url with Host header host ("" leaves it) and returns the
// status code and body.
func get(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestStatusShowsNodeState runs two provider nodes of a three-node
// network in one process, each with its own status server, stores and
// audits a shard on node 0 from node 2, and checks that node 0's
// status.json, metrics and page show it, along with the node's identity,
// peers, records, clock and rounds.
func TestStatusShowsNodeState(t *testing.T) {
	// Node 0 applies the admission rule: a starter may hold 1 MiB there,
	// all starters together an eighth of its 8 MiB.
	fleet := provider.NewFleet(provider.TestnetConfig{QuotaBytes: 8 << 20, Provider: func(i int, cfg *provider.Config) {
		if i == 0 {
			cfg.Admission = provider.AdmissionConfig{StarterBytes: 1 << 20}
		}
	}})
	nw := testnet.New(t, 3, fleet.Options())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := nw.WaitRoutingTables(ctx, 2); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	clk := timeproto.NewCorrected(nil)
	if _, err := clk.Estimate(ctx, nw.Node(0).ClockOffset); err == nil {
		t.Fatal("a clock estimate from two peers succeeded; want three")
	}
	var urls []string
	var statuses []*nodestatus.Status
	for i := range 2 {
		cfg := nodestatus.Config{Node: nw.Node(i), Provider: fleet.Provider(i), Version: "test", CollectInterval: time.Hour}
		if i == 0 {
			cfg.Clock, cfg.Account = clk, "alice 12D3KooTest"
		}
		st, err := nodestatus.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		srv, err := nodestatus.Serve("127.0.0.1:0", false, st, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		urls = append(urls, "http://"+srv.Addr().String())
		statuses = append(statuses, st)
	}
	maint := statuses[0].Round("maintenance", 24*time.Hour)
	statuses[0].Round("caretaker", 12*time.Hour) // never run

	// Node 2 stores a shard on node 0 as an owner, audits it twice and
	// is refused a shard beyond node 0's quota.
	ownerKey, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := shardproto.NewClient(nw.Node(2).Host(), ownerKey)
	if err != nil {
		t.Fatal(err)
	}
	holder := nw.ID(0)
	data := []byte(strings.Repeat("status page shard ", 500))
	id := codec.IDOf(data)
	if _, err := c.Put(ctx, holder, id, data, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var salt [32]byte
	if _, err := c.Challenge(ctx, holder, id, salt); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Proof(ctx, holder, id, []int64{0}); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 9<<20)
	if _, err := c.Put(ctx, holder, codec.IDOf(big), big, time.Now().Add(time.Hour)); !errors.Is(err, shardproto.ErrQuotaExceeded) {
		t.Fatalf("put beyond the quota: %v", err)
	}
	if _, err := fleet.Provider(0).Observe(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := fleet.Provider(0).Collect(ctx); err != nil {
		t.Fatal(err)
	}
	maint.Done(time.Now().Add(-2*time.Second), map[string]any{"renewed": 3, "lease_until": "2030-01-01"}, errors.New("1 holder unreachable"))

	code, body := get(t, urls[0]+"/status.json", "")
	if code != http.StatusOK {
		t.Fatalf("status.json: %d %s", code, body)
	}
	var s nodestatus.Snapshot
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	if s.Node.ID != holder.String() || s.Node.Version != "test" || s.Node.ShardProtocol != shardproto.ID || s.Node.Account != "alice 12D3KooTest" || s.Node.UptimeSeconds <= 0 || s.Node.DHTMode != "server" {
		t.Errorf("node %+v", s.Node)
	}
	if st := s.Storage; st.Shards != 1 || st.UsedBytes != int64(len(data)) || st.QuotaBytes != 8<<20 || st.FreeBytes != 8<<20-int64(len(data)) || st.Owners != 1 || st.ReservedBytes != 0 {
		t.Errorf("storage %+v", st)
	}
	if st := s.Storage; st.HeldByClass["starter"] != int64(len(data)) || st.HeldByClass["sharing"] != 0 || st.StarterShareBytes != 1<<20 ||
		!strings.Contains(st.Admission, "one that shares none, or no node vetted here yet, up to 1 MiB, and all of those together up to 1 MiB; the test shards of the 0 providers holding the linked account's shards up to 256 KiB each, outside that share; shards rebuilt by an account's repair up to 25 % past these") || st.TrustedObservers != 0 {
		t.Errorf("admission on the status: %q, held %v, starters' share %d", st.Admission, st.HeldByClass, st.StarterShareBytes)
	}
	sv := s.Service
	if sv.Puts != 1 || sv.PutBytes != int64(len(data)) || sv.NewShards != 1 || sv.AuditsAnswered != 2 || sv.Refused != 1 || sv.PutsInFlight != 0 {
		t.Errorf("shard service %+v", sv)
	}
	want := map[string]int64{"put ok": 1, "put quota_exceeded": 1, "challenge ok": 1, "proof ok": 1}
	for _, a := range sv.Answers {
		if want[a.Request+" "+a.Status] != a.Count {
			t.Errorf("answers %+v, want %v", sv.Answers, want)
			break
		}
		delete(want, a.Request+" "+a.Status)
	}
	if len(want) != 0 {
		t.Errorf("answers %+v lack %v", sv.Answers, want)
	}
	nwk := s.Network
	if nwk.PeersConnected < 2 || nwk.RoutingTablePeers < 2 || nwk.Connections < 2 || nwk.RelayedConnections != 0 || nwk.Reachability != "unknown" ||
		!strings.Contains(nwk.ReachabilityNote, "AutoNAT") || nwk.HolePunching != "not enabled" || nwk.PublicAddrs != 0 ||
		len(nwk.AnnouncedAddrs) == 0 || !strings.HasSuffix(nwk.AnnouncedAddrs[0], "/p2p/"+holder.String()) {
		t.Errorf("network %+v", nwk)
	}
	// Every connected peer is listed, directly connected (no punch, no
	// relay on loopback).
	if len(nwk.Paths) != nwk.PeersConnected || nwk.PathsOmitted != 0 {
		t.Errorf("paths %+v for %d peers", nwk.Paths, nwk.PeersConnected)
	}
	for _, p := range nwk.Paths {
		if p.Path != "direct" || !strings.HasPrefix(p.Addr, "/ip4/127.0.0.1/") {
			t.Errorf("path %+v", p)
		}
	}
	if s.Records.Records < 1 || s.Records.Marks < 1 {
		t.Errorf("records %+v", s.Records)
	}
	if s.Clock == nil || s.Clock.NetworkOffsetSeconds != nil || s.Clock.Error == "" || s.Clock.CorrectionSeconds != 0 || s.Clock.InDoubt {
		t.Errorf("clock %+v", s.Clock)
	}
	// Peers that put the clock a year off: in doubt, on the JSON and the
	// page.
	yearOff := func(context.Context, func() time.Time) (time.Duration, []timeproto.Sample, error) {
		return 365 * 24 * time.Hour, make([]timeproto.Sample, 5), nil
	}
	if _, err := clk.Estimate(ctx, yearOff); err != nil {
		t.Fatal(err)
	}
	var doubted nodestatus.Snapshot
	if _, body := get(t, urls[0]+"/status.json", ""); json.Unmarshal([]byte(body), &doubted) != nil || doubted.Clock == nil || !doubted.Clock.InDoubt {
		t.Errorf("clock a year off: %+v", doubted.Clock)
	}
	if _, page := get(t, urls[0]+"/", ""); !strings.Contains(page, `id="clock-doubt"`) {
		t.Error("the page does not say the clock is in doubt")
	}
	if s.Allowance != nodestatus.NotComputed || s.Standing != nodestatus.NotComputed {
		t.Errorf("allowance %q, standing %q", s.Allowance, s.Standing)
	}
	if len(s.Rounds) != 4 {
		t.Fatalf("rounds %+v", s.Rounds)
	}
	if r := s.Rounds[3]; r.Name != "observation" || r.Runs != 1 || r.IntervalSeconds != 60 || r.LastFigures["nodes_watched"] != float64(0) || r.LastFigures["skipped"] != false {
		t.Errorf("observation round %+v", r)
	}
	if r := s.Rounds[0]; r.Name != "collection" || r.Runs != 1 || r.Failed != 0 || r.LastStart == nil || r.IntervalSeconds != 3600 || r.LastFigures["shards_removed"] != float64(0) {
		t.Errorf("collection round %+v", r)
	}
	if r := s.Rounds[1]; r.Name != "maintenance" || r.Runs != 1 || r.Failed != 1 || r.LastError != "1 holder unreachable" || r.LastFigures["renewed"] != float64(3) || r.LastTookSeconds < 2 {
		t.Errorf("maintenance round %+v", r)
	}
	if r := s.Rounds[2]; r.Name != "caretaker" || r.Runs != 0 || r.LastStart != nil {
		t.Errorf("caretaker round %+v", r)
	}

	code, metrics := get(t, urls[0]+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	for _, line := range []string{
		"jellyfish_shards_held 1",
		fmt.Sprintf("jellyfish_storage_used_bytes %d", len(data)),
		`jellyfish_shard_requests_total{request="put",status="ok"} 1`,
		`jellyfish_shard_requests_total{request="put",status="quota_exceeded"} 1`,
		"jellyfish_shard_audits_answered_total 2",
		`jellyfish_reachability{state="unknown"} 1`,
		`jellyfish_round_runs_total{round="collection"} 1`,
		`jellyfish_round_failures_total{round="maintenance"} 1`,
		`jellyfish_round_last_figure{figure="renewed",round="maintenance"} 3`,
		`jellyfish_node_info{peer_id="` + holder.String() + `",shard_protocol="` + shardproto.ID + `",version="test"} 1`,
		"# TYPE jellyfish_shard_puts_total counter",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(metrics, "\n"+line) {
			t.Errorf("metrics lack %q", line)
		}
	}
	if strings.Contains(metrics, "lease_until") {
		t.Error("a round's text figure made a metric")
	}

	// Node 1's server is its own: no shard, and its own ID.
	_, body = get(t, urls[1]+"/status.json", "")
	var s1 nodestatus.Snapshot
	if err := json.Unmarshal([]byte(body), &s1); err != nil || s1.Node.ID != nw.ID(1).String() || s1.Storage.Shards != 0 || s1.Clock != nil || s1.Node.Account != "none" {
		t.Errorf("node 1: %+v %v", s1, err)
	}
	_, m1 := get(t, urls[1]+"/metrics", "")
	if !strings.Contains(m1, "\njellyfish_shards_held 0") {
		t.Error("node 1's metrics")
	}

	code, html := get(t, urls[0]+"/", "")
	if code != http.StatusOK {
		t.Fatalf("page: %d", code)
	}
	for _, s := range []string{holder.String(), "Shards held", `id="path-` + nw.ID(1).String() + `"`, ">1<", "not yet computed", "quota_exceeded", "1 holder unreachable", "not run yet",
		"Other accounts may store", "8.8 KiB of 1.0 MiB"} {
		if !strings.Contains(html, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if strings.Contains(html, "<script") {
		t.Error("the page has a script")
	}
	if code, _ := get(t, urls[0]+"/", "rebound.example.com"); code != http.StatusForbidden {
		t.Errorf("a request for another host name: %d, want 403", code)
	}
	if code, _ := get(t, urls[0]+"/", "localhost:7781"); code != http.StatusOK {
		t.Errorf("a request for localhost: %d", code)
	}
	if code, _ := get(t, urls[0]+"/nothing", ""); code != http.StatusNotFound {
		t.Errorf("an unknown path: %d", code)
	}
}

// TestServeRefusesPublicAddr: Serve refuses an address other machines
// reach unless told it is meant.
func TestServeRefusesPublicAddr(t *testing.T) {
	if _, err := nodestatus.Serve("0.0.0.0:0", false, nil, nil); !errors.Is(err, nodestatus.ErrNotLoopback) {
		t.Fatalf("Serve on 0.0.0.0: %v", err)
	}
}
