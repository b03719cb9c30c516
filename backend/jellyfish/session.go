package jellyfish

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/lib/atexit"
	"golang.org/x/sync/errgroup"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/journal"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
)

// network is what a session needs from the peer network: the shard
// protocol as the account's owner, the provider nodes to place shards on,
// and the DHT's records. The real one is a client-mode node of this process.
type network interface {
	Shards(owner crypto.PrivKey) (shardIO, error)
	Providers(ctx context.Context) ([]peer.ID, error)
	Records() account.Records
	OwnedCapacity(ctx context.Context, owner peer.ID) (bytes int64, nodes int, err error)
	Peers() int
	Close() error
}

// session is one account's state in this process, shared by every Fs of
// the account (rclone opens several per command, on sub-paths): the
// network client, the unlocked account, the merged namespace and the
// writes not yet flushed.
type session struct {
	key     string
	opt     *Options
	net     network
	acct    *account.Account
	mgr     *account.Manager
	device  ns.DeviceID
	unlock  func()
	slotDir string // this device's slot: key cache, identity, cleanup state
	// cleanupSaved is the cleanup state as last read or written (JSON);
	// saveMu serializes the writes.
	saveMu       sync.Mutex
	cleanupSaved []byte
	tree         *ns.Tree
	clock        *ns.Clock
	store        *objectStore
	enc          *codec.Encoder // file contents
	metaEnc      *codec.Encoder // log batches and checkpoints
	packEnc      *codec.Encoder // packs of small files
	repairs      repairQueue
	packs        packer
	packSegs     segCache // decoded pack segments, for reads of packed files

	mu         sync.Mutex // guards the fields below
	pending    []ns.Entry
	head       headState
	unref      []unrefContent // contents no entry refers to any more, for CleanUp
	flushTimer *time.Timer

	flushMu sync.Mutex // one flush at a time; guards headRev
	headRev uint64     // revision (low 16 bits) of the last head record published
	pollMu  sync.Mutex // one poll at a time

	// bg runs the session's background work (record refreshes) under bgCtx.
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc

	// applied is, per device, the last batch applied to the tree.
	applied map[ns.DeviceID]uint64

	// logCache keeps the log batches and checkpoints this device read or
	// wrote, so the next process need not fetch them; nil without one.
	logCache *ns.LogCache

	// journal holds every change from its commit until a flush stored it
	// (see package journal); nil in tests without a slot.
	journal *journal.Journal
	// closed: the session was shut down; commits are refused. Guarded by mu.
	closed bool
	// flushedHLC is, per device whose head was read, the newest stamp its
	// log holds: journal records at or below it were flushed.
	flushedHLC map[ns.DeviceID]uint64

	// changes lists the paths changed in this process, by this device or by
	// others, for ChangeNotify; changesBase is the index of changes[0].
	chMu        sync.Mutex
	changes     []string
	changesBase int
}

// maxChanges bounds the change list kept for ChangeNotify.
const maxChanges = 1 << 16

func (s *session) noteChanges(paths ...string) {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	s.changes = append(s.changes, paths...)
	if over := len(s.changes) - maxChanges; over > 0 {
		s.changes = append(s.changes[:0:0], s.changes[over:]...)
		s.changesBase += over
	}
}

// changeCursor returns the cursor of the next change.
func (s *session) changeCursor() int {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	return s.changesBase + len(s.changes)
}

// changesSince returns the paths changed since cursor and the new cursor.
func (s *session) changesSince(cursor int) ([]string, int) {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	end := s.changesBase + len(s.changes)
	if cursor < s.changesBase {
		fs.Logf(nil, "jellyfish: change notifications fell behind: %d changes missed", s.changesBase-cursor)
		cursor = s.changesBase
	}
	out := append([]string(nil), s.changes[cursor-s.changesBase:]...)
	return out, end
}

// sessions holds the live sessions of this process, one per account and
// network. rclone creates Fs values freely and never closes them, so this
// registry is what lets them share one client node and one namespace.
var (
	sessionsMu sync.Mutex
	sessions   = map[string]*session{}
)

// flushDelay is how long a write waits for company before its batch is
// flushed; well inside the 5 s promise.
const flushDelay = time.Second

// flushRetry is how long a failed flush waits before it is tried again.
const flushRetry = 5 * time.Second

func getSession(ctx context.Context, opt *Options) (*session, error) {
	key := opt.Username + "\x00" + opt.sessionKey()
	sessionsMu.Lock()
	defer sessionsMu.Unlock()
	if s, ok := sessions[key]; ok {
		return s, nil
	}
	s, err := newSession(ctx, key, opt)
	if err != nil {
		return nil, err
	}
	sessions[key] = s
	return s, nil
}

func newSession(ctx context.Context, key string, opt *Options) (s *session, err error) {
	user, err := account.NormalizeUsername(opt.Username)
	if err != nil {
		return nil, err
	}
	if opt.Password == "" {
		return nil, errors.New("jellyfish: no password configured for this remote (run `jellyfish config`)")
	}
	slotDir, unlock, err := lockSlot(filepath.Join(opt.dataDir(), string(user)))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	nw, err := connect(ctx, opt, slotDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			nw.Close()
		}
	}()
	var mopts []account.Option
	if opt.InsecureTestKDF {
		mopts = append(mopts, account.InsecureTestKDF())
	}
	mgr := account.NewManager(nw.Records(), mopts...)
	acct := loadKeyCache(slotDir, user, opt.Password, opt.InsecureTestKDF)
	if acct == nil {
		if acct, err = mgr.Login(ctx, user, opt.Password); err != nil {
			if errors.Is(err, account.ErrBadLogin) {
				return nil, fmt.Errorf("%w: create the account with `jellyfish account create` or `jellyfish config`", err)
			}
			return nil, err
		}
		if err := saveKeyCache(slotDir, acct, opt.Password, opt.InsecureTestKDF); err != nil {
			fs.Debugf(nil, "jellyfish: cache account keys: %v", err)
		}
	}
	device, err := loadDevice(slotDir)
	if err != nil {
		return nil, err
	}
	fileParams := codec.Params{K: opt.DataShards, M: opt.ParityShards, SegmentSize: int(opt.SegmentSize), Compression: opt.compression()}
	enc, err := codec.NewEncoder(fileParams)
	if err != nil {
		return nil, err
	}
	packEnc, err := packEncoder(fileParams)
	if err != nil {
		return nil, err
	}
	metaParams := codec.Params{K: opt.MetaDataShards, M: opt.MetaParityShards, SegmentSize: codec.DefaultSegmentSize, Compression: codec.CompressZstd}
	metaEnc, err := codec.NewEncoder(metaParams)
	if err != nil {
		return nil, err
	}
	s = &session{
		key: key, opt: opt, net: nw, acct: acct, mgr: mgr, device: device, unlock: unlock, slotDir: slotDir,
		tree: ns.NewTree(), clock: ns.NewClock(nil), enc: enc, metaEnc: metaEnc, packEnc: packEnc,
		applied: map[ns.DeviceID]uint64{}, flushedHLC: map[ns.DeviceID]uint64{},
	}
	threshold := defaultThreshold
	if opt.SuccessShards > 0 {
		threshold = func(k, m int) int { return min(int(opt.SuccessShards), k+m) }
	}
	shards, err := nw.Shards(acct.Identity)
	if err != nil {
		return nil, err
	}
	s.store = &objectStore{
		shards: shards, providers: nw.Providers, lease: time.Duration(opt.Lease),
		threshold: threshold, sem: make(chan struct{}, 16), repairs: &s.repairs,
	}
	s.head.Device = device
	s.logCache = openLogCache(slotDir, acct.Root)
	devs, err := s.registerDevice(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.load(ctx, devs); err != nil {
		return nil, err
	}
	s.loadCleanupState()
	if err := s.openJournal(ctx); err != nil {
		return nil, err
	}
	// rclone does not call Shutdown when a signal ends it: flush then.
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.refreshRecords(s.bgCtx)
	}()
	// rclone runs its exit functions when a command ends and when a
	// signal ends it (it never calls Shutdown then): flush, then leave the
	// network so providers do not keep this process's connections open.
	atexit.Register(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.close(ctx); err != nil {
			fs.Errorf(nil, "jellyfish: at exit: %v", err)
		}
	})
	return s, nil
}

// refreshAfter: records with less than this much life left are re-signed
// when a session starts, so an account and its devices' logs stay in the
// network as long as they are used, however rarely they change.
const refreshAfter = 21 * 24 * time.Hour

// refreshRecords re-signs the account's login and account records and this
// device's head when they are due.
func (s *session) refreshRecords(ctx context.Context) {
	if err := s.mgr.RefreshRecords(ctx, s.acct, refreshAfter); err != nil && ctx.Err() == nil {
		fs.Debugf(nil, "jellyfish: refresh account records: %v", err)
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	head := s.head
	s.mu.Unlock()
	if head.Tip == nil || time.Until(head.recExpires) >= refreshAfter {
		return
	}
	if err := s.publishHead(ctx, &head); err != nil && ctx.Err() == nil {
		fs.Debugf(nil, "jellyfish: refresh head: %v", err)
	}
}

// close flushes pending changes, leaves the network and releases the
// device slot. The session is unusable afterwards and leaves the registry.
// Changes a failed final flush could not store stay in the journal, and
// the error says so: the next process of the account on this machine
// stores them.
func (s *session) close(ctx context.Context) error {
	sessionsMu.Lock()
	if sessions[s.key] == s {
		delete(sessions, s.key)
	}
	sessionsMu.Unlock()
	s.bgCancel()
	s.bg.Wait()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.flush(ctx)
	if err != nil {
		err = s.notStored(err)
	}
	if serr := s.saveCleanupState(); serr != nil {
		fs.Debugf(nil, "jellyfish: save cleanup state: %v", serr)
	}
	s.mu.Lock()
	if s.flushTimer != nil {
		s.flushTimer.Stop()
		s.flushTimer = nil
	}
	s.mu.Unlock()
	if s.journal != nil {
		if jerr := s.journal.Close(); jerr != nil {
			err = errors.Join(err, fmt.Errorf("jellyfish: journal: %w", jerr))
		}
	}
	if cerr := s.net.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	s.unlock()
	return err
}

// notStored turns a failed final flush into an error that names what is
// not on the network yet and where it is kept.
func (s *session) notStored(err error) error {
	s.mu.Lock()
	pending := s.pending
	s.mu.Unlock()
	if len(pending) == 0 {
		return err
	}
	var names []string
	for _, e := range pending {
		if len(names) == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(pending)-5))
			break
		}
		names = append(names, fmt.Sprintf("%q", e.Path))
	}
	where := "this process's memory only"
	if s.journal != nil {
		where = "the journal in " + filepath.Join(s.slotDir, journalDir) + "; the next jellyfish command for this account on this machine stores them"
	}
	return fmt.Errorf("jellyfish: %d changes are not stored on the network yet (%s): kept in %s: %w",
		len(pending), strings.Join(names, ", "), where, err)
}

// lockSlot takes the first free device slot under dir. A slot is one
// device: one head record, one writer. Concurrent processes of one account
// on one machine take different slots, so no head ever has two writers,
// and the number of heads stays bounded by how many run at once.
func lockSlot(dir string) (string, func(), error) {
	for i := range 64 {
		slot := filepath.Join(dir, fmt.Sprintf("slot-%d", i))
		if err := os.MkdirAll(slot, 0o700); err != nil {
			return "", nil, fmt.Errorf("jellyfish: data dir: %w", err)
		}
		if unlock, ok := tryLockSlot(slot); ok {
			return slot, unlock, nil
		}
	}
	return "", nil, fmt.Errorf("jellyfish: all 64 device slots under %s are in use", dir)
}

// loadDevice returns the slot's device ID, creating it on first use.
func loadDevice(slot string) (ns.DeviceID, error) {
	var d ns.DeviceID
	p := filepath.Join(slot, "device")
	b, err := os.ReadFile(p)
	if err == nil {
		return d, d.UnmarshalText(bytes.TrimSpace(b))
	}
	if !errors.Is(err, os.ErrNotExist) {
		return d, err
	}
	if _, err := rand.Read(d[:]); err != nil {
		return d, err
	}
	txt, _ := d.MarshalText()
	if err := os.WriteFile(p+".tmp", append(txt, '\n'), 0o600); err != nil {
		return d, err
	}
	return d, os.Rename(p+".tmp", p)
}

// registerDevice lists this device in the account record if it is new,
// and returns the account's devices.
func (s *session) registerDevice(ctx context.Context) ([]ns.DeviceID, error) {
	pub, err := s.mgr.Lookup(ctx, s.acct.ID())
	if err != nil {
		return nil, fmt.Errorf("jellyfish: account record: %w", err)
	}
	devs := deviceIDs(pub)
	for _, d := range devs {
		if d == s.device {
			return devs, nil
		}
	}
	host, _ := os.Hostname()
	pub.Devices = append(pub.Devices, account.Device{ID: account.DeviceID(s.device), Name: truncateName(host)})
	return append(devs, s.device), s.mgr.PublishAccount(ctx, s.acct, pub)
}

func deviceIDs(pub *account.Public) []ns.DeviceID {
	out := make([]ns.DeviceID, 0, len(pub.Devices))
	for _, d := range pub.Devices {
		out = append(out, ns.DeviceID(d.ID))
	}
	return out
}

func truncateName(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

// devices returns the account's devices from its record.
func (s *session) devices(ctx context.Context) ([]ns.DeviceID, error) {
	pub, err := s.mgr.Lookup(ctx, s.acct.ID())
	if err != nil {
		return nil, err
	}
	return deviceIDs(pub), nil
}

// readHead fetches and opens a device's head, or returns nil if it has
// none. The result also records the record's sequence number and expiry.
func (s *session) readHead(ctx context.Context, dev ns.DeviceID) (*headState, error) {
	key := account.HeadKey(s.acct.ID(), account.DeviceID(dev))
	raw, err := s.net.Records().Get(ctx, key)
	if errors.Is(err, account.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rec, err := account.VerifyOwned(key, raw)
	if err != nil {
		return nil, err
	}
	h, err := openHead(s.acct.Root, key, rec.Body)
	if err != nil {
		return nil, err
	}
	h.recSeq, h.recExpires = rec.Seq, rec.Expires
	return h, nil
}

// load builds the namespace from every device's head: the checkpoints
// first, then each device's batches that no loaded checkpoint covers,
// oldest first.
func (s *session) load(ctx context.Context, devs []ns.DeviceID) error {
	heads, err := s.readHeadsOf(ctx, devs)
	if err != nil {
		return err
	}
	for _, h := range heads {
		if h.Checkpoint == nil {
			continue
		}
		data, err := s.readMeta(ctx, h.Checkpoint)
		if err != nil {
			return fmt.Errorf("jellyfish: checkpoint of device %s: %w", h.Device, err)
		}
		cp, err := ns.DecodeCheckpoint(data)
		if err != nil {
			return err
		}
		for _, p := range cp.Packs {
			s.tree.ApplyPack(p)
		}
		for _, e := range cp.Entries {
			s.tree.Apply(e)
			s.clock.Observe(e.Stamp.HLC)
		}
		for d, seq := range cp.Covers {
			if seq > s.applied[d] {
				s.applied[d] = seq
			}
		}
	}
	for _, h := range heads {
		if _, err := s.catchUp(ctx, h); err != nil {
			return fmt.Errorf("jellyfish: log of device %s: %w", h.Device, err)
		}
		if h.Device == s.device {
			s.head = *h
			s.headRev = h.recSeq & 0xffff
		}
		s.flushedHLC[h.Device] = h.HLC
	}

	s.resolveConflicts()
	if s.logCache != nil {
		// Keep the copies this load read: the next one needs no others.
		if _, err := s.logCache.Prune(); err != nil {
			fs.Debugf(nil, "jellyfish: log cache: %v", err)
		}
	}
	return nil
}

// readHeads reads the head of every device the account record lists.
func (s *session) readHeads(ctx context.Context) ([]*headState, error) {
	devs, err := s.devices(ctx)
	if err != nil {
		return nil, err
	}
	return s.readHeadsOf(ctx, devs)
}

// readHeadsOf reads the heads of devs in parallel, in devs' order; a
// device without a head is left out.
func (s *session) readHeadsOf(ctx context.Context, devs []ns.DeviceID) ([]*headState, error) {
	heads := make([]*headState, len(devs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, dev := range devs {
		g.Go(func() error {
			h, err := s.readHead(gctx, dev)
			if err != nil {
				return fmt.Errorf("jellyfish: head of device %s: %w", dev, err)
			}
			if h != nil && h.Device == dev {
				heads[i] = h
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := heads[:0]
	for _, h := range heads {
		if h != nil {
			out = append(out, h)
		}
	}
	return out, nil
}

// catchUp applies the batches of h's device after the last one applied,
// oldest first, and returns the paths whose shown entry changed.
func (s *session) catchUp(ctx context.Context, h *headState) ([]string, error) {
	done := s.applied[h.Device]
	if h.BatchSeq <= done {
		return nil, nil
	}
	var batches []*ns.Batch
	for tip := h.Tip; tip != nil; {
		b, err := s.readBatch(ctx, tip)
		if err != nil {
			return nil, err
		}
		if b.Seq <= done {
			break
		}
		batches = append(batches, b)
		if b.PrevSeq <= done {
			break // the rest was applied already, and may be collected
		}
		tip = b.Prev
	}
	var changed []string
	for i := len(batches) - 1; i >= 0; i-- {
		for _, p := range batches[i].Packs {
			s.tree.ApplyPack(p)
		}
		for _, e := range batches[i].Entries {
			if s.tree.Apply(e) {
				changed = append(changed, e.Path)
			}
			s.clock.Observe(e.Stamp.HLC)
		}
	}
	s.applied[h.Device] = h.BatchSeq
	s.clock.Observe(h.HLC)
	s.noteChanges(changed...)
	return changed, nil
}

// poll applies what other devices flushed since the last poll and returns
// the paths whose shown entry changed. Conflicts it finds are resolved at
// once: the losing versions are kept as conflict copies.
func (s *session) poll(ctx context.Context) ([]string, error) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	heads, err := s.readHeads(ctx)
	if err != nil {
		return nil, err
	}
	var changed []string
	for _, h := range heads {
		if h.Device == s.device {
			continue
		}
		c, err := s.catchUp(ctx, h)
		if err != nil {
			return changed, fmt.Errorf("jellyfish: log of device %s: %w", h.Device, err)
		}
		changed = append(changed, c...)
	}
	changed = append(changed, s.resolveConflicts()...)
	return changed, nil
}

// resolveConflicts keeps every losing version of a concurrently written
// path as a conflict copy beside it and writes the winner again over all
// heads, so the path has one head. Two devices resolving the same conflict
// write the same copies and the same winner, which merge without a new
// conflict.
func (s *session) resolveConflicts() []string {
	var changed []string
	for _, c := range s.tree.Conflicts() {
		var entries []ns.Entry
		for _, l := range c.Losers {
			cp := l
			cp.Path = ns.ConflictName(c.Path, l.Stamp)
			cp.Bases = nil
			entries = append(entries, cp)
			changed = append(changed, cp.Path)
			fs.Logf(nil, "jellyfish: %q was changed on two devices at once: keeping the other version as %q", c.Path, cp.Path)
		}
		w := c.Winner
		w.Bases = c.Heads
		entries = append(entries, w)
		// Copies get fresh bases; the winner supersedes every head.
		if err := s.commitOpt(entries[:len(entries)-1], nil, commitNew); err != nil {
			fs.Errorf(nil, "jellyfish: keep conflict copies of %q: %v", c.Path, err)
			continue
		}
		if err := s.commitOpt(entries[len(entries)-1:], nil, commitKeepBases); err != nil {
			fs.Errorf(nil, "jellyfish: resolve conflict at %q: %v", c.Path, err)
		}
	}
	return changed
}

func (s *session) readBatch(ctx context.Context, ref []byte) (*ns.Batch, error) {
	data, err := s.readMeta(ctx, ref)
	if err != nil {
		return nil, err
	}
	return ns.DecodeBatch(data)
}

// openLogCache opens the slot's log cache, or returns nil (logged) if it
// cannot: the log is then read from the network every time.
func openLogCache(slotDir string, root account.RootKey) *ns.LogCache {
	key, err := logCacheKey(root)
	if err == nil {
		var c *ns.LogCache
		if c, err = ns.OpenLogCache(filepath.Join(slotDir, "log-cache"), key); err == nil {
			return c
		}
	}
	fs.Debugf(nil, "jellyfish: no log cache: %v", err)
	return nil
}

// cacheMeta keeps a copy of a batch or checkpoint this device read or
// stored.
func (s *session) cacheMeta(refBytes, data []byte) {
	if s.logCache == nil {
		return
	}
	if err := s.logCache.Put(refBytes, data); err != nil {
		fs.Debugf(nil, "jellyfish: log cache: %v", err)
	}
}

// readMeta returns a batch or checkpoint: this device's copy if it has
// one, else from the network.
func (s *session) readMeta(ctx context.Context, refBytes []byte) ([]byte, error) {
	if s.logCache != nil {
		if data, ok := s.logCache.Get(refBytes); ok {
			return data, nil
		}
	}
	ref, err := UnmarshalObjRef(refBytes)
	if err != nil {
		return nil, err
	}
	rc, err := s.store.Open(ctx, ref, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// The layout knows the size: read into one buffer of exactly that.
	buf := make([]byte, ref.Layout.Size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, err
	}
	s.cacheMeta(refBytes, buf)
	return buf, nil
}

// stamp returns a fresh stamp from this device.
func (s *session) stamp() ns.Stamp {
	return ns.Stamp{HLC: s.clock.Next(), Device: s.device}
}

// commit applies entries to the local namespace at once, so this process
// sees them, writes them to the journal and queues them for the next
// flush, which makes them visible to other processes and devices. It
// returns once the journal holds them on disk: from then on a crash loses
// nothing, the next process of the account on this machine stores them.
// data are the bytes of the packed files among the entries. Entries
// replacing file contents leave the old contents to CleanUp.
//
// Every entry is stamped here, in the order it is queued: a device's log
// is in stamp order, so the changes a flush stores are exactly those
// stamped up to its newest one.
func (s *session) commit(entries []ns.Entry, data []journal.Data) error {
	return s.commitOpt(entries, data, commitNew)
}

// commitMode says what commitOpt keeps of the entries it is given.
type commitMode int

const (
	// commitNew: a new write. It is stamped now and supersedes what this
	// device sees at its path.
	commitNew commitMode = iota
	// commitKeepBases: stamped now, but keeps the bases it carries (what
	// its writer saw): a conflict resolution, or a change adopted from
	// another slot's journal.
	commitKeepBases
	// commitRecovered: a change of this device read back from its own
	// journal: it keeps its stamp and bases.
	commitRecovered
)

// commitOpt is commit with a mode.
func (s *session) commitOpt(entries []ns.Entry, data []journal.Data, mode commitMode) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	for i := range entries {
		e := &entries[i]
		switch mode {
		case commitNew:
			e.Stamp = s.stamp()
			e.Bases = s.tree.Heads(e.Path)
		case commitKeepBases:
			e.Stamp = s.stamp()
		case commitRecovered:
			s.clock.Observe(e.Stamp.HLC)
		}
	}
	var ticket journal.Ticket
	if s.journal != nil {
		var err error
		if ticket, err = s.journal.Write(entries, data); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("jellyfish: journal: %w", err)
		}
	}
	for _, e := range entries {
		if old := s.tree.Get(e.Path); old != nil && len(old.Content) > 0 && !bytes.Equal(old.Content, e.Content) {
			if ref, err := UnmarshalObjRef(old.Content); err == nil {
				s.unref = append(s.unref, unrefContent{ref, time.Now()})
			}
		}
		s.tree.Apply(e)
		s.pending = append(s.pending, e)
		s.noteChanges(e.Path)
	}
	s.scheduleFlush(flushDelay)
	s.mu.Unlock()
	if s.journal != nil {
		if err := s.journal.Sync(ticket); err != nil {
			// The change is applied and queued, so a later flush stores
			// it; only its durability across a crash is unsure.
			return fmt.Errorf("jellyfish: journal: %w", err)
		}
	}
	return nil
}

// errClosed: the session was shut down (the process is exiting).
var errClosed = errors.New("jellyfish: shutting down: no more changes are accepted")

// scheduleFlush starts a flush after delay unless one is scheduled. The
// caller holds s.mu.
func (s *session) scheduleFlush(delay time.Duration) {
	if s.flushTimer != nil {
		return
	}
	s.flushTimer = time.AfterFunc(delay, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := s.flush(ctx); err != nil {
			fs.Errorf(nil, "jellyfish: flush: %v (will retry)", err)
		}
	})
}

// flush stores the pending entries as one log batch and republishes the
// device's head. Until the head is stored, other processes see the
// previous state; if anything fails the entries stay pending and the flush
// is retried.
func (s *session) flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	pending := s.pending
	s.pending = nil
	s.flushTimer = nil
	head := s.head
	// Every record of the changes taken is in this segment or an earlier
	// one: once they are stored, those segments can go.
	var segment uint64
	rotated := false
	if s.journal != nil && len(pending) > 0 {
		var err error
		if segment, err = s.journal.Rotate(); err != nil {
			fs.Errorf(nil, "jellyfish: journal: %v", err)
		} else {
			rotated = true
		}
	}
	s.mu.Unlock()
	// Every pending entry's pack is stored before the batch referring to
	// it: packs are stored after the entries were taken.
	var packs []ns.Pack
	restore := func(err error) error {
		s.restorePackRecords(packs)
		s.mu.Lock()
		s.pending = append(pending, s.pending...)
		s.scheduleFlush(flushRetry)
		s.mu.Unlock()
		return err
	}
	if err := s.storePacks(ctx, true); err != nil {
		return restore(err)
	}
	packs = s.takePackRecords()
	if len(pending) == 0 && len(packs) == 0 {
		return nil
	}
	batch := &ns.Batch{Device: s.device, Seq: head.BatchSeq + 1, Prev: head.Tip, PrevSeq: head.BatchSeq, Entries: pending, Packs: packs}
	data, err := ns.EncodeBatch(batch)
	if err != nil {
		return restore(err)
	}
	ref, err := s.store.Put(ctx, s.metaEnc, bytes.NewReader(data))
	if err != nil {
		return restore(fmt.Errorf("store log batch: %w", err))
	}
	refBytes, err := ref.Marshal()
	if err != nil {
		return restore(err)
	}
	s.cacheMeta(refBytes, data)
	next := head
	next.BatchSeq, next.Tip = batch.Seq, refBytes
	for _, e := range pending {
		next.HLC = max(next.HLC, e.Stamp.HLC)
	}
	var oldCheckpoint []byte
	if next.BatchSeq-next.CPSeq >= uint64(max(1, s.opt.CheckpointEvery)) {
		oldCheckpoint = next.Checkpoint
		if err := s.checkpoint(ctx, &next); err != nil {
			fs.Debugf(nil, "jellyfish: checkpoint skipped: %v", err)
			oldCheckpoint = nil
		}
	}
	if err := s.publishHead(ctx, &next); err != nil {
		return restore(fmt.Errorf("publish head: %w", err))
	}
	s.pollMu.Lock()
	s.applied[s.device] = next.BatchSeq
	s.pollMu.Unlock()
	s.mu.Lock()
	s.head = next
	if oldCheckpoint != nil {
		if ref, err := UnmarshalObjRef(oldCheckpoint); err == nil {
			s.unref = append(s.unref, unrefContent{ref, time.Now()})
		}
	}
	s.mu.Unlock()
	if rotated {
		if err := s.journal.DropThrough(segment); err != nil {
			fs.Debugf(nil, "jellyfish: journal: %v", err)
		}
	}
	fs.Debugf(nil, "jellyfish: flushed %d changes as batch %d of device %s", len(pending), batch.Seq, s.device)
	return nil
}

// checkpoint stores the whole namespace as one object and points next at it.
func (s *session) checkpoint(ctx context.Context, next *headState) error {
	s.pollMu.Lock()
	covers := map[ns.DeviceID]uint64{s.device: next.BatchSeq}
	for d, seq := range s.applied {
		if d != s.device {
			covers[d] = seq
		}
	}
	entries := s.tree.All()
	s.pollMu.Unlock()
	cp := &ns.Checkpoint{Covers: covers, Entries: entries, Packs: s.tree.Packs()}
	data, err := ns.EncodeCheckpoint(cp)
	if err != nil {
		return err
	}
	ref, err := s.store.Put(ctx, s.metaEnc, bytes.NewReader(data))
	if err != nil {
		return err
	}
	rb, err := ref.Marshal()
	if err != nil {
		return err
	}
	s.cacheMeta(rb, data)
	next.Checkpoint, next.CPSeq = rb, next.BatchSeq
	return nil
}

// publishHead signs and stores the device's head. Its record sequence
// number is the batch sequence number in the high bits and a revision in
// the low 16, so republishing the same batch (after collecting the log)
// still supersedes the previous record. The caller holds flushMu.
func (s *session) publishHead(ctx context.Context, h *headState) error {
	key := account.HeadKey(s.acct.ID(), account.DeviceID(s.device))
	body, err := sealHead(s.acct.Root, key, h)
	if err != nil {
		return err
	}
	s.headRev++
	r := record.Record{Kind: account.KindHead, Seq: h.BatchSeq<<16 | s.headRev&0xffff, Expires: time.Now().Add(account.RecordLifetime), Body: body}
	raw, err := r.Sign(key, s.acct.Identity)
	if err != nil {
		return err
	}
	return s.net.Records().Put(ctx, key, raw)
}

// referenced returns every object reference the namespace and this
// device's log still need, by the object's first shard ID.
func (s *session) referenced() map[codec.ShardID]bool {
	live := map[codec.ShardID]bool{}
	for _, p := range s.tree.Packs() {
		if ref, err := UnmarshalObjRef(p.Ref); err == nil {
			for _, sh := range ref.Shards() {
				live[sh.ID] = true
			}
		}
	}
	for _, e := range s.tree.All() {
		if e.Deleted || len(e.Content) == 0 {
			continue
		}
		if ref, err := UnmarshalObjRef(e.Content); err == nil {
			for _, sh := range ref.Shards() {
				live[sh.ID] = true
			}
		}
	}
	return live
}

// unrefContent is a content that an entry stopped referring to, and when.
type unrefContent struct {
	ref  *ObjRef
	when time.Time
}

// cleanUp deletes the shards of contents no live entry refers to, once
// they have been unreferenced for at least grace: a process that loaded
// the namespace earlier may still read them. Candidates are the contents
// this process replaced or deleted; a shard still referenced by any live
// entry (a server-side copy shares shards) is kept.
func (s *session) cleanUp(ctx context.Context, grace time.Duration) error {
	if err := s.flush(ctx); err != nil {
		return err
	}
	// Repacked packs are published before their old objects can go.
	repacked, repackErr := s.repack(ctx, grace)
	if repacked > 0 {
		fs.Infof(nil, "jellyfish: cleanup repacked %d packs", repacked)
		if err := s.flush(ctx); err != nil {
			return errors.Join(repackErr, err)
		}
	}
	s.mu.Lock()
	var cands []unrefContent
	keep := s.unref[:0:0]
	for _, u := range s.unref {
		if time.Since(u.when) >= grace {
			cands = append(cands, u)
		} else {
			keep = append(keep, u)
		}
	}
	s.unref = keep
	s.mu.Unlock()
	live := s.referenced()
	errs := []error{repackErr}
	freed := 0
	done := map[shardLocation]bool{} // an object let go by several packs is deleted once
	for _, u := range cands {
		for _, sh := range u.ref.Shards() {
			if live[sh.ID] || done[sh] {
				continue
			}
			done[sh] = true
			// A shard already gone (deleted by an earlier run that did not
			// get to save its state) is what cleanup wants.
			if err := s.store.shards.Delete(ctx, sh.Holder, sh.ID); err != nil && !errors.Is(err, shardproto.ErrNotFound) {
				errs = append(errs, err)
				continue
			}
			freed++
		}
	}
	fs.Infof(nil, "jellyfish: cleanup freed %d shards; %d contents wait for their grace period", freed, len(keep))
	batches, err := s.collectLog(ctx, grace)
	if err != nil {
		errs = append(errs, err)
	}
	if batches > 0 {
		fs.Infof(nil, "jellyfish: cleanup collected %d old log batches of this device", batches)
	}
	if err := s.saveCleanupState(); err != nil {
		errs = append(errs, fmt.Errorf("save cleanup state: %w", err))
	}
	return errors.Join(uniqueErrs(errs)...)
}

// collectLog deletes this device's log batches that are no longer needed:
// every device that has a checkpoint covers them in it, this device's own
// checkpoint covers them, and they are older than grace (a process that
// loaded the namespace before may still walk back through them; one that
// polls at least once per grace period never needs them). The head records
// how far the log was collected, so later walks stop there.
func (s *session) collectLog(ctx context.Context, grace time.Duration) (int, error) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	head := s.head
	s.mu.Unlock()
	if head.Checkpoint == nil || head.Tip == nil {
		return 0, nil
	}
	heads, err := s.readHeads(ctx)
	if err != nil {
		return 0, err
	}
	limit := head.CPSeq
	for _, h := range heads {
		if h.Device == s.device || h.Checkpoint == nil {
			continue
		}
		data, err := s.readMeta(ctx, h.Checkpoint)
		if err != nil {
			return 0, fmt.Errorf("checkpoint of device %s: %w", h.Device, err)
		}
		cp, err := ns.DecodeCheckpoint(data)
		if err != nil {
			return 0, err
		}
		limit = min(limit, cp.Covers[s.device])
	}
	if limit <= head.GCSeq {
		return 0, nil
	}
	// Walk back from the tip; batches get older on the way, so the first
	// one at or below the limit that is old enough marks the new boundary.
	type old struct {
		seq uint64
		ref []byte
	}
	var victims []old
	newGC := uint64(0)
	cutoff := uint64(time.Now().Add(-grace).UnixMilli()) << 16
	for ref, seq := head.Tip, head.BatchSeq; ref != nil && seq > head.GCSeq; {
		b, err := s.readBatch(ctx, ref)
		if err != nil {
			return 0, err
		}
		if seq <= limit {
			newest := uint64(0)
			for _, e := range b.Entries {
				newest = max(newest, e.Stamp.HLC)
			}
			if newGC == 0 && newest <= cutoff {
				newGC = seq
			}
			if newGC != 0 {
				victims = append(victims, old{seq, ref})
			}
		}
		ref, seq = b.Prev, b.PrevSeq
	}
	if newGC == 0 {
		return 0, nil
	}
	next := head
	next.GCSeq = newGC
	if err := s.publishHead(ctx, &next); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.head.GCSeq = newGC
	s.mu.Unlock()
	for _, v := range victims {
		ref, err := UnmarshalObjRef(v.ref)
		if err != nil {
			continue
		}
		if err := s.store.Delete(ctx, ref); err != nil {
			fs.Debugf(nil, "jellyfish: collect batch %d: %v", v.seq, err)
		}
	}
	return len(victims), nil
}

// providerSummary counts, for `backend status`, which nodes hold the
// account's live data and the weakest segment's redundancy.
func (s *session) providerSummary() (holders []string, files int, minHeld, k, total int) {
	seen := map[peer.ID]bool{}
	minHeld, total = -1, 0
	var refs [][]byte
	for _, e := range s.tree.All() {
		if e.Deleted || len(e.Content) == 0 {
			continue
		}
		files++
		if _, packed, _ := parseMember(e.Content); !packed {
			refs = append(refs, e.Content)
		}
	}
	for _, p := range s.tree.Packs() {
		refs = append(refs, p.Ref)
	}
	for _, rb := range refs {
		ref, err := UnmarshalObjRef(rb)
		if err != nil {
			continue
		}
		for _, n := range ref.Nodes {
			seen[n] = true
		}
		held, kk := ref.Health()
		if minHeld < 0 || held < minHeld {
			minHeld, k, total = held, kk, ref.Layout.Total()
		}
	}
	for p := range seen {
		holders = append(holders, p.String())
	}
	sort.Strings(holders)
	return holders, files, minHeld, k, total
}

// pendingCount returns the number of changes waiting for a flush.
func (s *session) pendingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// logStatus reports this device's log: last batch, checkpointed and
// collected sequence numbers.
func (s *session) logStatus() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]uint64{"batch": s.head.BatchSeq, "checkpoint": s.head.CPSeq, "collected": s.head.GCSeq}
}

// shutdown flushes and releases the session.
func (s *session) shutdown(ctx context.Context) error {
	return s.flush(ctx)
}
