package clitest

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAccountDevices runs `jellyfish testnet --nodes 4 --account alice`,
// uses the account's remote from two data dirs (one writes a file, one
// only lists) and logs the account in, then drives `jellyfish account
// devices` as separate processes: it lists two devices, the login cache's
// and this machine's slots marked (the data dir that only listed is not a
// device of the record); removing the writer is refused while its change
// is in no checkpoint, and done once the other data dir ran `backend
// checkpoint` (joining the record with it); the list no longer shows it,
// and a new device still reads its file.
func TestAccountDevices(t *testing.T) {
	dir := t.TempDir()
	env := []string{"JELLYFISH_PASSWORD=" + password}
	tn := start(t, env, io.Discard, io.Discard, "testnet", "--nodes", "4", "--dir", dir, "--quota-mib", "64", "--account", "alice", "--insecure-test-kdf")
	conf := filepath.Join(dir, "rclone.conf")
	waitFor(t, 60*time.Second, func() bool {
		_, err := os.Stat(conf)
		return err == nil
	})
	bootFile := filepath.Join(dir, "bootstrap.txt")
	writer, reader := t.TempDir(), t.TempDir()
	rcl := func(dataDir string, args ...string) string {
		t.Helper()
		so, se, code := run(t, nil, append(args, "--config", conf, "--jellyfish-data-dir", dataDir)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, so, se)
		}
		return so
	}
	src := filepath.Join(t.TempDir(), "a.txt")
	if err := os.WriteFile(src, []byte("written by the device removed later"), 0o600); err != nil {
		t.Fatal(err)
	}
	rcl(writer, "copyto", src, "jellyfish:a.txt")
	rcl(reader, "lsf", "jellyfish:")

	cfg := t.TempDir()
	common := []string{"--bootstrap-file", bootFile, "--insecure-test-kdf", "--config-dir", cfg, "--username", "alice"}
	acct := func(args ...string) (string, string, int) {
		return run(t, env, append(append([]string{"account"}, args...), common...)...)
	}
	if so, se, code := acct("login", "--device-name", "cli"); code != 0 {
		t.Fatalf("login: %d\n%s%s", code, so, se)
	}
	so, se, code := acct("devices", "--data-dir", writer)
	if code != 0 || !strings.Contains(so, "devices:    2 of 32") || !strings.Contains(so, "(this device)") || !strings.Contains(so, "(this machine, slot-0)") {
		t.Fatalf("devices: %d\n%s%s", code, so, se)
	}
	t.Logf("jellyfish account devices:\n%s", so)
	var writerID string
	for _, l := range strings.Split(so, "\n") {
		if strings.Contains(l, "(this machine, slot-0)") {
			writerID = strings.Fields(l)[0]
			if !strings.Contains(l, "up to batch 1, not all in a checkpoint yet") {
				t.Fatalf("the writer's line: %q", l)
			}
		}
		if strings.Contains(l, "(this device)") && (!strings.Contains(l, "never") || !strings.Contains(l, " cli ")) {
			t.Fatalf("the login device's line: %q", l)
		}
	}
	if _, se, code = acct("devices", "--remove", writerID[:8]); code != 1 || !strings.Contains(se, "no checkpoint") || !strings.Contains(se, "jellyfish backend checkpoint") {
		t.Fatalf("remove before a checkpoint holds its change: exit %d, %q", code, se)
	}
	rcl(reader, "backend", "checkpoint", "jellyfish:")
	if so, se, code = acct("devices", "--remove", writerID[:8]); code != 0 || !strings.Contains(so, "removed device "+writerID) {
		t.Fatalf("remove: %d\n%s%s", code, so, se)
	}
	if so, se, code = acct("devices"); code != 0 || strings.Contains(so, writerID) || !strings.Contains(so, "devices:    2 of 32") {
		t.Fatalf("devices after the removal: %d\n%s%s", code, so, se)
	}
	if _, se, code = acct("devices", "--remove", "nosuchdevice"); code != 1 || !strings.Contains(se, "no device of the account") {
		t.Fatalf("remove an unknown device: exit %d, %q", code, se)
	}
	if got := rcl(t.TempDir(), "cat", "jellyfish:a.txt"); got != "written by the device removed later" {
		t.Fatalf("a new device reads %q", got)
	}
	tn.stop(t, syscall.SIGINT, 15*time.Second)
}
