package faults_test

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// metaObject is the shards of one metadata object on the providers' disks.
type metaObject []shardFile

// newMetaObjects returns the metadata objects (2+6) whose shards appeared
// since before, grouped by ciphertext length, largest first. The objects
// of one flush are a log batch and the checkpoint nodes it rewrote; they
// rarely share a length, and a group that is not one whole object is an
// error.
func newMetaObjects(t *testing.T, e *env, before map[string]bool) []metaObject {
	t.Helper()
	byLen := map[uint32]metaObject{}
	for _, s := range e.shardFiles(2, 6) {
		if !before[s.path] {
			byLen[s.header.CipherLen] = append(byLen[s.header.CipherLen], s)
		}
	}
	var out []metaObject
	for l, o := range byLen {
		idx := map[uint8]bool{}
		for _, s := range o {
			idx[s.header.Index] = true
		}
		if len(o) != 8 || len(idx) != 8 {
			t.Fatalf("%d new metadata shards of ciphertext length %d with %d distinct indexes: not one object", len(o), l, len(idx))
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0].header.CipherLen > out[j][0].header.CipherLen })
	return out
}

// shardPaths returns the set of metadata shard files on the providers.
func shardPaths(e *env) map[string]bool {
	out := map[string]bool{}
	for _, s := range e.shardFiles(2, 6) {
		out[s.path] = true
	}
	return out
}

// TestUnreadableCheckpointNode makes one leaf of the account's checkpoint
// tree unreadable — every shard of it corrupted on the providers' disks,
// then every shard deleted — and checks, from devices that never read
// that node before: a command that needs the node fails with an error
// that says what is unreadable; folders held by other nodes still list
// and read; and a device that cannot read that part of the tree writes
// nothing over it (a Put, a delete, a sync into it fail). Once the shards
// are back, another device reads every file as it was, plus the one
// written meanwhile into a readable folder.
//
// The leaf is found by its shards: with checkpoint_every 1 each flush
// writes a checkpoint of the batches before it, so a flush after one that
// added a file to a folder writes the leaf holding that folder's end, the
// root and its own log batch; the leaf is the largest of the three.
func TestUnreadableCheckpointNode(t *testing.T) {
	e := newEnv(t, 8, map[string]string{"checkpoint_every": "1"})
	const folders, perFolder = 10, 150
	src := t.TempDir()
	want := map[string]string{}
	for i := range folders * perFolder {
		data := randomBytes(t, 100+i%27)
		name := fmt.Sprintf("f%d/n%04d.txt", i%folders, i)
		writeFile(t, src, name, data)
		want[name] = blake3Hex(data)
	}
	if _, stderr, err := runWith(t, e.conf, "copy", src, remoteName+":"); err != nil {
		t.Fatalf("copy: %v\n%s", err, stderr)
	}
	addFile := func(name string) {
		t.Helper()
		data := randomBytes(t, 90)
		p := writeFile(t, t.TempDir(), "x", data)
		if _, stderr, err := runWith(t, e.conf, "-vv", "copyto", p, remoteName+":"+name); err != nil {
			t.Fatalf("copyto %s: %v\n%s", name, err, stderr)
		} else if !strings.Contains(stderr, "jellyfish: checkpoint of") {
			t.Fatalf("copyto %s wrote no checkpoint:\n%s", name, stderr)
		}
		want[name] = blake3Hex(data)
	}
	// The flush of a change writes a checkpoint of the batches before
	// it, then the change's batch: the first copyto's checkpoint writes
	// every node; the second's, the leaf holding f5/zz-first.txt (the end
	// of f5) and the root.
	addFile("f5/zz-first.txt")
	before := shardPaths(e)
	addFile("f5/zz-second.txt")
	objs := newMetaObjects(t, e, before)
	if len(objs) != 3 {
		t.Fatalf("the flush stored %d metadata objects, want 3 (batch, leaf, root)", len(objs))
	}
	leaf := objs[0]
	t.Logf("the leaf: 8 shards of %d bytes of ciphertext (the others: %d and %d)", leaf[0].header.CipherLen, objs[1][0].header.CipherLen, objs[2][0].header.CipherLen)
	saved := map[string][]byte{}
	for _, s := range leaf {
		b, err := os.ReadFile(s.path)
		if err != nil {
			t.Fatal(err)
		}
		saved[s.path] = b
	}
	restore := func() {
		t.Helper()
		for p, b := range saved {
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// as runs a command as the device of data dir dir.
	as := func(dir string, args ...string) ([]byte, string, error) {
		return runWith(t, e.conf, append([]string{"--jellyfish-data-dir", dir}, args...)...)
	}

	for _, how := range []string{"corrupted", "deleted"} {
		// A new device for the commands while the leaf is unreadable:
		// it never read the leaf, so no cache of its holds it.
		dev := t.TempDir()
		fresh := func(args ...string) ([]byte, string, error) { return as(dev, args...) }
		for _, s := range leaf {
			if how == "corrupted" {
				corrupt(t, s.path)
			} else if err := os.Remove(s.path); err != nil {
				t.Fatal(err)
			}
		}
		// Every folder: f5 needs the leaf; the
		// leaf (at most 64 KiB) can hold the ends of no more than two
		// other folders of about 35 KiB.
		var broken []string
		for f := range folders {
			dir := fmt.Sprintf("f%d", f)
			out, stderr, err := fresh("hashsum", "blake3", "--download", remoteName+":"+dir)
			if err != nil {
				broken = append(broken, dir)
				t.Logf("leaf %s: hashsum %s fails: %s", how, dir, lastLines(stderr, 2))
				if !strings.Contains(stderr, "checkpoint") && !strings.Contains(stderr, "file list") {
					t.Errorf("leaf %s: the failure of hashsum %s does not say that a checkpoint node or the file list is unreadable:\n%s", how, dir, lastLines(stderr, 4))
				}
				if m := refHexRE.FindString(stderr); m != "" {
					t.Errorf("leaf %s: the failure of hashsum %s prints a stored object's reference, data key included: %.80s… (%d hex digits)", how, dir, m, len(m))
				}
				continue
			}
			sums := parseHashsum(t, out)
			for name, h := range want {
				if rest, ok := strings.CutPrefix(name, dir+"/"); ok && sums[rest] != h {
					t.Errorf("leaf %s: %s reads with hash %q, want %q", how, name, sums[rest], h)
				}
			}
		}
		if !contains(broken, "f5") || len(broken) > 3 {
			t.Errorf("leaf %s: the folders that fail are %v, want f5 and at most two neighbours", how, broken)
		}
		if out, stderr, err := fresh("lsf", remoteName+":"); err != nil || len(strings.Fields(string(out))) != folders {
			t.Errorf("leaf %s: listing the root: %v, %q\n%s", how, err, out, stderr)
		}

		// Writes into the broken part fail; nothing is written over it.
		p := writeFile(t, t.TempDir(), "x", []byte("must not land"))
		for _, args := range [][]string{
			{"copyto", p, remoteName + ":f5/written-blind.txt"},
			{"deletefile", remoteName + ":f5/zz-first.txt"}, // in the leaf
			{"mkdir", remoteName + ":f5/new-dir"},
			{"sync", t.TempDir(), remoteName + ":f5"},
		} {
			_, stderr, err := fresh(args...)
			if err == nil {
				t.Errorf("leaf %s: %s succeeded on a device that cannot read f5", how, strings.Join(args, " "))
			} else {
				t.Logf("leaf %s: %s fails: %s", how, args[0], lastLines(stderr, 1))
			}
		}
		// A write elsewhere goes through.
		var name string
		for f := range folders {
			if !contains(broken, fmt.Sprintf("f%d", f)) {
				name = fmt.Sprintf("f%d/while-%s.txt", f, how)
				break
			}
		}
		data := []byte("written while a leaf was " + how)
		if _, stderr, err := fresh("copyto", writeFile(t, t.TempDir(), "y", data), remoteName+":"+name); err != nil {
			t.Errorf("leaf %s: copyto %s: %v\n%s", how, name, err, stderr)
		} else {
			want[name] = blake3Hex(data)
		}

		restore()
		out, stderr, err := as(t.TempDir(), "hashsum", "blake3", "--download", remoteName+":")
		if err != nil {
			t.Fatalf("leaf %s, then restored: hashsum: %v\n%s", how, err, stderr)
		}
		sums := parseHashsum(t, out)
		for name, h := range want {
			if sums[name] != h {
				t.Errorf("leaf %s, then restored: %s reads with hash %q, want %q", how, name, sums[name], h)
			}
		}
		if len(sums) != len(want) {
			t.Errorf("leaf %s, then restored: %d files, want %d", how, len(sums), len(want))
		}
	}
}

// refHexRE matches an object reference written out in hex: a tag byte
// (1 or 3) and the object's 32-byte data key, at least.
var refHexRE = regexp.MustCompile(`0[13][0-9a-f]{64,}`)

// lastLines returns the last n non-empty lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
