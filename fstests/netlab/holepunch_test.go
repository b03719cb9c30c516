package netlab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/fstests/netlab"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/nodestatus"
)

// TestHolePunch: a node behind a port-restricted NAT that forwards nothing
// finds itself private, takes a relay reservation on a public node and
// publishes the relayed address in its node record; a client behind
// another such NAT reaches it through the relay, the hole punch connects
// them directly, and test shards go over that direct connection. Behind
// symmetric NATs (a new port per destination) the punch cannot work:
// the client reaches the node through the relay only, says so, and no
// shard goes through the relay. `jellyfish status` from both clients
// shows the account's node behind the port-restricted NAT as relayed
// (hole-punched from the first client, through the relay only from the
// second) and its public node as public and dialled directly. make test
// runs HOLEPUNCH_RUNS (default 3) clients; make bench-wan runs 20 and
// prints `wan holepunch: direct=D of 20`.
func TestHolePunch(t *testing.T) {
	if testing.Short() {
		t.Skip("a ten-host network")
	}
	runs := envInt(t, "HOLEPUNCH_RUNS", 3)
	send := envSize(t, "HOLEPUNCH_SEND", 16<<20)
	lab := netlab.New(t)
	var pubs []*netlab.Host
	for i := range 5 {
		pubs = append(pubs, lab.Public(fmt.Sprintf("pub%d", i+1)))
	}
	nodeHome := lab.Home("punched", netlab.PortRestricted)
	clientHome := lab.Home("client", netlab.PortRestricted)
	symNodeHome := lab.Home("symnode", netlab.Symmetric)
	symClientHome := lab.Home("symclient", netlab.Symmetric)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	providers, boot := startProviders(t, ctx, pubs)
	var all []string
	for _, b := range boot {
		all = append(all, "--bootstrap", b)
	}
	// dora's account exists first: the node behind the port-restricted
	// router runs for her (--account-config), so her `jellyfish status`
	// lists it.
	remote := newRemote(t, ctx, clientHome, "dora", boot, 4, 2)
	cache := loginCache(t, ctx, clientHome, "dora", boot)
	// Tier 1 (2 GiB): room for the test shards however the node admits a
	// throw-away key.
	punched := nodeHome.StartNode(t, bin, append([]string{"--tier", "1", "--account-config", cache}, all...)...)
	symNode := symNodeHome.StartNode(t, bin, append([]string{"--tier", "1"}, all...)...)
	waitRelayed(t, ctx, punched, symNode)

	ping := func(h *netlab.Host, n *netlab.Node, size int64) map[string]string {
		t.Helper()
		args := append([]string{"ping", n.ID, "--count", "2", "--timeout", "3m"}, all...)
		if size > 0 {
			args = append(args, "--send", strconv.FormatInt(size, 10)+"B")
		}
		stdout, stderr, err := jfExit(t, ctx, h, nil, args...)
		t.Logf("ping %s from %s:\n%s%s", n.Host.Name, h.Name, stdout, stderr)
		if err != nil {
			// A punch that failed leaves only the relay, which --send
			// refuses: that run counts as not direct.
			if size > 0 && strings.Contains(stdout+stderr, "no direct connection") {
				return map[string]string{"path": "relayed"}
			}
			t.Fatalf("jellyfish %s: %v", strings.Join(args, " "), err)
		}
		return resultLine(t, stdout)
	}
	// The same transfer to a public node, dialled directly: the baseline.
	base := ping(clientHome, providers[1], send)
	if base["path"] != "direct" {
		t.Fatalf("path to a public node: %s", base["path"])
	}
	direct := 0
	for i := range runs {
		r := ping(clientHome, punched, send)
		switch r["path"] {
		case "hole-punched":
			direct++
			if r["sent"] != strconv.FormatInt(send, 10) {
				t.Errorf("run %d: sent %s bytes, want %d", i+1, r["sent"], send)
			}
		case "direct":
			t.Fatalf("run %d: the client dialled the node behind a NAT that forwards nothing directly", i+1)
		}
	}
	fmt.Printf("wan holepunch: direct=%d of %d\n", direct, runs)
	// The goal is 18 of 20; fewer than all in a short run is reported,
	// and none at all fails.
	if direct == 0 || runs >= 20 && direct < 18 {
		t.Fatalf("hole punched %d of %d times", direct, runs)
	}
	s, err := punched.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Network.HolePunches.Succeeded == 0 {
		t.Errorf("the node's status counts no hole punch it started: %+v (%s)", s.Network.HolePunches, s.Network.HolePunching)
	}
	t.Logf("node status: %s", s.Network.HolePunching)

	// A client behind a port-restricted router stores files with one
	// shard of each segment on each of six providers: placement finds the
	// punched node through the relays that hold its reservations, reaches
	// it by a hole punch and gives it its share; the node behind a
	// symmetric NAT, which no punch reaches, gets nothing. A punch that
	// the NATs allow still fails now and then (the goal above is 18 of
	// 20), and each upload process punches once, so three uploads, each
	// its own process, must give the punched node shards at least once
	// (all three fail about once in 8,000 runs at 1 in 20).
	src := t.TempDir()
	const uploads = 3
	gave := 0
	for u := range uploads {
		data := make([]byte, 2<<20)
		for i := range data {
			data[i] = byte(i*13/7 + u)
		}
		name := fmt.Sprintf("f%d.bin", u)
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if s, err = punched.Status(ctx); err != nil {
			t.Fatal(err)
		}
		before := s.Storage.Shards
		jf(t, ctx, clientHome, remote, "copyto", filepath.Join(src, name), "jellyfish:h/"+name, "--jellyfish-data-dir", t.TempDir())
		if s, err = punched.Status(ctx); err != nil {
			t.Fatal(err)
		}
		if s.Storage.Shards > before {
			gave++
		}
	}
	t.Logf("placement gave the hole-punched node shards in %d of %d uploads", gave, uploads)
	if gave == 0 {
		t.Fatalf("placement gave the hole-punched node no shard in %d uploads", uploads)
	}
	ss, err := symNode.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ss.Storage.Shards != 0 {
		t.Fatalf("the node behind a symmetric NAT holds %d shards", ss.Storage.Shards)
	}
	_, out := jf(t, ctx, clientHome, remote, "check", src, "jellyfish:h", "--download", "--jellyfish-data-dir", t.TempDir())
	if !strings.Contains(out, " 0 differences found") {
		t.Fatalf("check --download:\n%s", out)
	}
	t.Logf("the hole-punched node holds %d shards", s.Storage.Shards)

	// `jellyfish status` shows each of dora's nodes as the network sees
	// it: the one behind the port-restricted router relayed, reached by a
	// hole punch from a client behind another such router and through the
	// relay only from one behind a symmetric NAT; a public one public and
	// dialled directly from both.
	pubNode := lab.Public("pub6").StartNode(t, bin, "--account-config", cache, "--bootstrap", boot[0])
	for _, n := range []*netlab.Node{punched, pubNode} {
		for !strings.Contains(n.Log(), "node listed in the account record") || !strings.Contains(n.Log(), `msg="node record published"`) {
			if strings.Contains(n.Log(), "could not add this node") || strings.Contains(n.Log(), "node not listed") {
				t.Fatalf("%s did not list itself in dora's account record:\n%s", n.Host.Name, n.Log())
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s never listed itself in dora's account record:\n%s", n.Host.Name, n.Log())
			case <-time.After(time.Second):
			}
		}
	}
	for _, c := range []struct {
		h       *netlab.Host
		punched string
	}{{clientHome, "hole-punched"}, {symClientHome, "relayed"}} {
		st := accountStatus(t, ctx, c.h, remote)
		if st.Class.Class != "sharing" || len(st.Nodes) != 2 {
			t.Fatalf("status from %s: class %+v, nodes %+v", c.h.Name, st.Class, st.Nodes)
		}
		for _, n := range st.Nodes {
			want := map[string][2]string{punched.ID: {"relayed", c.punched}, pubNode.ID: {"public", "direct"}}[n.ID]
			if !n.Linked || n.Reachability != want[0] || n.Connection != want[1] || !n.Shards {
				t.Fatalf("status from %s: node %s: %+v, want linked, %s addresses and a %s connection", c.h.Name, n.ID, n, want[0], want[1])
			}
		}
	}

	// Symmetric NATs on both sides: the relay connects them, nothing
	// more; a transfer is refused rather than sent through the relay.
	args := append([]string{"ping", symNode.ID, "--count", "1", "--send", "1MiB", "--timeout", "3m"}, all...)
	cmd := symClientHome.Command(bin, args...)
	cmd.Env = os.Environ()
	pout, err := cmd.CombinedOutput()
	t.Logf("ping %s from %s:\n%s", symNode.Host.Name, symClientHome.Name, pout)
	if err == nil || !strings.Contains(string(pout), "no direct connection (the NATs on the way allow no hole punch)") ||
		!strings.Contains(string(pout), "round trip 1:") {
		t.Fatalf("behind symmetric NATs: err %v; want the node reached through the relay and the transfer refused", err)
	}

	pathFlips(t, ctx, all, punched, clientHome)
}

// pathFlips: the status page of n, a node behind a port-restricted
// router, lists a client pinging it from behind another (once a second)
// as hole-punched; when n's router then drops everything to and from the
// client's router, the direct connection dies and the page lists the
// client as relayed or not at all. Both page loads must agree with
// /status.json read just before or after.
func pathFlips(t *testing.T, ctx context.Context, boot []string, n *netlab.Node, client *netlab.Host) {
	t.Helper()
	chrome := chromiumPath(t)
	fromClient := "/ip4/" + client.PublicIP + "/"
	paths := func() map[string]nodestatus.PeerPath {
		s, err := n.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]nodestatus.PeerPath{}
		for _, p := range s.Network.Paths {
			out[p.Peer] = p
		}
		return out
	}
	before := paths()
	cmd := client.Command(bin, append([]string{"ping", n.ID, "--count", "600", "--interval", "1s", "--timeout", "10m"}, boot...)...)
	cmd.Env = os.Environ()
	var out netlab.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		t.Logf("ping from %s while its path was cut:\n%s", client.Name, out.String())
	}()
	var peerID string
	for deadline := time.Now().Add(90 * time.Second); peerID == ""; {
		for id, p := range paths() {
			if _, old := before[id]; !old && p.Path == "hole-punched" && strings.Contains(p.Addr, fromClient) {
				peerID = id
			}
		}
		if peerID != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listed the pinging client as hole-punched: %v\n%s", n.Host.Name, paths(), out.String())
		}
		time.Sleep(time.Second)
	}
	if got := pagePath(t, chrome, n, peerID); chrome != "" && got != "hole-punched" {
		t.Fatalf("the page lists the client as %q, want hole-punched", got)
	}

	for _, dir := range []string{"-s", "-d"} {
		if out, err := exec.Command("ip", "netns", "exec", n.Host.Router, "iptables", "-I", "FORWARD", "1", dir, client.PublicIP, "-j", "DROP").CombinedOutput(); err != nil {
			t.Fatalf("cut the path: %v: %s", err, out)
		}
	}
	cut := time.Now()
	for {
		p, ok := paths()[peerID]
		if !ok || p.Path == "relayed" {
			t.Logf("%v after the cut the client is %s", time.Since(cut).Round(time.Second), map[bool]string{true: "relayed", false: "gone"}[ok])
			break
		}
		if time.Since(cut) > 3*time.Minute {
			t.Fatalf("3 minutes after the cut the client is still %+v", p)
		}
		time.Sleep(2 * time.Second)
	}
	if got := pagePath(t, chrome, n, peerID); got != "relayed" && got != "" {
		t.Fatalf("after the cut the page lists the client as %q", got)
	}
}

// waitRelayed waits until each node is private, serves no DHT and gives
// at least one relayed address.
func waitRelayed(t *testing.T, ctx context.Context, nodes ...*netlab.Node) {
	t.Helper()
	start := time.Now()
	for _, n := range nodes {
		for {
			s, err := n.Status(ctx)
			if err != nil {
				t.Fatalf("status of %s: %v", n.Host.Name, err)
			}
			// The node record carries the relayed addresses a few
			// seconds after the node has them.
			if s.Network.Reachability == "private" && s.Node.DHTMode == "client" && s.Network.RelayAddrs > 0 &&
				publishedRelayed.MatchString(n.Log()) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: reachability %s, DHT %s, %d relayed addresses (%s)", n.Host.Name,
					s.Network.Reachability, s.Node.DHTMode, s.Network.RelayAddrs, s.Network.HolePunching)
			case <-time.After(2 * time.Second):
			}
		}
	}
	t.Logf("nodes private with relay reservations after %v", time.Since(start).Round(time.Second))
	for _, n := range nodes {
		if s, err := n.Status(ctx); err == nil {
			t.Logf("%s announces %v", n.Host.Name, s.Network.AnnouncedAddrs)
		}
	}
}

var publishedRelayed = regexp.MustCompile(`msg="node record published".* relayed=[1-9]`)

var resultRE = regexp.MustCompile(`(?m)^result: (.*)$`)

// resultLine parses `jellyfish ping`'s last line.
func resultLine(t *testing.T, out string) map[string]string {
	t.Helper()
	m := resultRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no result line in:\n%s", out)
	}
	r := map[string]string{}
	for _, f := range strings.Fields(m[1]) {
		k, v, _ := strings.Cut(f, "=")
		r[k] = v
	}
	return r
}

// loginCache logs user in from h (`jellyfish account login`) and returns
// the device cache it writes: what `jellyfish node --account-config` reads.
func loginCache(t *testing.T, ctx context.Context, h *netlab.Host, user string, boot []string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"account", "login", "--insecure-test-kdf", "--config-dir", dir, "--username", user}
	for _, b := range boot {
		args = append(args, "--bootstrap", b)
	}
	jf(t, ctx, h, []string{"JELLYFISH_PASSWORD=" + password, "HOME=" + t.TempDir()}, args...)
	return filepath.Join(dir, "accounts", user+".json")
}

// nodeState is a node of `jellyfish status --json`.
type nodeState struct {
	ID           string `json:"id"`
	Linked       bool   `json:"linked"`
	Reachability string `json:"reachability"`
	Connection   string `json:"connection"`
	Shards       bool   `json:"shard_protocol"`
}

// accountState is the part of `jellyfish status --json` the tests read.
type accountState struct {
	Class struct {
		Class string `json:"class"`
	} `json:"class"`
	Nodes []nodeState `json:"nodes"`
}

// accountStatus runs `jellyfish status --json` on h for the remote env
// configures.
func accountStatus(t *testing.T, ctx context.Context, h *netlab.Host, env []string) accountState {
	t.Helper()
	out, _ := jf(t, ctx, h, env, "status", "jellyfish:", "--json", "--local-node", "", "--jellyfish-data-dir", t.TempDir())
	var rep struct {
		Status accountState `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json from %s: %v\n%s", h.Name, err, out)
	}
	t.Logf("status from %s: %+v", h.Name, rep.Status)
	return rep.Status
}
