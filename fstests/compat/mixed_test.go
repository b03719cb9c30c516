package compat

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// network is six providers, three per version at the start.
type network struct {
	t     *testing.T
	nodes []*node
}

// addrs are every provider's address, running or not (ports are kept
// across restarts): what clients bootstrap from.
func (nw *network) addrs() []string {
	var out []string
	for _, n := range nw.nodes {
		out = append(out, n.addr)
	}
	return out
}

// running are the addresses of the running providers.
func (nw *network) running() []string {
	var out []string
	for _, n := range nw.nodes {
		if n.cmd != nil {
			out = append(out, n.addr)
		}
	}
	return out
}

func (nw *network) start(bin string, nodes ...*node) {
	nw.t.Helper()
	for _, n := range nodes {
		n.start(nw.t, bin, nw.running())
	}
}

func (nw *network) stop(nodes ...*node) {
	nw.t.Helper()
	for _, n := range nodes {
		n.stop(nw.t)
	}
}

// sameShardCounts requires that every provider holds the same number of
// shards, and some: one shard of every segment, so that any three of
// them hold k of each.
func (nw *network) sameShardCounts() {
	nw.t.Helper()
	var counts []string
	first := -1
	same := true
	for _, n := range nw.nodes {
		c := len(shardFiles(nw.t, n))
		if first < 0 {
			first = c
		}
		same = same && c == first
		counts = append(counts, fmt.Sprintf("%s %d", n.name, c))
	}
	if !same || first == 0 {
		nw.t.Fatalf("shards per provider: %s; want the same number on each, more than 0", strings.Join(counts, ", "))
	}
	nw.t.Logf("shards per provider: %s", strings.Join(counts, ", "))
}

// about requires that bin's rclone about of r succeeds and reports what
// the account uses.
func about(t *testing.T, r remote, bin, who string) {
	t.Helper()
	out := r.mustRclone(t, bin, "about", "jellyfish:")
	if !strings.Contains(out, "Used:") {
		t.Fatalf("%s: about says no Used:\n%s", who, out)
	}
	t.Logf("%s: about: %s", who, strings.Join(strings.Fields(out), " "))
}

// maintain runs bin's maintenance round of r's account with all six
// providers up: every shard must be renewed and every audit answered with
// a proof that verifies.
func maintain(t *testing.T, r remote, bin, who string) {
	t.Helper()
	res := r.rclone(t, bin, "backend", "maintain", "jellyfish:", "-o", "audits=4")
	if res.code != 0 {
		t.Fatalf("%s: backend maintain: exit %d\n%s", who, res.code, res.out)
	}
	var round struct {
		Shards, Holders, Renewed, Missing, Audited int
		Unreachable                                int `json:"holders_unreachable"`
		AuditFailed                                int `json:"audit_failed"`
		Repaired                                   int `json:"segments_repaired"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &round); err != nil {
		t.Fatalf("%s: backend maintain: %v\n%s", who, err, res.out)
	}
	if round.Shards == 0 || round.Renewed != round.Shards || round.Holders != 6 || round.Missing != 0 ||
		round.Unreachable != 0 || round.Audited == 0 || round.AuditFailed != 0 || round.Repaired != 0 {
		t.Fatalf("%s: maintenance round %+v, want every shard renewed at six holders and every audit passed\n%s", who, round, res.out)
	}
	t.Logf("%s: maintenance round renewed %d shards at %d holders, %d audits passed", who, round.Renewed, round.Holders, round.Audited)
}

// checkAll requires that bin reads the whole account on r byte for byte
// (rclone check --download) and finds it equal to want, no file missing
// and none extra.
func checkAll(t *testing.T, r remote, bin string, want string, who string) {
	t.Helper()
	out := r.mustRclone(t, bin, "check", want, "jellyfish:", "--download")
	if !strings.Contains(out, " 0 differences found") {
		t.Fatalf("%s: check found differences\n%s", who, out)
	}
	t.Logf("%s: every file read back byte for byte", who)
}

// TestMixedVersions runs providers and clients of the previous and the
// current version in one network and one account:
//
//   - the previous version creates an account (login version 1) and syncs
//     a folder; the current version logs in to it, syncs over that folder
//     (a file changed, one deleted, one added) and copies another, on a
//     device of its own and on the previous version's device; the
//     previous version then copies one more on its device. Every upload
//     needs all six shards of each segment stored, one on each provider,
//     so clients of each version store on providers of both;
//   - each version's client runs a maintenance round: every shard renewed
//     and audited at providers of both versions;
//   - the current version reads everything with only the previous
//     version's providers up, and the previous version with only the
//     current version's up;
//   - the previous version's providers are upgraded in place (their data
//     dirs run by the current binary) and read from alone, then the
//     current version's downgraded and read from alone, by both clients;
//   - an account the current version created (login version 2) is refused
//     by the previous version at login; after it tried,
//     the current version still reads that account's files byte for byte;
//     a node of the previous version linked to that account by the
//     current version's key file keeps its records;
//   - a password the current version changes moves the first account to
//     login version 2 too: the previous version's login refuses it, its
//     device keeps working from the keys it cached.
func TestMixedVersions(t *testing.T) {
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
		news = append(news, &node{name: curName, dir: filepath.Join(root, "node-"+curName)})
	}
	nw.nodes = append(append(nw.nodes, olds...), news...)
	nw.start(prev, olds...)
	nw.start(cur, news...)
	// Each node is killed at cleanup if still running; a test that got
	// this far stops them as an operator would, and they must exit 0.
	defer func() {
		for _, n := range nw.nodes {
			if n.cmd != nil && !t.Failed() {
				n.stop(t)
			}
		}
	}()
	boot := nw.addrs()

	pwFile := func(pw string) string {
		p := filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	account := func(bin string, args ...string) result {
		full := append([]string{"account"}, args...)
		for _, b := range boot {
			full = append(full, "--bootstrap", b)
		}
		return run(t, bin, append(full, "--config-dir", t.TempDir())...)
	}
	if r := account(prev, "create", "--username", "alice", "--password-file", pwFile(alicePassword)); r.code != 0 {
		t.Fatalf("previous version: account create: exit %d\n%s", r.code, r.out)
	}

	src := filepath.Join(root, "src")
	oldDev := writeRemote(t, "alice", alicePassword, filepath.Join(root, "device-prev"), boot)
	newDev := writeRemote(t, "alice", alicePassword, filepath.Join(root, "device-cur"), boot)

	treeA().write(t, src)
	oldDev.mustRclone(t, prev, "sync", src, "jellyfish:a")
	treeA2().write(t, src)
	newDev.mustRclone(t, cur, "sync", src, "jellyfish:a")
	treeB().write(t, src)
	newDev.mustRclone(t, cur, "copy", src, "jellyfish:b")
	// The previous version's device upgraded in place: the current binary
	// continues its log, then the previous binary continues it again.
	treeD().write(t, src)
	oldDev.mustRclone(t, cur, "copy", src, "jellyfish:d")
	treeC().write(t, src)
	oldDev.mustRclone(t, prev, "copy", src, "jellyfish:c")
	want := filepath.Join(root, "want")
	merge(treeA2().under("a"), treeB().under("b"), treeC().under("c"), treeD().under("d")).write(t, want)

	// Login version 2 is what the previous version cannot read.
	if r := account(cur, "create", "--username", "bob", "--password-file", pwFile(bobPassword)); r.code != 0 {
		t.Fatalf("current version: account create: exit %d\n%s", r.code, r.out)
	}
	bobNew := writeRemote(t, "bob", bobPassword, filepath.Join(root, "device-bob-cur"), boot)
	bobOld := writeRemote(t, "bob", bobPassword, filepath.Join(root, "device-bob-prev"), boot)
	bobWant := filepath.Join(root, "want-bob")
	treeB().write(t, bobWant)
	bobNew.mustRclone(t, cur, "copy", bobWant, "jellyfish:")
	nw.sameShardCounts()
	// Each client renews every shard of the account and audits each
	// holder, at providers of both versions.
	maintain(t, oldDev, prev, "previous client")
	maintain(t, newDev, cur, "current client")

	// The previous version looks for a login record of version 1 only and
	// finds none: it refuses the account as it refuses a wrong password.
	// (Later versions add to the words in the parentheses.)
	const refusal = "wrong username or password (or no such account"
	r := account(prev, "login", "--username", "bob", "--password-file", pwFile(bobPassword))
	if r.code != 1 || !strings.Contains(r.out, refusal) {
		t.Fatalf("previous version: account login of a version-2 account: exit %d, want 1 and %q\n%s", r.code, refusal, r.out)
	}
	t.Logf("previous version: account login of a version-2 account: exit 1: %s", strings.TrimSpace(r.out))
	r = bobOld.rclone(t, prev, "lsf", "-R", "jellyfish:")
	if r.code == 0 || !strings.Contains(r.out, refusal) {
		t.Fatalf("previous version: lsf of a version-2 account: exit %d, want a failure and %q\n%s", r.code, refusal, r.out)
	}
	t.Logf("previous version: lsf of a version-2 account: exit %d: %s", r.code, strings.TrimSpace(r.out))
	checkAll(t, bobNew, cur, bobWant, "current client after the previous one tried the version-2 account")

	// A node of the previous version linked to that account by a key file
	// the current version wrote needs no login: it reads the keys, lists
	// itself in the account record and keeps the account's records.
	bobCfg := t.TempDir()
	full := []string{"account", "login", "--username", "bob", "--password-file", pwFile(bobPassword), "--config-dir", bobCfg}
	for _, b := range boot {
		full = append(full, "--bootstrap", b)
	}
	if r := run(t, cur, full...); r.code != 0 {
		t.Fatalf("current version: account login: exit %d\n%s", r.code, r.out)
	}
	linked := &node{name: "prev-linked", dir: filepath.Join(root, "node-prev-linked")}
	linked.start(t, prev, nw.running(), "--account-config", filepath.Join(bobCfg, "accounts", "bob.json"))
	linked.waitLog(t, "node listed in the account record")
	round := linked.waitLog(t, "caretaker round")
	if round["errors"] != float64(0) || round["checked"] == float64(0) {
		t.Fatalf("previous version's node linked to a version-2 account: %v\n%s", round, linked.out.String())
	}
	t.Logf("previous version's node linked to a version-2 account: caretaker round checked %v records, %v errors", round["checked"], round["errors"])
	linked.stop(t)

	// Each version's client, reading from the other version's providers
	// alone.
	nw.stop(news...)
	checkAll(t, newDev, cur, want, "current client, previous providers")
	// The previous providers do not know the usage request; about falls
	// back to what it knows without it.
	about(t, newDev, cur, "current client, previous providers")
	nw.start(cur, news...)
	nw.stop(olds...)
	checkAll(t, oldDev, prev, want, "previous client, current providers")
	about(t, oldDev, prev, "previous client, current providers")

	// Upgrade in place: the previous providers' data dirs under the
	// current binary, alone.
	nw.start(cur, olds...)
	nw.stop(news...)
	checkAll(t, newDev, cur, want, "current client, upgraded providers")
	checkAll(t, oldDev, prev, want, "previous client, upgraded providers")

	// Downgrade: the current providers' data dirs under the previous
	// binary, alone.
	nw.start(prev, news...)
	nw.stop(olds...)
	checkAll(t, newDev, cur, want, "current client, downgraded providers")
	checkAll(t, oldDev, prev, want, "previous client, downgraded providers")

	// A new password given by the current version is of login version 2
	// and tombstones the version-1 record: the previous version's login
	// refuses both passwords, its device keeps the keys it cached, and a
	// new device of the current version opens the account with the new
	// password.
	const newPassword = "copper orchard velvet harbour"
	if r := account(cur, "passwd", "--username", "alice", "--password-file", pwFile(alicePassword),
		"--new-password-file", pwFile(newPassword)); r.code != 0 {
		t.Fatalf("current version: account passwd: exit %d\n%s", r.code, r.out)
	}
	for _, pw := range []string{newPassword, alicePassword} {
		r := account(prev, "login", "--username", "alice", "--password-file", pwFile(pw))
		if r.code != 1 || !strings.Contains(r.out, refusal) {
			t.Fatalf("previous version: account login after passwd: exit %d, want 1 and %q\n%s", r.code, refusal, r.out)
		}
	}
	checkAll(t, oldDev, prev, want, "previous client's device after the current version changed the password")
	freshDev := writeRemote(t, "alice", newPassword, filepath.Join(root, "device-cur-2"), boot)
	checkAll(t, freshDev, cur, want, "a new device of the current version with the new password")
}
