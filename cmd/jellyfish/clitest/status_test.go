package clitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/nodestatus"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
)

// logLines keeps every JSON log line of a child process as it comes, so
// the child never blocks on a full pipe while the test does other things.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
	done  chan struct{}
}

func watchLog(r io.Reader) *logLines {
	l := &logLines{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for m := range jsonLines(r) {
			l.mu.Lock()
			l.lines = append(l.lines, m)
			l.mu.Unlock()
		}
	}()
	return l
}

// find returns the first line whose msg is msg, or nil.
func (l *logLines) find(msg string) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.lines {
		if m["msg"] == msg {
			return m
		}
	}
	return nil
}

// wait returns the first line whose msg is msg, waiting up to limit.
func (l *logLines) wait(t *testing.T, msg string, limit time.Duration) map[string]any {
	t.Helper()
	var m map[string]any
	waitFor(t, limit, func() bool { m = l.find(msg); return m != nil })
	return m
}

// statusNode is a `jellyfish node` child process with its status page.
type statusNode struct {
	p     *proc
	pw    *io.PipeWriter
	log   *logLines
	url   string // http://127.0.0.1:PORT
	peer  peer.ID
	addrs []ma.Multiaddr
}

// startStatusNode runs `jellyfish node` with its status page on a free
// loopback port and the extra arguments, and waits for its startup lines.
func startStatusNode(t *testing.T, dataDir string, args ...string) *statusNode {
	t.Helper()
	pr, pw := io.Pipe()
	args = append([]string{"node", "--data-dir", dataDir, "--listen", "/ip4/127.0.0.1/tcp/0",
		"--status-addr", "127.0.0.1:0", "--log-format", "json"}, args...)
	sn := &statusNode{pw: pw, log: watchLog(pr)}
	sn.p = start(t, nil, io.Discard, pw, args...)
	t.Cleanup(func() { pw.Close() })
	running := sn.log.wait(t, "jellyfish node running", 30*time.Second)
	page := sn.log.wait(t, "status page", 5*time.Second)
	sn.url = strings.TrimSuffix(page["url"].(string), "/")
	var err error
	if sn.peer, err = peer.Decode(running["peer"].(string)); err != nil {
		t.Fatal(err)
	}
	for _, a := range running["addrs"].([]any) {
		sn.addrs = append(sn.addrs, ma.StringCast(a.(string)))
	}
	return sn
}

// snapshot reads the node's /status.json.
func (sn *statusNode) snapshot(t *testing.T) nodestatus.Snapshot {
	t.Helper()
	var s nodestatus.Snapshot
	if err := json.Unmarshal([]byte(sn.get(t, "/status.json")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (sn *statusNode) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(sn.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return string(b)
}

// ownerClient returns a shard client of a fresh owner on a client node
// joined to the testnet and connected to sn.
func ownerClient(t *testing.T, ctx context.Context, bootFile string, sn *statusNode) *shardproto.Client {
	t.Helper()
	c := joinChild(t, ctx, bootFile)
	if err := c.Node().Host().Connect(ctx, peer.AddrInfo{ID: sn.peer, Addrs: sn.addrs}); err != nil {
		t.Fatal(err)
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := c.Shards(key)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func testShard(seed byte, n int) ([]byte, codec.ShardID) {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b, codec.IDOf(b)
}

// TestNodeStatusAndGracefulStop runs `jellyfish node` on a four-node
// testnet and stores and audits a shard on it from a client node: its
// status.json and /metrics show the node's identity and tier, the shard
// held, the bytes used, the put and the audit answered, its peers and its
// clock measured against theirs. SIGTERM while a put is half received
// lets that put finish (the client gets its receipt) and refuses new
// requests meanwhile; the node exits 0, and restarted on the same folder
// it holds both shards.
func TestNodeStatusAndGracefulStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bootFile := testnetChild(t, 4)
	dataDir := t.TempDir()
	sn := startStatusNode(t, dataDir, "--bootstrap-file", bootFile, "--tier", "1", "--shutdown-grace", "20s")

	s := sn.snapshot(t)
	if s.Node.ID != sn.peer.String() || s.Node.Version == "" || s.Node.Account != "none" || s.Storage.Tier != 1 ||
		s.Storage.QuotaBytes != 2<<30 || s.Storage.Shards != 0 || s.Allowance != nodestatus.NotComputed ||
		len(s.Rounds) != 2 || s.Rounds[1].Name != "observation" {
		t.Fatalf("status at start: %+v", s)
	}

	sc := ownerClient(t, ctx, bootFile, sn)
	data, id := testShard(1, 300_000)
	if _, err := sc.Put(ctx, sn.peer, id, data, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Challenge(ctx, sn.peer, id, [32]byte{1}); err != nil {
		t.Fatal(err)
	}
	// The service counts a request once its answer is written, which the
	// client may read first: wait for the audit to be counted too.
	waitFor(t, 30*time.Second, func() bool {
		s = sn.snapshot(t)
		return s.Clock != nil && s.Clock.NetworkOffsetSeconds != nil && s.Network.RoutingTablePeers >= 3 &&
			s.Service.AuditsAnswered >= 1 && s.Service.StreamsServing == 0
	})
	if st := s.Storage; st.Shards != 1 || st.UsedBytes != int64(len(data)) || st.Owners != 1 || st.FreeBytes != 2<<30-int64(len(data)) {
		t.Errorf("storage %+v", st)
	}
	if sv := s.Service; sv.Puts != 1 || sv.NewBytes != int64(len(data)) || sv.AuditsAnswered != 1 || sv.Refused != 0 {
		t.Errorf("shard service %+v", sv)
	}
	if s.Network.PeersConnected < 4 || s.Network.Reachability != "unknown" || s.Records.Records < 1 || s.Clock.Peers < 3 {
		t.Errorf("network %+v, records %+v, clock %+v", s.Network, s.Records, s.Clock)
	}
	metrics := sn.get(t, "/metrics")
	for _, line := range []string{
		"jellyfish_shards_held 1", fmt.Sprintf("jellyfish_storage_used_bytes %d", len(data)),
		`jellyfish_shard_requests_total{request="put",status="ok"} 1`, "jellyfish_shard_audits_answered_total 1",
		"jellyfish_storage_tier 1", "process_open_fds ",
	} {
		if !strings.Contains(metrics, "\n"+line) {
			t.Errorf("metrics lack %q", line)
		}
	}

	// A put whose body stops halfway, then SIGTERM.
	late, lateID := testShard(2, 400_000)
	pr, pw := io.Pipe()
	defer pw.Close()
	putDone := make(chan error, 1)
	go func() {
		rc, err := sc.PutReader(ctx, sn.peer, lateID, int64(len(late)), pr, time.Now().Add(time.Hour))
		if err == nil {
			err = shardproto.VerifyReceipt(rc)
		}
		putDone <- err
	}()
	if _, err := pw.Write(late[:len(late)/2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		s := sn.snapshot(t)
		return s.Service.StreamsServing == 1 && s.Service.PutsInFlight == 1 && s.Storage.ReservedBytes == int64(len(late))
	})
	if err := sn.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if m := sn.log.wait(t, "shutting down", 10*time.Second); m["serving"] != float64(1) {
		t.Fatalf("shutdown line %v", m)
	}
	var se *network.StreamError
	if _, err := sc.Stat(ctx, sn.peer, id); !errors.As(err, &se) || se.ErrorCode != network.StreamResourceLimitExceeded {
		t.Fatalf("a request while the node drains: %v, want a reset with the retry code", err)
	}
	if _, err := pw.Write(late[len(late)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-putDone; err != nil {
		t.Fatalf("the put in flight at SIGTERM: %v", err)
	}
	select {
	case err := <-sn.p.done:
		if err != nil {
			t.Fatalf("node exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("node still running 20 s after SIGTERM")
	}
	sn.pw.Close()
	<-sn.log.done
	if sn.log.find("shard requests drained") == nil || sn.log.find("jellyfish node stopped") == nil {
		t.Fatal("no drained and stopped lines in the log")
	}

	// Restarted on the same folder, alone: both shards are there.
	again := startStatusNode(t, dataDir, "--tier", "1")
	if s := again.snapshot(t); s.Node.ID != sn.peer.String() || s.Storage.Shards != 2 || s.Storage.UsedBytes != int64(len(data)+len(late)) {
		t.Fatalf("after a restart: %+v", s.Storage)
	}
	again.p.stop(t, syscall.SIGTERM, 15*time.Second)
}

// chromium returns the path of a Chromium binary, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (Debian: apt-get install chromium): the status page is not checked in a browser")
	return ""
}

// runChromium runs headless Chromium with args and returns its standard
// output.
func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// TestNodeStatusPageInChromium loads the status page of a `jellyfish
// node` holding shards in headless Chromium and checks what the browser
// shows: the node's ID, the shards held, the bytes used, the answers, the
// figures not computed yet, and no script. It also renders the page to a
// PNG, which is kept at $JELLYFISH_STATUS_SCREENSHOT if set (the one in
// docs/ comes from here).
func TestNodeStatusPageInChromium(t *testing.T) {
	bin := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bootFile := testnetChild(t, 4)
	sn := startStatusNode(t, t.TempDir(), "--bootstrap-file", bootFile, "--tier", "2")
	sc := ownerClient(t, ctx, bootFile, sn)
	var used int
	for i, n := range []int{1 << 20, 3 << 20, 700_000} {
		data, id := testShard(byte(10+i), n)
		if _, err := sc.Put(ctx, sn.peer, id, data, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Challenge(ctx, sn.peer, id, [32]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		used += n
	}
	waitFor(t, 30*time.Second, func() bool {
		s := sn.snapshot(t)
		return s.Clock != nil && s.Clock.NetworkOffsetSeconds != nil
	})

	dom := runChromium(t, bin, "--dump-dom", sn.url+"/")
	for _, want := range []string{
		sn.peer.String(),
		`<td class="num" id="shards-held">3</td>`,
		fmt.Sprintf("(%d bytes)", used),
		`<div class="label">Allowance</div><div class="value na">not yet computed</div>`,
		`<div class="label">Standing</div><div class="value na">not yet computed</div>`,
		`<div class="label">Audits answered</div><div class="value">3</div>`,
		"unknown", "challenge", "collection",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page in Chromium lacks %q", want)
		}
	}
	if strings.Contains(dom, "<script") {
		t.Error("the page has a script")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	png := filepath.Join(t.TempDir(), "node-status.png")
	runChromium(t, bin, "--screenshot="+png, "--window-size=1200,900", "--hide-scrollbars", sn.url+"/")
	b, err := os.ReadFile(png)
	if err != nil || len(b) < 10_000 || string(b[1:4]) != "PNG" {
		t.Fatalf("screenshot: %d bytes, %v", len(b), err)
	}
	if keep := os.Getenv("JELLYFISH_STATUS_SCREENSHOT"); keep != "" {
		if err := os.WriteFile(keep, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sn.p.stop(t, syscall.SIGTERM, 15*time.Second)
}

// TestNodeConfigFlags drives the node's configuration through the binary:
// --print-node-config prints a file's values and a flag's over them and
// exits 0 without starting anything; a bad file and a status address
// other machines can reach stop the node with one clear line.
func TestNodeConfigFlags(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(conf, []byte("tier: 4\nlog-level: warn\nlisten:\n  - /ip4/127.0.0.1/tcp/4999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	so, se, code := run(t, nil, "node", "--node-config", conf, "--log-level", "debug", "--print-node-config", "--data-dir", filepath.Join(dir, "data"))
	if code != 0 || !strings.Contains(so, "\ntier: 4\n") || !strings.Contains(so, "\nlog-level: debug\n") ||
		!strings.Contains(so, "\nlisten:\n  - /ip4/127.0.0.1/tcp/4999\n") || !strings.Contains(so, "\nstatus-addr: 127.0.0.1:7781\n") {
		t.Fatalf("print-node-config: exit %d\n%s%s", code, so, se)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("print-node-config touched the data dir: %v", err)
	}

	if err := os.WriteFile(conf, []byte("tier: 4\nstatus_addr: 0.0.0.0:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, se, code = run(t, nil, "node", "--node-config", conf, "--data-dir", filepath.Join(dir, "data")); code != 1 || !strings.Contains(se, `line 2: "status_addr" is not a key`) {
		t.Fatalf("a file with a wrong key: exit %d, %q", code, se)
	}
	_, se, code = run(t, nil, "node", "--status-addr", "0.0.0.0:7781", "--data-dir", filepath.Join(dir, "data"), "--listen", "/ip4/127.0.0.1/tcp/0")
	if code != 1 || !strings.Contains(se, "not a loopback address") || !strings.Contains(se, "--status-public") || strings.Count(strings.TrimSpace(se), "\n") != 0 {
		t.Fatalf("a public status address: exit %d, %q", code, se)
	}
}
