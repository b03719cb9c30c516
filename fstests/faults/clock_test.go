package faults_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/rclone/rclone/fs/object"
	"github.com/rclone/rclone/fs/operations"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
)

// TestWrongClocks opens the account on devices whose clocks are 10
// minutes slow, 10 minutes fast and 6 days fast, on eight real nodes
// keeping real time. Each corrects its clock by its peers' (the median of
// their answers to the time protocol), so its signed puts, records and
// heads are accepted; each writes a file, every device reads every file,
// and `backend status` reports the correction.
func TestWrongClocks(t *testing.T) {
	e := newEnv(t, 8, nil)
	ctx := context.Background()
	skews := []time.Duration{-10 * time.Minute, 10 * time.Minute, 6 * 24 * time.Hour}
	want := map[string][]byte{}
	var devices []fs.Fs
	for i, skew := range skews {
		m := configmap.Simple{}
		for _, line := range strings.Split(e.acct.RemoteConfig(t, e.opts), "\n") {
			if k, v, ok := strings.Cut(line, " = "); ok {
				m[k] = v
			}
		}
		f, err := jellyfish.NewFsAt(ctx, remoteName, "", withDefaults(m), func() time.Time { return time.Now().Add(skew) })
		if err != nil {
			t.Fatalf("device %v off: %v", skew, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			f.Features().Shutdown(ctx)
		})
		devices = append(devices, f)
		// The estimate may land in the background when too few peers
		// were connected at first.
		var clock map[string]any
		waitFor(t, 40*time.Second, "the clock estimated", func() bool {
			out, err := f.Features().Command(ctx, "status", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			clock = out.(map[string]any)["clock"].(map[string]any)
			return clock["network_offset"] != "unknown"
		})
		corr, err := time.ParseDuration(clock["correction"].(string))
		if err != nil {
			t.Fatalf("status clock %v: %v", clock, err)
		}
		t.Logf("device %v off: status clock %v", skew, clock)
		if d := corr + skew; d < -5*time.Second || d > 5*time.Second {
			t.Fatalf("device %v off corrects by %v", skew, corr)
		}
		name := fmt.Sprintf("clock-%d.bin", i)
		data := randomBytes(t, 100_000+i)
		if _, err := f.Put(ctx, bytes.NewReader(data), object.NewStaticObjectInfo(name, time.Now(), int64(len(data)), true, nil, f)); err != nil {
			t.Fatalf("device %v off: put: %v", skew, err)
		}
		if _, err := f.Features().Command(ctx, "flush", nil, nil); err != nil {
			t.Fatalf("device %v off: flush: %v", skew, err)
		}
		want[name] = data
	}
	// A device with the right clock, and each skewed one, reads every file.
	devices = append(devices, e.newFs(ctx))
	for i, f := range devices {
		if _, err := f.Features().Command(ctx, "poll", nil, nil); err != nil {
			t.Fatal(err)
		}
		for name, data := range want {
			o, err := f.NewObject(ctx, name)
			if err != nil {
				t.Fatalf("device %d: %s: %v", i, name, err)
			}
			r, err := operations.Open(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("device %d: %s read back wrong: %v", i, name, err)
			}
		}
	}
}
