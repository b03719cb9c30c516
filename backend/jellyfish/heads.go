package jellyfish

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/atomicfile"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// headKey derives the key that encrypts head bodies from the account's root
// key: peers see that a device has a head, never what it points at.
func headKey(root account.RootKey) ([]byte, error) {
	return hkdf.Key(sha256.New, root[:], nil, "jellyfish/ns/v1/head-key", ns.HeadKeySize)
}

// logCacheKey derives the key that seals the device's local copies of log
// batches and checkpoint nodes (ns.LogCache) from the account's root key.
func logCacheKey(root account.RootKey) ([]byte, error) {
	return hkdf.Key(sha256.New, root[:], nil, "jellyfish/ns/v1/log-cache-key", ns.LogCacheKeySize)
}

// accountHeads reads and publishes the heads of an account's devices
// through the DHT's records.
type accountHeads struct {
	acct   *account.Account
	mgr    *account.Manager
	recs   account.Records
	device ns.DeviceID
	key    []byte
	// local is the file in the device slot that keeps a copy of the head
	// this device last published ("" for none).
	local string
	now   func() time.Time
	// onListed, if set, is called when Devices finds this device listed.
	onListed func()

	// pubMu makes Publish one at a time: a head is never replaced by an
	// older one that was published at the same moment.
	pubMu   sync.Mutex
	mu      sync.Mutex
	rev     uint64    // revision (low 16 bits) of the last record published
	last    *ns.Head  // the head last published or read for this device
	expires time.Time // expiry of that record
	// primed is the account record the next Devices call returns instead
	// of reading it (see prime).
	primed *account.Public
}

func newAccountHeads(acct *account.Account, mgr *account.Manager, recs account.Records, device ns.DeviceID, local string) (*accountHeads, error) {
	key, err := headKey(acct.Root)
	if err != nil {
		return nil, err
	}
	return &accountHeads{acct: acct, mgr: mgr, recs: recs, device: device, key: key, local: local, now: time.Now}, nil
}

// Local returns the head this device last published, as kept in its
// slot, or nil. The network forgets a head record that nobody re-signs
// before it expires; a device coming back after that continues its log
// from this copy instead of starting it again at batch 1 (which every
// reader would take for batches it has already read).
func (h *accountHeads) Local() *ns.Head {
	return h.readLocal(h.local)
}

// pendingSuffix names the copy of the head this device is publishing,
// written before the record is put: a process killed while the network
// stores its head leaves it, so the next one knows that head for its own
// (see copiedSlot).
const pendingSuffix = ".pending"

// Pending returns the head this device was publishing when its last
// process ended, or nil.
func (h *accountHeads) Pending() *ns.Head {
	if h.local == "" {
		return nil
	}
	return h.readLocal(h.local + pendingSuffix)
}

func (h *accountHeads) readLocal(path string) *ns.Head {
	if path == "" {
		return nil
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	head, err := ns.OpenHead(h.key, account.HeadKey(h.acct.ID(), account.DeviceID(h.device)), body)
	if err != nil || head.Device != h.device {
		fs.Debugf(nil, "jellyfish: ignoring the slot's copy of its head: %v", err)
		return nil
	}
	return head
}

// Devices lists the devices of the account record.
func (h *accountHeads) Devices(ctx context.Context) ([]ns.DeviceID, error) {
	h.mu.Lock()
	pub := h.primed
	h.primed = nil
	h.mu.Unlock()
	if pub == nil {
		var err error
		if pub, err = h.mgr.Lookup(ctx, h.acct.ID()); err != nil {
			return nil, err
		}
	}
	if h.onListed != nil && pub.Has(account.DeviceID(h.device)) {
		h.onListed()
	}
	return deviceIDs(pub), nil
}

// prime gives the next Devices call the account record read a moment
// ago, so opening a session reads it once.
func (h *accountHeads) prime(pub *account.Public) {
	h.mu.Lock()
	h.primed = pub
	h.mu.Unlock()
}

// Read fetches and opens a device's head, or returns nil if it has none.
func (h *accountHeads) Read(ctx context.Context, dev ns.DeviceID) (*ns.Head, error) {
	key := account.HeadKey(h.acct.ID(), account.DeviceID(dev))
	raw, err := h.recs.Get(ctx, key)
	if errors.Is(err, account.ErrNotFound) {
		return nil, nil
	}
	if err != nil && dev == h.device && errors.Is(err, record.ErrStale) {
		// The nodes that answered hold an older head of this device than
		// this device signed: the nodes with the newer one left, or a
		// process was killed between signing its head and storing it.
		// This device knows its newest, and puts it back: the one this
		// process published, else the one being published when the last
		// process ended, else the slot's copy.
		h.mu.Lock()
		last := h.last
		h.mu.Unlock()
		if last == nil {
			last = h.Pending()
		}
		if local := h.Local(); last == nil || (local != nil && local.BatchSeq > last.BatchSeq) {
			last = local
		}
		if last != nil {
			if perr := h.Publish(ctx, last); perr != nil {
				fs.Debugf(nil, "jellyfish: publish this device's head again: %v", perr)
			}
			return last, nil
		}
		// None kept here: the newest the network holds is this device's
		// own, older than the one lost; the journal stores what came after.
		var se *client.StaleError
		if errors.As(err, &se) && se.Value != nil {
			fs.Debugf(nil, "jellyfish: the network holds an older head of this device than it signed, and no copy of the newer one is kept here: going on from the older")
			raw, err = se.Value, nil
		}
	}
	if err != nil {
		return nil, err
	}
	rec, err := account.VerifyOwned(key, raw)
	if err != nil {
		return nil, err
	}
	head, err := ns.OpenHead(h.key, key, rec.Body)
	if err != nil {
		return nil, err
	}
	if dev == h.device {
		h.mu.Lock()
		if h.last == nil || head.BatchSeq >= h.last.BatchSeq {
			h.last, h.expires = head, rec.Expires
			h.rev = max(h.rev, rec.Seq&0xffff)
		}
		h.mu.Unlock()
	}
	return head, nil
}

// Publish signs and stores this device's head, saying it was seen now.
// Its record sequence number is the batch sequence number in the high bits
// and a revision in the low 16, so republishing the same batch still
// supersedes the previous record.
func (h *accountHeads) Publish(ctx context.Context, head *ns.Head) error {
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	h.mu.Lock()
	older := h.last != nil && head.BatchSeq < h.last.BatchSeq
	h.mu.Unlock()
	if older {
		return nil // a newer head was published meanwhile
	}
	key := account.HeadKey(h.acct.ID(), account.DeviceID(h.device))
	hc := *head
	hc.Version, hc.Seen = ns.HeadVersion, h.now().Unix()
	head = &hc
	body, err := ns.SealHead(h.key, key, head)
	if err != nil {
		return err
	}
	if len(body) > account.MaxHeadBody {
		return fmt.Errorf("jellyfish: head body of %d bytes exceeds %d (metadata redundancy too high)", len(body), account.MaxHeadBody)
	}
	h.mu.Lock()
	h.rev++
	seq := head.BatchSeq<<16 | h.rev&0xffff
	h.mu.Unlock()
	expires := h.now().Add(account.RecordLifetime)
	r := record.Record{Kind: account.KindHead, Seq: seq, Expires: expires, Body: body}
	raw, err := r.Sign(key, h.acct.Identity)
	if err != nil {
		return err
	}
	if h.local != "" {
		// Not synced: it matters only after a kill, when the kernel
		// still writes it out.
		if err := os.WriteFile(h.local+pendingSuffix, body, 0o600); err != nil {
			fs.Debugf(nil, "jellyfish: keep a copy of the head being published: %v", err)
		}
	}
	if err := h.recs.Put(ctx, key, raw); err != nil {
		return err
	}
	h.mu.Lock()
	if h.last != nil && head.BatchSeq < h.last.BatchSeq {
		h.mu.Unlock()
		return nil // a newer head was published meanwhile
	}
	h.last, h.expires = head, expires
	h.mu.Unlock()
	if h.local != "" {
		// Sealed like the record's body, under the same key.
		if err := atomicfile.Write(h.local, body, 0o600); err != nil {
			fs.Debugf(nil, "jellyfish: keep a copy of the head: %v", err)
		} else {
			os.Remove(h.local + pendingSuffix)
		}
	}
	return nil
}

// restoredRev is the revision a head published again from the slot's copy
// takes (see Restore).
const restoredRev = 1 << 15

// Restore publishes head, this device's newest as kept in its slot, when
// the network forgot it. Its nodes may still remember the sequence numbers
// the record reached (re-signs add one to the revision, once in two weeks
// at most) and refuse any below: a restored head takes revision 2^15 of
// its batch, above what re-signing could reach in a thousand years.
func (h *accountHeads) Restore(ctx context.Context, head *ns.Head) error {
	h.mu.Lock()
	h.rev = max(h.rev, restoredRev-1)
	h.mu.Unlock()
	return h.Publish(ctx, head)
}

// seenEvery: a device in use republishes its head at least this often,
// so the other devices know it is (see retireAfter).
const seenEvery = 24 * time.Hour

// refresh republishes this device's head when less than minLeft of its
// lifetime remains, when the head last said the device was seen over
// seenEvery ago, or when it is a version 2 head (which says nothing of
// that). A device that has none yet (it never wrote) publishes one
// without batches, so that the other devices see it is in use.
func (h *accountHeads) refresh(ctx context.Context, minLeft time.Duration) error {
	h.mu.Lock()
	last, expires := h.last, h.expires
	h.mu.Unlock()
	if last == nil {
		// Read first: a head this process has not read yet is not lost
		// to one without batches.
		got, err := h.Read(ctx, h.device)
		if err != nil {
			return err
		}
		if got == nil && h.Local() == nil {
			return h.Publish(ctx, &ns.Head{Version: ns.HeadVersion, Device: h.device})
		}
		h.mu.Lock()
		last, expires = h.last, h.expires
		h.mu.Unlock()
		if last == nil {
			return nil // the slot's copy is newer: load publishes it again
		}
	}
	if last.Version == 1 {
		return nil // a version 1 head is rewritten by the next flush
	}
	now := h.now()
	if expires.Sub(now) >= minLeft && last.Version == ns.HeadVersion && now.Sub(time.Unix(last.Seen, 0)) < seenEvery {
		return nil
	}
	return h.Publish(ctx, last)
}

// metaObjects stores the namespace's objects (log batches, checkpoint
// nodes) with the metadata redundancy, keeping a copy of each one this
// device wrote or read in the slot's log cache.
type metaObjects struct {
	store *objectStore
	enc   *codec.Encoder
	cache *ns.LogCache // nil without one
}

// Put stores data as one object and returns its encoded reference.
func (m *metaObjects) Put(ctx context.Context, data []byte) ([]byte, error) {
	ref, err := m.store.Put(ctx, m.enc, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	rb, err := ref.Marshal()
	if err != nil {
		return nil, err
	}
	if m.cache != nil {
		if err := m.cache.Put(rb, data); err != nil {
			fs.Debugf(nil, "jellyfish: log cache: %v", err)
		}
	}
	return rb, nil
}

// Get returns an object: this device's copy if it has one, else from the
// network.
func (m *metaObjects) Get(ctx context.Context, refBytes []byte) ([]byte, error) {
	if m.cache != nil {
		if data, ok := m.cache.Get(refBytes); ok {
			return data, nil
		}
	}
	ref, err := UnmarshalObjRef(refBytes)
	if err != nil {
		return nil, err
	}
	rc, err := m.store.Open(ctx, ref, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// The layout knows the size: read into one buffer of exactly that.
	buf := make([]byte, ref.Layout.Size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, err
	}
	if m.cache != nil {
		if err := m.cache.Put(refBytes, buf); err != nil {
			fs.Debugf(nil, "jellyfish: log cache: %v", err)
		}
	}
	return buf, nil
}

// Forget drops the local copy of an object.
func (m *metaObjects) Forget(ref []byte) {
	if m.cache != nil {
		m.cache.Remove(ref)
	}
}
