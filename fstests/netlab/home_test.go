package netlab_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/fstests/netlab"
)

const password = "harbor quiet ninety kettle"

// TestHomeNetwork runs a network of twelve hosts, eight of them behind
// home routers: four public nodes, four home nodes whose routers forward
// the node's port (announced), four home nodes behind routers forwarding
// nothing (two masquerading as port-restricted cones, two as symmetric
// NATs). Each node finds out by AutoNAT whether others can dial it; those
// that cannot stop serving the DHT. From one of the last hosts an account
// is created and a mixed tree synced; every shard lands on a node the
// writer can reach directly: those others can dial, and those behind
// port-restricted routers it reaches by a hole punch, never those behind
// symmetric NATs. From another home host the tree is checked byte for byte (check
// --download), and from a third it is mounted (jellyfish mount, a real
// FUSE mount) and every folder listed and every file read back through
// the kernel. Then two provider hosts are killed, the check runs again
// and every file is read again through the same mount. Every command is a
// separate jellyfish process on its own host. Without FUSE the mount's
// subtests are skipped, saying why, and the rest runs.
func TestHomeNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("a twelve-host network")
	}
	lab := netlab.New(t)
	type role struct {
		h         *netlab.Host
		want      [2]string
		args      []string
		symmetric bool
	}
	var roles []*role
	for i := range 4 {
		roles = append(roles, &role{h: lab.Public(fmt.Sprintf("pub%d", i+1)), want: [2]string{"public", "server"}})
	}
	for i := range 4 {
		h := lab.Home(fmt.Sprintf("fwd%d", i+1), netlab.PortRestricted)
		h.Forward(netlab.NodePort)
		roles = append(roles, &role{h: h, want: [2]string{"public", "server"}, args: []string{
			"--announce", fmt.Sprintf("/ip4/%s/tcp/%d", h.PublicIP, netlab.NodePort),
			"--announce", fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", h.PublicIP, netlab.NodePort)}})
	}
	for i := range 4 {
		nat := netlab.PortRestricted
		if i%2 == 1 {
			nat = netlab.Symmetric
		}
		roles = append(roles, &role{h: lab.Home(fmt.Sprintf("nat%d", i+1), nat), want: [2]string{"private", "client"}, symmetric: nat == netlab.Symmetric})
	}
	first := roles[0].h.StartNode(t, bin)
	nodes := map[*role]*netlab.Node{roles[0]: first}
	var boot []string
	boot = append(boot, first.Addr())
	for _, r := range roles[1:] {
		nodes[r] = r.h.StartNode(t, bin, append([]string{"--bootstrap", first.Addr()}, r.args...)...)
		if r.want[0] == "public" && len(boot) < 3 {
			boot = append(boot, nodes[r].Addr())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitReachability(t, ctx, func(yield func(*netlab.Node, [2]string) bool) {
		for r, n := range nodes {
			if !yield(n, r.want) {
				return
			}
		}
	})

	// The client side: an account and its remote, from home hosts behind
	// NATs that forward nothing.
	writer, reader := roles[8].h, roles[9].h
	cfgDir := t.TempDir()
	common := []string{"--insecure-test-kdf", "--config-dir", cfgDir, "--username", "alice"}
	for _, b := range boot {
		common = append(common, "--bootstrap", b)
	}
	env := []string{"JELLYFISH_PASSWORD=" + password, "HOME=" + t.TempDir()}
	jf(t, ctx, writer, env, append([]string{"account", "create"}, common...)...)
	obscured, _ := jf(t, ctx, writer, nil, "obscure", password)
	obscured = strings.TrimSpace(obscured)
	remote := slices.Concat(env, []string{
		"RCLONE_CONFIG=/dev/null",
		"RCLONE_CONFIG_JELLYFISH_TYPE=jellyfish",
		"RCLONE_CONFIG_JELLYFISH_USERNAME=alice",
		"RCLONE_CONFIG_JELLYFISH_PASSWORD=" + obscured,
		"RCLONE_CONFIG_JELLYFISH_BOOTSTRAP=" + strings.Join(boot, " "),
		"RCLONE_CONFIG_JELLYFISH_INSECURE_TEST_KDF=true",
		// Eight providers: 4 + 4 shards per segment, at most one per node.
		"RCLONE_CONFIG_JELLYFISH_DATA_SHARDS=4",
		"RCLONE_CONFIG_JELLYFISH_PARITY_SHARDS=4",
		// Every shard stored before an upload counts: the reader, behind
		// a symmetric NAT, reaches no node behind a NAT (up to two shards
		// of a segment), and two providers are killed below, which is all
		// m = 4 allows. By default an upload may end at k + m/2 and leave
		// the rest to repair, which this test does not wait for.
		"RCLONE_CONFIG_JELLYFISH_SUCCESS_SHARDS=8",
	})
	src := t.TempDir()
	writeTree(t, src)
	jf(t, ctx, writer, remote, "sync", src, "jellyfish:tree", "--jellyfish-data-dir", t.TempDir())
	check := func(what string) {
		t.Helper()
		_, out := jf(t, ctx, reader, remote, "check", src, "jellyfish:tree", "--download", "--jellyfish-data-dir", t.TempDir())
		if !strings.Contains(out, " 0 differences found") {
			t.Fatalf("check --download %s:\n%s", what, out)
		}
		t.Logf("check --download %s: %s", what, lastLine(out))
	}
	check("with every node up")

	// The mount, on a third home host behind a NAT forwarding nothing.
	// --vfs-cache-mode off keeps no file data, so every read, the second
	// round's too, goes to the network; --read-only because only reading
	// is tested here.
	fuseErr := netlab.FUSE()
	var mnt *netlab.Mount
	if fuseErr == nil {
		mnt = roles[10].h.StartMount(t, bin, remote, "jellyfish:", t.TempDir(),
			"--read-only", "--vfs-cache-mode", "off", "--jellyfish-data-dir", t.TempDir(), "-v")
		waitListing(t, filepath.Join(mnt.Root(), "tree"), src, 2*time.Minute)
	}
	readBack := func(what string) {
		t.Helper()
		t.Run("mount "+what, func(t *testing.T) {
			if fuseErr != nil {
				t.Skipf("FUSE unavailable: %v", fuseErr)
			}
			start := time.Now()
			if err := within(3*time.Minute, func() error { return compareTree(filepath.Join(mnt.Root(), "tree"), src) }); err != nil {
				t.Fatalf("read back through the mount on %s: %v", mnt.Host.Name, err)
			}
			t.Logf("every folder listed and every file read through the mount on %s in %v", mnt.Host.Name, time.Since(start).Round(time.Millisecond))
		})
	}
	readBack("with every node up")

	// Shards went to the nodes others can dial, and to those behind
	// port-restricted routers that a hole punch reaches from the writer
	// (found through their relays); none to those behind symmetric NATs.
	held := map[string]int{}
	for r, n := range nodes {
		s, err := n.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held[r.h.Name] = s.Storage.Shards
		if r.symmetric && s.Storage.Shards != 0 {
			// How did the writer reach it: what the node concluded of its
			// reachability, the punches it started, who is connected how.
			t.Errorf("%s, behind a symmetric NAT, holds %d shards; its network: reachability %s (%s), punches %+v, addresses %v, paths %+v",
				r.h.Name, s.Storage.Shards, s.Network.Reachability, s.Network.ReachabilityNote, s.Network.HolePunches,
				s.Network.AnnouncedAddrs, s.Network.Paths)
		}
	}
	for _, r := range roles[:8] {
		if held[r.h.Name] == 0 {
			t.Errorf("%s, reachable, holds no shard", r.h.Name)
		}
	}
	t.Logf("shards held: %v", held)

	// Two provider hosts die: a public one and a home one.
	nodes[roles[2]].Kill()
	nodes[roles[5]].Kill()
	check("with two providers killed")
	readBack("with two providers killed")
	if mnt != nil {
		if err := mnt.Unmount(time.Minute); err != nil {
			t.Error(err)
		}
	}
}

// waitListing waits until the folder dir, read through a mount, lists
// the names src lists, and fails the test with what it lists if wait
// passes first.
func waitListing(t *testing.T, dir, src string, wait time.Duration) {
	t.Helper()
	want, err := names(src)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	deadline := time.After(wait)
	for {
		err := within(wait, func() error {
			got, err := names(dir)
			if err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("lists %v", got)
			}
			return err
		})
		if err == nil {
			t.Logf("%s listed through the mount after %v", dir, time.Since(start).Round(time.Millisecond))
			return
		}
		select {
		case <-deadline:
			t.Fatalf("%s through the mount after %v: %v; want %v", dir, wait, err, want)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// names lists the folder dir, sorted.
func names(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out, err
}

// compareTree walks the tree at got, which lists every folder, and
// compares it with the one at want: the same folders and files, each file
// of the same size and SHA-256.
func compareTree(got, want string) error {
	walk := func(root string) (map[string]string, error) {
		m := map[string]string{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if d.IsDir() {
				m[rel] = "folder"
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			h := sha256.New()
			n, err := io.Copy(h, f)
			if err != nil {
				return fmt.Errorf("read %s: %w", rel, err)
			}
			m[rel] = fmt.Sprintf("%d bytes listed, %d read, sha256 %x", info.Size(), n, h.Sum(nil))
			return nil
		})
		return m, err
	}
	g, err := walk(got)
	if err != nil {
		return err
	}
	w, err := walk(want)
	if err != nil {
		return err
	}
	var diff []string
	for p, wv := range w {
		if gv, ok := g[p]; !ok {
			diff = append(diff, fmt.Sprintf("%s: missing", p))
		} else if gv != wv {
			diff = append(diff, fmt.Sprintf("%s: %s, want %s", p, gv, wv))
		}
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			diff = append(diff, fmt.Sprintf("%s: not in the source", p))
		}
	}
	if len(diff) > 0 {
		slices.Sort(diff)
		return fmt.Errorf("%d of %d entries differ:\n%s", len(diff), len(w), strings.Join(diff, "\n"))
	}
	return nil
}

// within runs f and returns its error, or an error if f has not returned
// after wait. f keeps running then: a read blocked in a FUSE mount returns
// once the test's cleanup unmounts it and ends the mount process.
func within(wait time.Duration, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		return fmt.Errorf("no answer after %v", wait)
	}
}

// waitReachability waits until every node's status shows the reachability
// and DHT mode wanted, and fails the test with what each shows if ctx ends
// first.
func waitReachability(t *testing.T, ctx context.Context, each func(func(*netlab.Node, [2]string) bool)) {
	t.Helper()
	start := time.Now()
	got := map[*netlab.Node][2]string{}
	for {
		done := true
		for n, w := range each {
			s, err := n.Status(ctx)
			if err != nil {
				t.Fatalf("status of %s: %v", n.Host.Name, err)
			}
			got[n] = [2]string{s.Network.Reachability, s.Node.DHTMode}
			if got[n] != w {
				done = false
			}
		}
		if done {
			t.Logf("reachability settled after %v", time.Since(start).Round(time.Second))
			return
		}
		select {
		case <-ctx.Done():
			for n, w := range each {
				if got[n] != w {
					t.Errorf("%s: reachability and DHT mode %v, want %v", n.Host.Name, got[n], w)
				}
			}
			t.FailNow()
		case <-time.After(2 * time.Second):
		}
	}
}

// jf runs a jellyfish command on h and returns its standard output and
// error; it fails the test on a non-zero exit.
func jf(t *testing.T, ctx context.Context, h *netlab.Host, env []string, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, err := jfExit(t, ctx, h, env, args...)
	if err != nil {
		t.Fatalf("%s: jellyfish %s: %v\n%s%s", h.Name, strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout, stderr
}

// jfExit is jf that returns a non-zero exit as an error (it still fails
// the test on a command that outlives ctx).
func jfExit(t *testing.T, ctx context.Context, h *netlab.Host, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := h.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s: jellyfish %s: still running\n%s%s", h.Name, strings.Join(args, " "), o.String(), e.String())
	}
	return o.String(), e.String(), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// writeTree writes a mixed tree: small and middle-sized files in nested
// folders, an empty file, and one file of several segments.
func writeTree(t *testing.T, dir string) {
	t.Helper()
	sizes := []int{0, 1, 100, 4 << 10, 60 << 10, 300 << 10, 1 << 20}
	for i := range 30 {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", i%4), fmt.Sprintf("e%d", i%3))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, sizes[i%len(sizes)])
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d.bin", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 20<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
}
