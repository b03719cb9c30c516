package compat

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// starterCap is what the current providers of TestPreviousClientOverAllowance
// keep for an account that shares no node.
const starterCap = 1 << 20

// TestPreviousClientOverAllowance: providers of the current version refuse
// a put past an account's allowance with a status the previous version
// does not know (OverAllowance). A client of the previous version takes it
// as that holder's refusal, with the provider's words, and stores the
// shards on the other providers; the current providers keep no more than
// the cap, and both versions read the file back byte for byte.
func TestPreviousClientOverAllowance(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two jellyfish binaries and runs six providers")
	}
	prev, cur := buildBinaries(t)
	root := t.TempDir()
	nw := &network{t: t}
	var olds, news []*node
	for i := range 3 {
		prevName, curName := fmt.Sprintf("prev-%d", i+1), fmt.Sprintf("cur-%d", i+1)
		olds = append(olds, &node{name: prevName, dir: filepath.Join(root, "node-"+prevName)})
		news = append(news, &node{name: curName, dir: filepath.Join(root, "node-"+curName),
			flags: []string{"--starter-cap", "1Mi"}})
	}
	nw.nodes = append(append(nw.nodes, olds...), news...)
	nw.start(prev, olds...)
	nw.start(cur, news...)
	defer func() {
		for _, n := range nw.nodes {
			if n.cmd != nil && !t.Failed() {
				n.stop(t)
			}
		}
	}()
	boot := nw.addrs()

	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(alicePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"account", "create", "--username", "alice", "--password-file", pw, "--config-dir", t.TempDir()}
	for _, b := range boot {
		args = append(args, "--bootstrap", b)
	}
	if r := run(t, prev, args...); r.code != 0 {
		t.Fatalf("previous version: account create: exit %d\n%s", r.code, r.out)
	}
	oldDev := writeRemote(t, "alice", alicePassword, filepath.Join(root, "device-prev"), boot)
	newDev := writeRemote(t, "alice", alicePassword, filepath.Join(root, "device-cur"), boot)

	// 8 MiB in 1 MiB segments of 3+3 shards: 2.7 MiB for each of six
	// providers, more than the current ones keep.
	src := filepath.Join(root, "src")
	tree{"big.raw": randomBytes(12, 8<<20)}.write(t, src)
	out := oldDev.mustRclone(t, prev, "copy", src, "jellyfish:", "-vv")
	const words = "keeps at most 1 MiB for an account that shares no node"
	if !strings.Contains(out, words) {
		t.Fatalf("previous client: no refusal saying %q\n%s", words, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, words) {
			t.Logf("previous client: %s", line)
			break
		}
	}
	for _, n := range news {
		held := shardBytes(t, n)
		if held == 0 || held > starterCap {
			t.Fatalf("%s holds %d shard bytes of the account, want some and at most %d", n.name, held, starterCap)
		}
		t.Logf("%s holds %d shard bytes of the account", n.name, held)
	}
	checkAll(t, newDev, cur, src, "current client")
	checkAll(t, oldDev, prev, src, "previous client")
}

// shardBytes sums the sizes of the shard files n holds.
func shardBytes(t *testing.T, n *node) int64 {
	t.Helper()
	var sum int64
	for _, f := range shardFiles(t, n) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		sum += fi.Size()
	}
	return sum
}

// shardFiles lists the shard files n holds (not their metadata or tree
// files: design.md §2.2, On-disk layout).
func shardFiles(t *testing.T, n *node) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(n.dir, "shards", "shards", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if !strings.Contains(filepath.Base(f), ".") {
			out = append(out, f)
		}
	}
	return out
}
