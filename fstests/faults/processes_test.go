package faults_test

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// TestDevicesAsProcesses: three devices of one account, each a separate
// jellyfish process with its own data dir (so its own client node, slot,
// head and log), write at the same time to the same and to different
// paths; a fourth device that wrote at the start and was away meanwhile
// comes back. Afterwards every device lists the same tree and reads the
// same bytes, and every write is present, at its path or in a conflict
// copy.
func TestDevicesAsProcesses(t *testing.T) {
	e := newEnv(t, 8, nil)
	devs := []string{t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()}
	src := t.TempDir()
	as := func(dev int, args ...string) ([]byte, string, error) {
		return runWith(t, e.conf, append([]string{"--jellyfish-data-dir", devs[dev]}, args...)...)
	}
	mustAs := func(dev int, args ...string) string {
		t.Helper()
		out, stderr, err := as(dev, args...)
		if err != nil {
			t.Fatalf("device %d: jellyfish %s: %v\n%s", dev, strings.Join(args, " "), err, stderr)
		}
		return string(out)
	}
	// Device 3 writes first, then goes away.
	mustAs(3, "copyto", writeFile(t, src, "early.txt", []byte("from the early device")), remoteName+":early.txt")

	var wg sync.WaitGroup
	for dev := range 3 {
		wg.Add(1)
		go func(dev int) {
			defer wg.Done()
			// One process per device writes both files, so the three load
			// the file list at about the same time and their writes to
			// shared.bin are concurrent: none has seen another's.
			dir := filepath.Join(src, fmt.Sprintf("dev-%d", dev))
			writeFile(t, dir, fmt.Sprintf("dev%d/own.txt", dev), []byte(fmt.Sprintf("device %d's own file", dev)))
			writeFile(t, dir, "shared.bin", randomBytes(t, 20000+dev))
			args := []string{"copy", dir, remoteName + ":"}
			if _, stderr, err := as(dev, args...); err != nil {
				t.Errorf("device %d: jellyfish %s: %v\n%s", dev, strings.Join(args, " "), err, stderr)
			}
		}(dev)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Each device starts once more (loading the others' logs and resolving
	// what conflicts), then every device, the returning one included, must
	// list the same tree with the same hashes.
	for dev := range 3 {
		mustAs(dev, "lsf", "-R", remoteName+":")
	}
	var want string
	for dev := range 4 {
		got := mustAs(dev, "lsf", "-R", "--files-only", "--format", "ph", "--hash", "blake3", remoteName+":")
		lines := strings.Split(strings.TrimSpace(got), "\n")
		sort.Strings(lines)
		got = strings.Join(lines, "\n")
		if dev == 0 {
			want = got
			continue
		}
		if got != want {
			t.Fatalf("device %d lists\n%s\nbut device 0 lists\n%s", dev, got, want)
		}
	}
	// Every write is there: three own files, the early one, and the three
	// versions of shared.bin (one at its path, two as conflict copies).
	shared := 0
	for _, l := range strings.Split(want, "\n") {
		if strings.HasPrefix(l, "shared") {
			shared++
		}
	}
	if shared != 3 || !strings.Contains(want, "early.txt") || strings.Count(want, "/own.txt") != 3 {
		t.Fatalf("writes missing from the merged tree:\n%s", want)
	}
}
