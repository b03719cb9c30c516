package p2pnode_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// module is the Jellyfish module path.
const module = "github.com/jellyfish-p2p/jellyfish"

// testingImporters are the packages outside Jellyfish allowed to bring
// package testing into the jellyfish binary. go-libp2p-kad-dht declares
// test-only options taking a *testing.T in dht_options.go, a non-test
// file, so every program using the DHT lists testing among its
// dependencies; nothing of it runs.
var testingImporters = []string{"github.com/libp2p/go-libp2p-kad-dht"}

// graph is the import graph of every non-test package of the module and
// its dependencies, as go list reports it.
type graph map[string][]string

// loadGraph runs go list over the whole module with the build tags the
// Makefile uses.
func loadGraph(t *testing.T) graph {
	t.Helper()
	cmd := exec.Command("go", "list", "-tags", "noselfupdate", "-deps",
		"-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module+"/...")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	g := graph{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			g[f[0]] = f[1:]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return g
}

// chains returns, for every package reachable from root that bad
// accepts, one shortest import chain from root to it. The search does
// not go through packages it reports.
func (g graph) chains(root string, bad func(string) bool) [][]string {
	parent := map[string]string{root: ""}
	queue := []string{root}
	var found [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, q := range g[p] {
			if _, seen := parent[q]; seen {
				continue
			}
			parent[q] = p
			if bad(q) {
				var c []string
				for x := q; x != ""; x = parent[x] {
					c = append(c, x)
				}
				slices.Reverse(c)
				found = append(found, c)
				continue
			}
			queue = append(queue, q)
		}
	}
	return found
}

// under returns a matcher for the packages at or below any of paths.
func under(paths ...string) func(string) bool {
	return func(p string) bool {
		for _, x := range paths {
			if p == x || strings.HasPrefix(p, x+"/") {
				return true
			}
		}
		return false
	}
}

func own(p string) string { return module + "/" + p }

// TestLayers pins the layering: codec ⟂ p2pnode ⟂ rclone, the node knows
// no service on top of it, and only tests reach the test harness.
func TestLayers(t *testing.T) {
	g := loadGraph(t)
	rules := []struct {
		name   string
		from   func(string) bool
		except func(string) bool
		forbid func(string) bool
	}{
		{
			name:   "codec is a pure library",
			from:   under(own("codec")),
			forbid: under(own("p2pnode"), own("backend"), own("cmd"), own("fstests"), "github.com/rclone/rclone", "github.com/libp2p"),
		},
		{
			name:   "the network layer knows nothing of rclone or the backend",
			from:   under(own("p2pnode")),
			forbid: under(own("backend"), own("cmd"), own("fstests"), "github.com/rclone/rclone"),
		},
		{
			name: "node (host, DHT, records) knows no service built on it",
			from: under(own("p2pnode/node")),
			forbid: under(own("p2pnode/shardproto"), own("p2pnode/shardstore"), own("p2pnode/provider"),
				own("p2pnode/client"), own("p2pnode/account"), own("p2pnode/localnet"), own("p2pnode/testnet")),
		},
		{
			name:   "a client is not a provider",
			from:   under(own("p2pnode/client")),
			forbid: under(own("p2pnode/provider"), own("p2pnode/localnet"), own("p2pnode/testnet")),
		},
		{
			name:   "only tests reach the test harness",
			from:   under(module),
			except: under(own("fstests"), own("p2pnode/testnet")),
			forbid: under(own("p2pnode/testnet"), own("fstests")),
		},
	}
	for _, r := range rules {
		n := 0
		for p := range g {
			if !r.from(p) || (r.except != nil && r.except(p)) {
				continue
			}
			n++
			for _, c := range g.chains(p, r.forbid) {
				t.Errorf("%s: %s", r.name, strings.Join(c, " → "))
			}
		}
		if n == 0 {
			t.Errorf("%s: the rule matches no package", r.name)
		}
	}

	// The jellyfish binary does not link package testing through anything
	// but the allowed third-party importers.
	bin := own("cmd/jellyfish")
	if _, ok := g[bin]; !ok {
		t.Fatalf("%s not in the import graph", bin)
	}
	importsTesting := func(p string) bool {
		return !slices.Contains(testingImporters, p) && slices.Contains(g[p], "testing")
	}
	for _, c := range g.chains(bin, importsTesting) {
		t.Errorf("the jellyfish binary links package testing: %s → testing", strings.Join(c, " → "))
	}
}
