package jftest

import (
	"os"
	"testing"

	"github.com/rclone/rclone/fs/config"
	"github.com/rclone/rclone/fs/config/configfile"
)

// ReloadConfig makes rclone read its config from $RCLONE_CONFIG, for tests
// that open remotes with fs.NewFs rather than through fstests.Run.
func ReloadConfig(t testing.TB) {
	t.Helper()
	if err := config.SetConfigPath(os.Getenv("RCLONE_CONFIG")); err != nil {
		t.Fatal(err)
	}
	configfile.Install()
}
