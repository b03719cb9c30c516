package faults_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rclone/rclone/fs/config/obscure"
)

// TestRotate moves an account to new keys with `backend rotate`, in child
// processes on real nodes. Afterwards the remote's config holds the new
// password and reads every file byte for byte from the new account; a
// second device still configured with the old password refuses to open
// (it would write into the abandoned account) and says why; given the new
// password it opens the new account, setting its slot's old state aside,
// and reads every file too.
func TestRotate(t *testing.T) {
	e := newEnv(t, 8, nil)
	src := t.TempDir()
	files := map[string][]byte{
		"a.txt":          []byte("small, inline\n"),
		"dir/b.bin":      randomBytes(t, 200<<10),
		"dir/deep/c.bin": randomBytes(t, 3<<20+17),
		"empty":          nil,
	}
	want := map[string]string{}
	for name, data := range files {
		writeFile(t, src, name, data)
		want[name] = blake3Hex(data)
	}
	if _, stderr, err := runWith(t, e.conf, "copy", src, remoteName+":"); err != nil {
		t.Fatalf("copy: %v\n%s", err, stderr)
	}
	// A second device of the account, with the old password and its
	// keys cached in its slot.
	conf2 := writeConfig(t, e.acct, e.opts)
	if _, stderr, err := runWith(t, conf2, "lsf", "-R", remoteName+":"); err != nil {
		t.Fatalf("second device: %v\n%s", err, stderr)
	}
	oldPass := configValue(t, e.conf, "password")

	const newPw = "saffron lighthouse tundra pebble"
	pwFile := filepath.Join(t.TempDir(), "new-password")
	if err := os.WriteFile(pwFile, []byte(newPw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := runWith(t, e.conf, "backend", "rotate", remoteName+":", "-o", "new-password-file="+pwFile)
	if err != nil {
		t.Fatalf("rotate: %v\n%s", err, stderr)
	}
	var res struct {
		Old         string `json:"old_account"`
		New         string `json:"new_account"`
		Files       int    `json:"files"`
		RecoveryKey string `json:"recovery_key"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("rotate printed %q: %v", out, err)
	}
	t.Logf("rotated %s to %s: %d files", res.Old, res.New, res.Files)
	if res.Old == res.New || res.New == "" || res.Files != len(files) || res.RecoveryKey == "" {
		t.Fatalf("rotate result %+v", res)
	}
	newPass := configValue(t, e.conf, "password")
	if newPass == oldPass {
		t.Fatal("the remote's config still holds the old password")
	}
	if pw, err := obscure.Reveal(newPass); err != nil || pw != newPw {
		t.Fatalf("the remote's config holds password %q, %v", pw, err)
	}

	checkAll := func(conf, what string) {
		t.Helper()
		out, stderr, err := runWith(t, conf, "hashsum", "blake3", "--download", remoteName+":")
		if err != nil {
			t.Fatalf("%s: hashsum: %v\n%s", what, err, stderr)
		}
		sums := parseHashsum(t, out)
		if len(sums) != len(want) {
			t.Fatalf("%s: %d files listed, want %d: %v", what, len(sums), len(want), sums)
		}
		for name, h := range want {
			if sums[name] != h {
				t.Fatalf("%s: %s reads back with hash %q, want %q", what, name, sums[name], h)
			}
		}
	}
	checkAll(e.conf, "the rotating device")

	// The second device, still on the old password: refused, and told.
	_, stderr, err = runWith(t, conf2, "lsf", remoteName+":")
	if err == nil || !strings.Contains(stderr, "rotated") {
		t.Fatalf("second device with the old password: %v\n%s", err, stderr)
	}
	// Given the new password, it opens the new account.
	b, err := os.ReadFile(conf2)
	if err != nil {
		t.Fatal(err)
	}
	old2 := "password = " + configValue(t, conf2, "password")
	if err := os.WriteFile(conf2, []byte(strings.Replace(string(b), old2, "password = "+newPass, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	checkAll(conf2, "the second device with the new password")
	former, _ := filepath.Glob(filepath.Join(configValue(t, conf2, "data_dir"), "*", "slot-0", "former", res.Old+"-*"))
	if len(former) != 1 {
		t.Fatalf("the second device's slot kept no former state of %s: %v", res.Old, former)
	}
	if _, err := os.Stat(filepath.Join(former[0], "account.json")); err != nil {
		t.Fatalf("the old account's key cache was not set aside: %v", err)
	}
}
