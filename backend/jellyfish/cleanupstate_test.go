package jellyfish

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
)

// TestCleanupStateVersion1 reads a cleanup state written by the version 1
// encoder (a content reference of version 1 and a pack look), and checks
// that another account's key does not open it.
func TestCleanupStateVersion1(t *testing.T) {
	var root account.RootKey
	for i := range root {
		root[i] = byte(i)
	}
	st, err := readCleanupState("testdata/cleanup-v1.state", root)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile("objref/testdata/v1-ref.bin")
	if err != nil {
		t.Fatal(err)
	}
	want := &cleanupState{
		Unref: []unrefRecord{{ref, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}},
		Looks: []lookRecord{{ns.PackID{7}, 3, time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), []ns.Extent{{Off: 10, Len: 20}}}},
	}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("got %+v\nwant %+v", st, want)
	}
	root[0] ^= 1
	if _, err := readCleanupState("testdata/cleanup-v1.state", root); err == nil {
		t.Fatal("opened with another account's key")
	}
	// A missing file is an empty state; a damaged one an error.
	if st, err := readCleanupState(filepath.Join(t.TempDir(), "none"), root); err != nil || len(st.Unref) != 0 {
		t.Fatalf("missing file: %+v %v", st, err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("JFcs\x01short"), 0o600)
	if _, err := readCleanupState(bad, root); err == nil {
		t.Fatal("damaged file read")
	}
}
