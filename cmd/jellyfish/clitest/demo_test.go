package clitest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs the README's first command the way `make demo` does: a
// local network, a sync of the sample folder, a third of the nodes
// stopped, and a check that downloads every file. It must end with no
// differences and exit 0, and leave a working rclone.conf behind.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	stdout, stderr, code := run(t, nil, "demo", "--dir", dir, "--nodes", "6")
	if code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"stopping 2 of the 6 nodes", "0 differences found", "7 matching files", "byte for byte"} {
		if !strings.Contains(stdout+stderr, want) {
			t.Errorf("demo output lacks %q\nstdout:\n%s\nstderr:\n%s", want, stdout, stderr)
		}
	}
	conf, err := os.ReadFile(filepath.Join(dir, "rclone.conf"))
	if err != nil || !strings.Contains(string(conf), "type = jellyfish") {
		t.Fatalf("rclone.conf: %v\n%s", err, conf)
	}
}
