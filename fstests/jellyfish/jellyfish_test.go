// Package jellyfish_test runs rclone's own backend test suite against the
// Jellyfish backend on a real in-process network of provider nodes.
package jellyfish_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rclone/rclone/fstest/fstests"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
)

// TestJellyfish runs rclone's backend suite (fstests.Run) on an 8-node
// provider network with 4+4 redundancy, so every shard of a segment lands on
// a distinct node.
//
// The suite skips these tests, each for a feature Jellyfish does not have:
//   - metadata (ObjectMetadata, ObjectSetMetadata, FsCopy/Metadata,
//     FsMove/Metadata, FsMkdirMetadata): no user metadata beyond size,
//     modification time and hash is stored;
//   - FsDirSetModTime, FsDirectory: directory modification times are not
//     settable;
//   - FsPutChunked, FsCopyChunked, FsOpenChunkWriter, FsOpenWriterAt,
//     FsPutRetry/Chunked, FsPutShortEOF/Chunked: no multipart or
//     random-access upload API (segments are encoded from a stream);
//   - FsPutRetry/Simple/Status500, NetError: rclone injects these faults
//     into HTTP requests, and Jellyfish does not speak HTTP;
//   - FsChangeNotify: not implemented yet (polling other devices' heads);
//   - FsNewObjectCaseInsensitive: paths are case-sensitive;
//   - PublicLink, SetTier, Bucket: no public links, storage tiers or
//     buckets;
//   - FsCheckWrap, ObjectCheckWrap, Internal: only for wrapping backends or
//     backends with internal tests.
func TestJellyfish(t *testing.T) {
	// Every file as shards of its own: the suite's files are small, and the
	// default would keep most of them inline or packed.
	runSuite(t, "0", "0")
}

// TestJellyfishPacked runs the suite with every file up to 1 MiB packed
// into shared objects (none inline).
func TestJellyfishPacked(t *testing.T) {
	runSuite(t, "0", "1Mi")
}

// TestJellyfishInline runs the suite again with the defaults, so tiny files
// travel inside the log batches and small ones in packs.
func TestJellyfishInline(t *testing.T) {
	runSuite(t, "8Ki", "1Mi")
}

func runSuite(t *testing.T, inlineMax, packMax string) {
	net := jftest.StartNetwork(t, 8)
	acct := net.CreateAccount(t, "fstest")
	conf := filepath.Join(t.TempDir(), "rclone.conf")
	section := acct.RemoteConfig(t, map[string]string{"data_shards": "4", "parity_shards": "4", "cleanup_grace": "0s", "inline_max": inlineMax, "pack_max": packMax})
	if err := os.WriteFile(conf, []byte("[TestJellyfish]\n"+section), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RCLONE_CONFIG", conf)
	fstests.Run(t, &fstests.Opt{
		RemoteName: "TestJellyfish:",
		NilObject:  (*jellyfish.Object)(nil),
	})
}
