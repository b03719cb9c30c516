// Package webdav_test serves the Jellyfish backend with rclone's `serve
// webdav` and runs rclone's backend suite (fstests.Run) through rclone's
// WebDAV client backend against it: the path a user takes who mounts the
// network as a WebDAV drive.
//
// The server is started in-process through the rc call serve/start, the
// same code `rclone rcd` runs, listening on 127.0.0.1 with basic
// authentication. rclone's own test of serve webdav (servetest.Run) runs
// `go test` inside rclone's module directory, which cannot work from this
// module, so the client suite is run here directly on a
// `:webdav,url=…,vendor=rclone:` remote.
package webdav_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rclone/rclone/backend/webdav"
	_ "github.com/rclone/rclone/cmd/serve/webdav" // registers serve type webdav with serve/start
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config"
	"github.com/rclone/rclone/fs/config/obscure"
	"github.com/rclone/rclone/fs/object"
	"github.com/rclone/rclone/fs/operations"
	"github.com/rclone/rclone/fs/rc"
	"github.com/rclone/rclone/fstest"
	"github.com/rclone/rclone/fstest/fstests"

	_ "github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
)

const (
	davUser = "dav"
	davPass = "quartz heron tide"
)

// serve starts `serve webdav` of remote on 127.0.0.1 and returns its URL.
// The server is stopped when the test ends.
func serve(t *testing.T, remote string, extra rc.Params) string {
	t.Helper()
	start := rc.Calls.Get("serve/start")
	if start == nil {
		t.Fatal("rc call serve/start is not registered")
	}
	in := rc.Params{"type": "webdav", "fs": remote, "addr": "127.0.0.1:0", "user": davUser, "pass": davPass}
	for k, v := range extra {
		in[k] = v
	}
	out, err := start.Fn(context.Background(), in)
	if err != nil {
		t.Fatalf("serve/start: %v", err)
	}
	id, _ := out["id"].(string)
	addr, _ := out["addr"].(string)
	t.Cleanup(func() {
		if _, err := rc.Calls.Get("serve/stop").Fn(context.Background(), rc.Params{"id": id}); err != nil {
			t.Errorf("serve/stop %s: %v", id, err)
		}
	})
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("server listens on %q, want 127.0.0.1", addr)
	}
	return "http://" + addr + "/"
}

// davRemote is a connection-string remote of rclone's WebDAV client for url.
func davRemote(url string) string {
	return fmt.Sprintf(":webdav,url='%s',vendor=rclone,user=%s,pass='%s':", url, davUser, obscure.MustObscure(davPass))
}

// waitObject polls f until remote exists, for up to a minute: with the
// writes cache mode the server uploads a file a few seconds after the
// client's PUT has returned.
func waitObject(t *testing.T, f fs.Fs, remote string) fs.Object {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		o, err := f.NewObject(ctx, remote)
		if err == nil {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s written through webdav is not in the backend after a minute: %v", remote, err)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

// TestWebDAV runs rclone's backend suite through serve webdav on an
// 8-node network with 4+4 redundancy and 1 MiB segments, with the server's
// VFS cache off and in writes mode, then checks that a file written by the
// WebDAV client is a Jellyfish file.
//
// The suite skips (31 tests in each mode) what rclone's WebDAV client
// lacks (ListR, backend commands, chunked, multipart and random-access
// uploads, change notification, MIME types, directory modification times,
// metadata, tiers, public links), what does not apply (case-insensitive
// lookup, buckets, Shutdown, the wrapping checks, Internal).
func TestWebDAV(t *testing.T) {
	net := jftest.StartNetwork(t, 8)
	acct := net.CreateAccount(t, "davtest")
	section := acct.RemoteConfig(t, map[string]string{
		"data_shards": "4", "parity_shards": "4", "segment_size": "1M", "cleanup_grace": "0s",
	})
	conf := filepath.Join(t.TempDir(), "rclone.conf")
	if err := os.WriteFile(conf, []byte("[TestJellyfish]\n"+section), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RCLONE_CONFIG", conf)
	fstest.Initialise()
	// The server's VFS cache, for the writes mode.
	if err := config.SetCacheDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}

	for _, mode := range []string{"off", "writes"} {
		t.Run("CacheMode="+mode, func(t *testing.T) {
			backing := "TestJellyfish:served-" + mode
			remote := davRemote(serve(t, backing, rc.Params{"vfs_cache_mode": mode}))
			t.Run("Suite", func(t *testing.T) {
				fstests.Run(t, &fstests.Opt{
					RemoteName:    remote,
					NilObject:     (*webdav.Object)(nil),
					ChunkedUpload: fstests.ChunkedUploadConfig{Skip: true},
				})
			})
			t.Run("ServesJellyfish", func(t *testing.T) { servesJellyfish(t, remote, backing) })
		})
	}
}

// servesJellyfish writes a file with the WebDAV client and reads it back
// from the backend directly.
func servesJellyfish(t *testing.T, remote, backing string) {
	ctx := context.Background()
	dav, err := fs.NewFs(ctx, remote)
	if err != nil {
		t.Fatal(err)
	}
	jf, err := fs.NewFs(ctx, backing)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("jellyfish over webdav\n"), 100_000) // 2.2 MB: three segments
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	src := object.NewStaticObjectInfo("check/over-dav.txt", mtime, int64(len(data)), true, nil, nil)
	if _, err := dav.Put(ctx, bytes.NewReader(data), src); err != nil {
		t.Fatalf("put through webdav: %v", err)
	}
	t.Cleanup(func() { _ = operations.Purge(ctx, jf, "check") })
	o := waitObject(t, jf, "check/over-dav.txt")
	if o.Size() != int64(len(data)) {
		t.Errorf("backend size %d, want %d", o.Size(), len(data))
	}
	if got := o.ModTime(ctx); !got.Equal(mtime) {
		t.Errorf("backend modtime %v, want %v", got, mtime)
	}
	r, err := o.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("backend content differs from what was written through webdav (%d bytes vs %d)", len(got), len(data))
	}
}
