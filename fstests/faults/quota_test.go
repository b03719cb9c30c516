package faults_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rclone/rclone/fs/object"

	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
)

// TestQuotaFull fills providers with tiny quotas: an upload larger than
// all of them together fails soon, in this process and in a child
// process, with an error that names the quota, and the files stored
// before still read back byte for byte.
func TestQuotaFull(t *testing.T) {
	const quota = 2 << 20 // per node: 16 MiB of shards on 8 nodes
	net := jftest.StartNetworkConfig(t, 8, provider.TestnetConfig{QuotaBytes: quota})
	e := newEnvOn(t, net, map[string]string{"segment_size": "1M"})
	src := t.TempDir()
	kept := map[string][]byte{
		"kept/a.bin": randomBytes(t, 300<<10),
		"kept/b.txt": []byte("stored before the quota ran out\n"),
	}
	for name, data := range kept {
		writeFile(t, filepath.Join(src, "kept"), strings.TrimPrefix(name, "kept/"), data)
	}
	e.mustRun("copy", filepath.Join(src, "kept"), remoteName+":kept")

	// 12 MiB of data is 24 MiB of shards with k = m.
	big := randomBytes(t, 12<<20)
	ctx := context.Background()
	f := e.newFs(ctx)
	start := time.Now()
	info := object.NewStaticObjectInfo("big.bin", time.Now(), int64(len(big)), true, nil, nil)
	_, err := f.Put(ctx, bytes.NewReader(big), info)
	took := time.Since(start)
	if err == nil {
		t.Fatal("an upload larger than every provider's quota together succeeded")
	}
	t.Logf("upload failed after %v: %v", took.Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), "quota") {
		t.Errorf("the upload's error does not name the quota: %v", err)
	}
	if took > 30*time.Second {
		t.Errorf("the failed upload took %v", took)
	}
	if _, err := f.NewObject(ctx, "big.bin"); err == nil {
		t.Error("the failed upload left an entry")
	}
	t.Logf("providers hold %d bytes of shards after the failed upload", e.storedBytes())

	bigPath := writeFile(t, src, "big.bin", big)
	start = time.Now()
	_, stderr, err := e.run("copyto", bigPath, remoteName+":big.bin")
	took = time.Since(start)
	if err == nil {
		t.Fatal("copyto of a file larger than every quota together succeeded")
	}
	if !strings.Contains(stderr, "quota") {
		t.Errorf("copyto's error does not name the quota:\n%s", stderr)
	}
	if took > 60*time.Second {
		t.Errorf("copyto took %v to fail", took)
	}
	t.Logf("copyto failed after %v", took.Round(time.Millisecond))

	for name, data := range kept {
		o, err := f.NewObject(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(ctx, o)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s after the quota ran out, in this process: %d bytes, %v", name, len(got), err)
		}
		out, stderr, err := e.run("cat", remoteName+":"+name)
		if err != nil || !bytes.Equal(out, data) {
			t.Errorf("%s after the quota ran out, in a new process: %d bytes, %v\n%s", name, len(out), err, stderr)
		}
	}
	out, stderr, err := e.run("lsf", "-R", remoteName+":")
	if err != nil {
		t.Fatalf("lsf: %v\n%s", err, stderr)
	}
	if strings.Contains(string(out), "big.bin") {
		t.Errorf("a failed upload is listed:\n%s", out)
	}
}
