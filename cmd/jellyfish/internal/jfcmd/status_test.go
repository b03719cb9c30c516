package jfcmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config"
	"github.com/rclone/rclone/fs/config/configfile"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/nodestatus"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
)

// TestStatus runs `jellyfish status` on six real providers over loopback
// that keep at most 2 MiB for an account sharing no node and a quarter of
// their 256 MiB quota for one that shares. bob has no node: a starter,
// with about 6 × 2 MiB free in 2+2 segments. carol's account record lists
// node 5, run for her (its record names her, its provider counts her as
// its own), node 4, whose record names nobody, and a peer that has no
// record: node 5 shows as linked, with loopback addresses only and reachable directly, the
// others as not linked, and carol as sharing, with more free than the
// starter caps allow. For both, the status's used, free and total are
// about's, and the text says uptime and standing are not measured.
func TestStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a network")
	}
	const starter = 2 << 20
	var (
		mu    sync.Mutex
		owner []byte // node 5's owner, once carol exists
	)
	net := jftest.StartNetworkConfig(t, 6, provider.TestnetConfig{
		QuotaBytes: 256 << 20,
		Provider: func(i int, cfg *provider.Config) {
			cfg.Admission = provider.AdmissionConfig{StarterBytes: starter}
			if i == 5 {
				mu.Lock()
				cfg.Owner = owner
				mu.Unlock()
			}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bob := net.CreateAccount(t, "bob")
	carol := net.CreateAccount(t, "carol")

	// Link carol's node both ways before her first put: providers cache
	// an account's class for minutes.
	c, err := client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: bootAddrs(t, net)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mgr := account.NewManager(c.Records(), account.InsecureTestKDF())
	a, err := mgr.Login(ctx, account.Username(carol.User), carol.Password)
	if err != nil {
		t.Fatal(err)
	}
	stranger := newPeerID(t)
	linked, unlinked := net.Net.ID(5), net.Net.ID(4)
	for _, id := range []peer.ID{linked, unlinked, stranger} {
		if _, err := mgr.Update(ctx, a, account.AddNode(id)); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	owner = []byte(a.ID())
	mu.Unlock()
	if err := net.Net.Restart(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if err := net.Fleet.Provider(5).Publish(ctx); err != nil {
		t.Fatal(err)
	}

	conf := filepath.Join(t.TempDir(), "rclone.conf")
	body := "[bob]\n" + bob.RemoteConfig(t, map[string]string{"data_shards": "2", "parity_shards": "2"}) +
		"\n[carol]\n" + carol.RemoteConfig(t, map[string]string{"data_shards": "2", "parity_shards": "2"})
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := config.SetConfigPath(conf); err != nil {
		t.Fatal(err)
	}
	configfile.Install()

	// status gathers the report of remote and checks that its numbers are
	// about's on the same session.
	status := func(remote string) statusReport {
		t.Helper()
		f, err := fs.NewFs(ctx, remote)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := statusOf(ctx, f.(*jellyfish.Fs), remote, "")
		if err != nil {
			t.Fatal(err)
		}
		u, err := f.Features().About(ctx)
		if err != nil {
			t.Fatal(err)
		}
		al := rep.Status.Allowance
		if u.Used == nil || u.Free == nil || u.Total == nil || !al.Known ||
			al.Used != *u.Used || al.Free != *u.Free || al.Total != *u.Total || al.Total != al.Used+al.Free {
			t.Fatalf("%s: status allowance %+v, about %+v", remote, al, u)
		}
		if al.From != "providers" || al.Answered != 6 {
			t.Fatalf("%s: allowance from %q, %d of %d providers", remote, al.From, al.Answered, al.Asked)
		}
		return rep
	}

	b := status("bob:")
	if b.Status.Class.Class != "starter" || len(b.Status.Nodes) != 0 || !strings.Contains(b.Status.Class.Change, "jellyfish node --account-config") {
		t.Fatalf("bob: class %+v, nodes %+v", b.Status.Class, b.Status.Nodes)
	}
	var bt bytes.Buffer
	writeStatus(&bt, b)
	t.Logf("jellyfish status bob:\n%s", bt.String())
	for _, want := range []string{
		fmt.Sprintf("  free:  %s\n", sizeOf(b.Status.Allowance.Free)),
		"class at providers: starter\n",
		"  why: the account record lists no node\n",
		"  to change it: link a node: run `jellyfish node --account-config",
		"nodes in the account record: 0\n",
	} {
		if !strings.Contains(bt.String(), want) {
			t.Fatalf("status text of bob lacks %q", want)
		}
	}
	// Six providers keep 2 MiB each; 2+2 segments use them all. The
	// account's metadata already takes a little.
	if free := b.Status.Allowance.Free; free > 6*starter || free < 6*starter-(1<<20) {
		t.Fatalf("bob: free %d, the providers keep 6 × %d", free, starter)
	}

	cs := status("carol:")
	st := cs.Status
	// Carol's node 5 is linked and answers, but no provider has watched
	// it for the 7 days vetting takes: vetting at the five others, own at
	// node 5 itself, whose whole quota makes her free more than bob's.
	if st.Class.Class != "vetting" || len(st.Class.Own) != 1 || st.Class.Own[0] != linked.String() ||
		st.Class.AtProviders != "vetting at 5, own at 1 (of 6 providers answering, 6 asked)" || !strings.Contains(st.Class.Change, "7 days") {
		t.Fatalf("carol: class %+v", st.Class)
	}
	if free := st.Allowance.Free; free <= 6*starter {
		t.Fatalf("carol: free %d, no more than bob's", free)
	}
	if st.Providers == nil || st.Providers.Answered != 6 || !strings.HasPrefix(st.Earned, "nothing yet: no provider has vetted") {
		t.Fatalf("carol: earned %q, providers %+v", st.Earned, st.Providers)
	}
	if len(st.Nodes) != 3 {
		t.Fatalf("carol: nodes %+v", st.Nodes)
	}
	n5, n4, nx := st.Nodes[0], st.Nodes[1], st.Nodes[2]
	if n5.ID != linked.String() || !n5.Record || !n5.Linked || n5.Reachability != "local only" || n5.Connection != "direct" || !n5.Shards || !n5.Counts {
		t.Fatalf("linked node: %+v", n5)
	}
	if n4.ID != unlinked.String() || !n4.Record || n4.Linked || n4.Owner != "" || n4.Counts {
		t.Fatalf("node naming nobody: %+v", n4)
	}
	if nx.ID != stranger.String() || nx.Record || nx.Linked || nx.Connection != "not tried" || nx.Counts {
		t.Fatalf("node without a record: %+v", nx)
	}
	// The five providers enforcing the rule watch node 5 since they
	// classed carol; nothing is known of it yet. Nodes not linked are not
	// watched.
	if !strings.HasPrefix(n5.Standing, "unknown at 5 of 5 providers watching it") || !strings.HasPrefix(n5.Uptime, "not known yet") ||
		!strings.HasPrefix(n5.Audits, "0 passed, 0 failed") {
		t.Fatalf("node 5: uptime %q, audits %q, standing %q", n5.Uptime, n5.Audits, n5.Standing)
	}
	for _, n := range []jellyfish.NodeStatus{n4, nx} {
		if n.Uptime != jellyfish.NotMeasured || n.Standing != jellyfish.NotMeasured || n.Audits != jellyfish.NotMeasured {
			t.Fatalf("node %s: uptime %q, audits %q, standing %q", n.ID, n.Uptime, n.Audits, n.Standing)
		}
	}

	// The command itself, in text and in JSON (it closes the session).
	var text bytes.Buffer
	if err := runStatus(ctx, &text, statusOptions{}, "carol:"); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	t.Logf("jellyfish status carol:\n%s", out)
	for _, want := range []string{
		fmt.Sprintf("  free:  %s\n", sizeOf(st.Allowance.Free)),
		fmt.Sprintf("  total: %s\n", sizeOf(st.Allowance.Total)),
		"class at providers: vetting\n",
		"  as the providers say: vetting at 5, own at 1",
		"  node " + linked.String() + "\n    linked:       yes, both ways",
		"    reachable:    yes, directly\n",
		"    linked:       no: its node record names no account\n",
		"  node " + stranger.String() + "\n    linked:       no: no node record found",
		"    standing:     " + jellyfish.NotMeasured + "\n",
		"    standing:     unknown at 5 of 5 providers watching it",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("status text lacks %q", want)
		}
	}
	var js bytes.Buffer
	if err := runStatus(ctx, &js, statusOptions{json: true}, "bob:"); err != nil {
		t.Fatal(err)
	}
	var rep statusReport
	if err := json.Unmarshal(js.Bytes(), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, js.String())
	}
	if rep.Status.Class.Class != "starter" || rep.Status.Allowance.Free != b.Status.Allowance.Free || rep.Status.Account != b.Status.Account {
		t.Fatalf("status --json of bob: %+v, before %+v", rep.Status, b.Status)
	}
}

func bootAddrs(t *testing.T, net *jftest.Network) []ma.Multiaddr {
	t.Helper()
	var out []ma.Multiaddr
	for _, s := range strings.Fields(net.Bootstrap()) {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func newPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestStatusLocalNode: the node on this machine is read from its
// status.json and shown under its own heading; without one, status says
// that none answers.
func TestStatusLocalNode(t *testing.T) {
	snap := nodestatus.Snapshot{
		Node:    nodestatus.NodeInfo{ID: "12D3KooWLocal", Account: "alice 12D3KooWAlice", UptimeSeconds: 3723},
		Storage: nodestatus.Storage{QuotaBytes: 8 << 30, UsedBytes: 3 << 20, Shards: 5, Owners: 2},
		Service: nodestatus.ShardService{AuditsAnswered: 7},
		Network: nodestatus.Network{Reachability: "private", RelayAddrs: 2},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status.json" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(snap)
	}))
	defer srv.Close()
	ctx := context.Background()
	got, err := readLocalNode(ctx, srv.URL+"/status.json")
	if err != nil {
		t.Fatal(err)
	}
	st := &jellyfish.Status{Account: "12D3KooWAlice", Class: jellyfish.ClassStatus{Class: "starter"}}
	var out bytes.Buffer
	writeStatus(&out, statusReport{Remote: "jellyfish:", Status: st, Local: got})
	for _, want := range []string{
		"\nnode on this machine (its status page)\n",
		"  id:           12D3KooWLocal\n",
		"  account:      alice 12D3KooWAlice\n",
		"  running for:  1h2m3s\n",
		"  reachability: private (AutoNAT); 2 relayed addresses\n",
		"  storage:      3 MiB (3145728 bytes) of 8 GiB (8589934592 bytes) used, 5 shards for 2 accounts\n",
		"  audits:       7 answered (as the node counts them)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("status text lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := readLocalNode(ctx, srv.URL+"/nothing"); err == nil {
		t.Fatal("a 404 read as a node's status")
	}
	srv.Close()
	_, err = readLocalNode(ctx, srv.URL+"/status.json")
	if err == nil {
		t.Fatal("a closed server read as a node's status")
	}
	out.Reset()
	writeStatus(&out, statusReport{Remote: "jellyfish:", Status: st, LocalError: err.Error()})
	if !strings.Contains(out.String(), "\nnode on this machine: none (no node answers at "+srv.URL+"/status.json)\n") {
		t.Fatalf("status text without a local node:\n%s", out.String())
	}
}
