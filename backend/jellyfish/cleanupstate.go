package jellyfish

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rclone/rclone/fs"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/atomicfile"
)

// The cleanup state is what CleanUp needs to remember between processes
// of one device: the contents this device stopped referring to, and when,
// the log objects (checkpoint nodes) it let go, and its last look at each
// of its packs. It lives in the device slot, so
// a `jellyfish cleanup` run from cron a day after a `sync` frees what that
// sync replaced. It holds object references (data keys), so it is sealed
// under a key derived from the account's root key:
//
//	"JFcs" | version u8 (1) | nonce [24] | XChaCha20-Poly1305(ad = "JFcs") of JSON
//	{ unref: [{ r: content, t: time }], nodes: [{ r, t }], looks: [{ p, rev, t, live }] }
const (
	cleanupStateFile    = "cleanup.state"
	cleanupStateMagic   = "JFcs"
	cleanupStateVersion = 1
	// maxUnrefKept bounds the remembered candidates; beyond it the oldest
	// are forgotten (their shards then expire with their lease).
	maxUnrefKept = 1 << 16
	// maxCleanupState bounds the file read back.
	maxCleanupState = 64 << 20
)

type cleanupState struct {
	Unref []unrefRecord `json:"unref,omitempty"`
	Nodes []unrefRecord `json:"nodes,omitempty"`
	Looks []lookRecord  `json:"looks,omitempty"`
}

type unrefRecord struct {
	Ref  []byte    `json:"r"`
	When time.Time `json:"t"`
}

type lookRecord struct {
	Pack ns.PackID   `json:"p"`
	Rev  uint64      `json:"rev"`
	When time.Time   `json:"t"`
	Live []ns.Extent `json:"live,omitempty"`
}

func cleanupStateKey(root account.RootKey) ([]byte, error) {
	return hkdf.Key(sha256.New, root[:], nil, "jellyfish/backend/v1/cleanup-state-key", chacha20poly1305.KeySize)
}

// loadCleanupState restores the remembered candidates and looks. A missing
// file is an empty state; an unreadable one is logged and ignored (the
// worst outcome is shards left to expire with their lease).
func (s *session) loadCleanupState() {
	if s.slotDir == "" {
		return
	}
	st, err := readCleanupState(filepath.Join(s.slotDir, cleanupStateFile), s.acct.Root)
	if err != nil {
		fs.Logf(nil, "jellyfish: cleanup state ignored: %v", err)
		return
	}
	s.clean.saved, _ = json.Marshal(st)
	s.clean.mu.Lock()
	for _, u := range st.Unref {
		s.clean.unref = append(s.clean.unref, unrefContent{u.Ref, u.When})
	}
	for _, u := range st.Nodes {
		s.clean.nodes = append(s.clean.nodes, unrefContent{u.Ref, u.When})
	}
	s.clean.mu.Unlock()
	s.packs.mu.Lock()
	if s.packs.liveSeen == nil {
		s.packs.liveSeen = map[ns.PackID]liveLook{}
	}
	for _, l := range st.Looks {
		s.packs.liveSeen[l.Pack] = liveLook{rev: l.Rev, when: l.When, live: l.Live}
	}
	s.packs.mu.Unlock()
}

// saveCleanupState writes the candidates and looks back to the slot.
func (s *session) saveCleanupState() error {
	if s.slotDir == "" {
		return nil
	}
	s.clean.saveMu.Lock()
	defer s.clean.saveMu.Unlock()
	var st cleanupState
	s.clean.mu.Lock()
	for _, list := range []struct {
		from []unrefContent
		to   *[]unrefRecord
	}{{s.clean.unref, &st.Unref}, {s.clean.nodes, &st.Nodes}} {
		from := list.from
		if len(from) > maxUnrefKept {
			from = from[len(from)-maxUnrefKept:]
		}
		for _, u := range from {
			*list.to = append(*list.to, unrefRecord{u.content, u.when})
		}
	}
	s.clean.mu.Unlock()
	s.packs.mu.Lock()
	for id, l := range s.packs.liveSeen {
		st.Looks = append(st.Looks, lookRecord{id, l.rev, l.when, l.live})
	}
	s.packs.mu.Unlock()
	slices.SortFunc(st.Looks, func(a, b lookRecord) int { return bytes.Compare(a.Pack[:], b.Pack[:]) })
	pt, err := json.Marshal(&st)
	if err != nil {
		return err
	}
	// Most processes change nothing here: no write at their exit.
	if bytes.Equal(pt, s.clean.saved) {
		return nil
	}
	b, err := sealCleanupState(s.acct.Root, pt)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(s.slotDir, cleanupStateFile), b, 0o600); err != nil {
		return err
	}
	s.clean.saved = pt
	return nil
}

func cleanupAEAD(root account.RootKey) (cipher.AEAD, error) {
	key, err := cleanupStateKey(root)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.NewX(key)
}

func readCleanupState(path string, root account.RootKey) (*cleanupState, error) {
	var st cleanupState
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &st, nil
	}
	if err != nil {
		return nil, err
	}
	aead, err := cleanupAEAD(root)
	if err != nil {
		return nil, err
	}
	h := len(cleanupStateMagic) + 1 + aead.NonceSize()
	if len(b) > maxCleanupState || len(b) < h || !bytes.HasPrefix(b, []byte(cleanupStateMagic)) || b[len(cleanupStateMagic)] != cleanupStateVersion {
		return nil, fmt.Errorf("%s: not a cleanup state of version %d", path, cleanupStateVersion)
	}
	pt, err := aead.Open(nil, b[len(cleanupStateMagic)+1:h], b[h:], []byte(cleanupStateMagic))
	if err != nil {
		return nil, fmt.Errorf("%s: does not open with this account's key", path)
	}
	if err := json.Unmarshal(pt, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &st, nil
}

// sealCleanupState seals the encoded state pt for the file.
func sealCleanupState(root account.RootKey, pt []byte) ([]byte, error) {
	aead, err := cleanupAEAD(root)
	if err != nil {
		return nil, err
	}
	b := append([]byte(cleanupStateMagic), cleanupStateVersion)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	b = append(b, nonce...)
	return aead.Seal(b, nonce, pt, []byte(cleanupStateMagic)), nil
}
