package netlab_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/fstests/netlab"
)

// TestPortMapping: a node behind a home router that offers UPnP and
// NAT-PMP maps its port itself (no --announce, no forward set by hand),
// is found public, serves the DHT and is given shards; a node behind the
// same kind of router without them stays a client.
func TestPortMapping(t *testing.T) {
	if testing.Short() {
		t.Skip("a six-host network")
	}
	lab := netlab.New(t)
	var pubs []*netlab.Host
	for i := range 4 {
		pubs = append(pubs, lab.Public(fmt.Sprintf("pub%d", i+1)))
	}
	mapped := lab.Home("upnp", netlab.PortRestricted)
	mapped.UPnP()
	plain := lab.Home("plain", netlab.PortRestricted)

	first := pubs[0].StartNode(t, bin)
	want := map[*netlab.Node][2]string{first: {"public", "server"}}
	boot := []string{first.Addr()}
	for _, h := range pubs[1:] {
		n := h.StartNode(t, bin, "--bootstrap", first.Addr())
		want[n] = [2]string{"public", "server"}
		boot = append(boot, n.Addr())
	}
	mappedNode := mapped.StartNode(t, bin, "--bootstrap", first.Addr())
	want[mappedNode] = [2]string{"public", "server"}
	// The node's own page, in a browser on its host, shows what AutoNAT
	// has concluded so far: not public yet, so soon after start.
	chrome := chromiumPath(t)
	early := pageReachability(t, chrome, mappedNode)
	if chrome != "" && early == "public" {
		t.Fatal("the page shows the mapped node public right after start, before AutoNAT could test it")
	}
	want[plain.StartNode(t, bin, "--bootstrap", first.Addr())] = [2]string{"private", "client"}
	// The mapping comes a few seconds after start, and AutoNAT tests an
	// address it did not have at its first probe on its next round, 90 s
	// later.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	waitReachability(t, ctx, func(yield func(*netlab.Node, [2]string) bool) {
		for n, w := range want {
			if !yield(n, w) {
				return
			}
		}
	})
	if chrome != "" {
		if late := pageReachability(t, chrome, mappedNode); late != "public" {
			t.Fatalf("once AutoNAT found the node public, its page shows %q", late)
		}
		t.Logf("the page showed %q, then %q", early, "public")
	}
	s, err := mappedNode.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	routerAddr := fmt.Sprintf("/ip4/%s/", mapped.PublicIP)
	if !slices.ContainsFunc(s.Network.AnnouncedAddrs, func(a string) bool { return strings.HasPrefix(a, routerAddr) }) {
		t.Fatalf("the mapped node announces %v, none at its router's address %s", s.Network.AnnouncedAddrs, mapped.PublicIP)
	}

	// A client behind the plain router stores a file: the mapped node,
	// reachable through its own mapping, takes its share.
	remote := newRemote(t, ctx, plain, "carol", boot, 3, 2) // five providers, one shard of each segment on each
	src := t.TempDir()
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	if err := os.WriteFile(filepath.Join(src, "f.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	jf(t, ctx, plain, remote, "copy", src, "jellyfish:m", "--jellyfish-data-dir", t.TempDir())
	if s, err = mappedNode.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Storage.Shards == 0 {
		t.Fatalf("the mapped node holds no shard")
	}
	_, out := jf(t, ctx, plain, remote, "check", src, "jellyfish:m", "--download", "--jellyfish-data-dir", t.TempDir())
	if !strings.Contains(out, " 0 differences found") {
		t.Fatalf("check --download:\n%s", out)
	}
	t.Logf("the mapped node holds %d shards; announced %v", s.Storage.Shards, s.Network.AnnouncedAddrs)
}

// chromiumPath returns the Chromium binary, or "" (and says so) when it
// is not installed: the rest of the test runs without the page checks.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Log("chromium is not installed (Debian: apt-get install chromium): the status page is not checked in a browser")
	return ""
}

// pagePath loads n's status page in headless Chromium run on n's host and
// returns the path it shows for peer ("" if it lists no such peer, or
// without Chromium). The page must agree with the node's /status.json
// read just before or just after.
func pagePath(t *testing.T, chrome string, n *netlab.Node, peer string) string {
	t.Helper()
	if chrome == "" {
		return ""
	}
	read := func() string {
		s, err := n.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range s.Network.Paths {
			if p.Peer == peer {
				return p.Path
			}
		}
		return ""
	}
	before := read()
	page := loadPage(t, chrome, n)
	after := read()
	re := regexp.MustCompile(`id="path-` + regexp.QuoteMeta(peer) + `"><td class="mono">[^<]*</td><td class="path [a-z]*">([a-z-]+)</td>`)
	got := ""
	if m := re.FindSubmatch(page); m != nil {
		got = string(m[1])
	} else if !strings.Contains(string(page), `id="paths"`) {
		t.Fatalf("the page on %s has no peers section:\n%s", n.Host.Name, page)
	}
	if got != before && got != after {
		t.Fatalf("the page on %s shows %s as %q; its status said %q before and %q after", n.Host.Name, peer, got, before, after)
	}
	return got
}

// loadPage returns n's status page as headless Chromium, run on n's host,
// renders it.
func loadPage(t *testing.T, chrome string, n *netlab.Node) []byte {
	t.Helper()
	cmd := n.Host.Command(chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir="+t.TempDir(), "--dump-dom", "http://"+netlab.StatusAddr+"/")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium on %s: %v\n%s", n.Host.Name, err, stderr.String())
	}
	return out
}

var reachCard = regexp.MustCompile(`id="card-reach"><div class="label">Reachability</div><div class="value[^"]*">([a-z]+)</div>`)

// pageReachability loads n's status page in headless Chromium run on n's
// host and returns the reachability it shows ("" without Chromium). The
// page must agree with the node's /status.json read just before or just
// after.
func pageReachability(t *testing.T, chrome string, n *netlab.Node) string {
	t.Helper()
	if chrome == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	read := func() string {
		s, err := n.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s.Network.Reachability
	}
	before := read()
	out := loadPage(t, chrome, n)
	after := read()
	m := reachCard.FindSubmatch(out)
	if m == nil {
		t.Fatalf("the page on %s shows no reachability:\n%s", n.Host.Name, out)
	}
	got := string(m[1])
	if got != before && got != after {
		t.Fatalf("the page on %s shows %q; its status said %q before and %q after", n.Host.Name, got, before, after)
	}
	return got
}
