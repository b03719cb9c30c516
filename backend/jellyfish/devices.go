package jellyfish

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/atomicfile"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// The devices of an account come and go: every device slot (a machine, a
// container, a CI run, a wiped cache) is a device, and the account record
// lists at most account.MaxDevices. A device not seen for retireAfter
// (device_retire_after) leaves the list when a session registers or keeps
// the account alive; when the list is full a new device takes the place of
// the longest unseen one. A device leaves only once its log is held by a
// checkpoint that the devices that stay load, since from then on nobody
// reads its batches (retirable); the session writes that checkpoint itself
// when none does yet.

// defaultRetireAfter is how long a device may go unseen before it is
// retired from the account record.
const defaultRetireAfter = 180 * 24 * time.Hour

// deviceBusyWindow: a device seen this recently may be running now, so it
// is not retired to make room for another (its age may still retire it).
const deviceBusyWindow = 10 * time.Minute

// listCheckEvery is how often a session that writes checks that it is
// still in the account record (a concurrent update may have replaced its
// entry, or another device retired it while it was idle); during the first
// minute after it registered it checks after every flush.
const listCheckEvery = time.Minute

// ErrAccountFull: the account record has no room for this device and no
// device in it can be retired now.
var ErrAccountFull = errors.New("jellyfish: the account record is full")

// deviceSeen returns when a device was last in use, as its head says: when
// it last published the head (version 3), else the time of its newest
// change; zero if its head says neither.
func deviceSeen(h *ns.Head) time.Time {
	switch {
	case h == nil:
		return time.Time{}
	case h.Seen > 0:
		return time.Unix(h.Seen, 0)
	case h.HLC > 0:
		return time.UnixMilli(int64(h.HLC >> 16))
	}
	return time.Time{}
}

// lastWritten returns the last batch of t's log that holds anything: a
// newest batch that only names a checkpoint or a collected mark needs no
// reader.
func lastWritten(t *deviceTip) uint64 {
	seq := t.head.BatchSeq
	if b := t.batch; seq > 0 && b != nil && len(b.Entries) == 0 && len(b.Packs) == 0 && len(b.Locations) == 0 {
		seq--
	}
	return seq
}

// retirable splits cands, devices with tips in tips, into those that can
// leave the account record without any change going missing and those
// that cannot yet (canLeave), taking them one at a time.
func retirable(tips map[ns.DeviceID]*deviceTip, cands []ns.DeviceID) (ok, not []ns.DeviceID) {
	for _, c := range cands {
		if canLeave(tips, append(slices.Clip(ok), c)) {
			ok = append(ok, c)
		} else {
			not = append(not, c)
		}
	}
	return ok, not
}

// canLeave reports whether the devices gone can all leave the account
// record. Loaders read a device that is not listed only from checkpoints:
// from the one chooseBase picks among the remaining devices', which holds
// every absent device's log as far as any of theirs does when such a
// complete one exists. So the devices may leave when one remaining
// checkpoint holds the log of each device that would then be absent (the
// leaving ones, those retired before, those without a head) as far as any
// checkpoint does now, the leaving ones' own included, and each leaving
// device's log up to its last batch that holds anything. A leaving device
// may hold the only checkpoint that holds a device retired before it.
func canLeave(tips map[ns.DeviceID]*deviceTip, gone []ns.DeviceID) bool {
	absent := func(e ns.DeviceID) bool { _, ok := tips[e]; return !ok || slices.Contains(gone, e) }
	need := map[ns.DeviceID]uint64{}
	for _, t := range tips {
		if t.batch == nil || t.batch.Checkpoint == nil {
			continue
		}
		for e, c := range t.batch.Checkpoint.Covers {
			if absent(e) && c.Seq > need[e] {
				need[e] = c.Seq
			}
		}
	}
	for _, g := range gone {
		if t := tips[g]; t != nil && lastWritten(t) > need[g] {
			need[g] = lastWritten(t)
		}
	}
	for e, seq := range need {
		if seq == 0 {
			delete(need, e)
		}
	}
	if len(need) == 0 {
		return true
	}
	for d, t := range tips {
		if !absent(d) && t.batch != nil && t.batch.Checkpoint != nil && complete(t.batch.Checkpoint, need) {
			return true
		}
	}
	return false
}

// ownTip is this device's published log as a tip, as far as this process
// knows it (fresher than its head record as read from the network).
func (l *nsLog) ownTip() *deviceTip {
	l.mu.RLock()
	defer l.mu.RUnlock()
	o := l.own
	return &deviceTip{
		head:  &ns.Head{Version: ns.HeadVersion, Device: l.device, BatchSeq: o.seq, HLC: o.hlc, Tip: o.tip},
		batch: &ns.Batch{Device: l.device, Seq: o.seq, Checkpoint: o.cp, Collected: o.collected},
	}
}

// ownSeq returns this device's newest published batch.
func (l *nsLog) ownSeq() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.own.seq
}

// appliedSeq returns how far this device has applied device d's log.
func (l *nsLog) appliedSeq(d ns.DeviceID) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.applied[d].Seq
}

// thisDevice is this device as the account record lists it. The record
// is public, so the name is the device_name option or a label made from
// the (random) device ID, never the host name.
func (s *session) thisDevice() account.Device {
	name := strings.TrimSpace(s.opt.DeviceName)
	if name == "" {
		name = fmt.Sprintf("device-%x", s.device[:3])
	}
	return account.Device{ID: account.DeviceID(s.device), Name: truncateName(name)}
}

// checkListed reads the account record when the session opens and notes
// whether this device is listed (publishing its name again if it
// changed). A device that is not listed is not added here: its first
// change adds it (ensureRegistered), so a session that only reads takes
// no place in the record, which lists at most account.MaxDevices, and
// spends no update on it. It returns the record, for loading the
// namespace.
func (s *session) checkListed(ctx context.Context) (*account.Public, error) {
	pub, raw, err := s.mgr.LookupRecord(ctx, s.acct.ID())
	if err != nil {
		return nil, fmt.Errorf("jellyfish: account record: %w", err)
	}
	s.listMu.Lock()
	s.opened, s.openedAt = raw, s.now()
	s.listMu.Unlock()
	s.roomAtOpen = len(pub.Devices) < account.MaxDevices
	if d, ok := pub.Device(account.DeviceID(s.device)); ok {
		s.noteListed(false)
		s.renamed(ctx, d)
	}
	return pub, nil
}

// renamed publishes this device's name when the record lists it under
// another (renamed, or listed under its host name by an older version).
func (s *session) renamed(ctx context.Context, listed account.Device) {
	if want := s.thisDevice(); listed.Name != want.Name {
		if _, err := s.mgr.Update(ctx, s.acct, account.AddDevice(want)); err != nil {
			fs.Debugf(nil, "jellyfish: rename this device in the account record: %v", err)
		}
	}
}

// register lists this device in the account record if it is not, when
// there is room, and reports whether it is listed. A full record is left
// to reviewDevices.
func (s *session) register(ctx context.Context) (bool, error) {
	// The first join of a session starts from the record read when it
	// opened, if that was a moment ago: no device can have listed this
	// one since (its slot is this process's), and Update reads the record
	// again before it publishes.
	s.listMu.Lock()
	known := s.opened
	if s.now().Sub(s.openedAt) >= openedFresh {
		known = nil
	}
	s.opened = nil
	s.listMu.Unlock()
	var pub *account.Public
	if known != nil {
		_, pub, _ = account.OpenRecord(s.acct.ID(), known)
	}
	if pub == nil {
		var err error
		if pub, err = s.mgr.Lookup(ctx, s.acct.ID()); err != nil {
			return false, fmt.Errorf("jellyfish: account record: %w", err)
		}
		known = nil
	}
	if d, ok := pub.Device(account.DeviceID(s.device)); ok {
		s.noteListed(false)
		s.renamed(ctx, d)
		return true, nil
	}
	if len(pub.Devices) >= account.MaxDevices {
		return false, nil
	}
	// Its head, which says it is in use, follows once the namespace is
	// loaded (refreshRecords): until then another device making room may
	// take it for one never used, and it adds itself again when it checks
	// (ensureListed), before it publishes anything.
	pub, err := s.mgr.UpdateFrom(ctx, s.acct, account.AddDevice(s.thisDevice()), known)
	if errors.Is(err, account.ErrDevicesFull) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("jellyfish: add this device to the account record: %w", err)
	}
	s.noteListed(true)
	select {
	case s.joined <- struct{}{}:
	default:
	}
	return pub.Has(account.DeviceID(s.device)), nil
}

// openedFresh is how long after opening the record read then still
// starts a join.
const openedFresh = time.Minute

// noteListed records that this device was just seen in the account record
// (registered: it has just added itself).
func (s *session) noteListed(registered bool) {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	s.listedAt = s.now()
	if registered {
		s.registeredAt = s.listedAt
	}
}

// ensureRegistered lists this device in the account record unless this
// session has seen it there: what a device writes is read only while it
// is listed. A full record is made room in, or refused with
// ErrAccountFull.
func (s *session) ensureRegistered(ctx context.Context) error {
	if s.wasListed() {
		return nil
	}
	s.prefetchProviders()
	// Concurrent first changes (rclone's transfers) join once.
	s.recMu.Lock()
	defer s.recMu.Unlock()
	if s.wasListed() {
		return nil
	}
	start := time.Now()
	err := s.join(ctx)
	fs.Debugf(nil, "jellyfish: joining the account record took %v", time.Since(start).Round(time.Millisecond))
	return err
}

// joinForChange is what a change (or the upload before it) needs of the
// account record before it is taken. A change is read by other devices
// only once published, and a flush first makes sure the device is listed
// (ensureListed, which waits for a join under way); so when the record
// had room at opening, the first change starts the join in the background
// and goes on, and the join overlaps the upload and the changes. When it
// was full, the change waits for the join, which makes room or refuses it
// (ErrAccountFull) before anything is sent. A record that filled up in
// between refuses at the flush, and the changes taken stay in the journal.
func (s *session) joinForChange(ctx context.Context) error {
	if s.wasListed() {
		return nil
	}
	s.log.mu.RLock()
	closed := s.log.closed
	s.log.mu.RUnlock()
	if closed {
		return errClosed // nothing starts once closing waited for the joins
	}
	if !s.roomAtOpen {
		return s.ensureRegistered(ctx)
	}
	s.startJoin()
	return nil
}

// earlyTimeout bounds a join or a providers' listing started in the
// background (closing waits for them).
const earlyTimeout = 2 * time.Minute

// startJoin joins the account record in the background unless a join runs.
func (s *session) startJoin() {
	s.prefetchProviders()
	if !s.joining.CompareAndSwap(false, true) {
		return
	}
	started := s.goEarly(func(ctx context.Context) {
		defer s.joining.Store(false)
		if err := s.ensureRegistered(ctx); err != nil {
			fs.Debugf(nil, "jellyfish: joining the account record: %v (tried again before the changes are stored)", err)
		}
	})
	if !started {
		s.joining.Store(false)
	}
}

// prefetchProviders lists the providers in the background, once: the
// session caches the list, and the first store waits for that listing
// instead of starting its own.
func (s *session) prefetchProviders() {
	s.prefetch.Do(func() {
		s.goEarly(func(ctx context.Context) {
			if _, err := s.net.Providers(ctx); err != nil {
				fs.Debugf(nil, "jellyfish: listing the providers: %v", err)
			}
		})
	})
}

// goEarly runs fn in the background, within earlyTimeout, unless closing
// has begun (then it reports false); closing waits for it.
func (s *session) goEarly(fn func(ctx context.Context)) bool {
	s.earlyMu.Lock()
	defer s.earlyMu.Unlock()
	if s.earlyShut {
		return false
	}
	s.early.Add(1)
	go func() {
		defer s.early.Done()
		ctx, cancel := context.WithTimeout(context.Background(), earlyTimeout)
		defer cancel()
		fn(ctx)
	}()
	return true
}

// join lists this device in the account record, making room in a full
// one: unused devices leave, and this one's entry goes in with their
// removal (after a checkpoint that may be this device's first batch).
// The caller holds recMu.
func (s *session) join(ctx context.Context) error {
	listed, err := s.register(ctx)
	if err != nil || listed {
		return err
	}
	s.registering.Store(true)
	defer s.registering.Store(false)
	return s.reviewDevices(ctx, true)
}

// errJoining fails a flush that found this device joining the account
// record at that moment; the flush is retried.
var errJoining = errors.New("jellyfish: this device is joining the account record; storing the changes is retried")

// listedToPublish is the log's check before a flush stores what it will
// publish: the device is listed (or being listed by reviewDevices, whose
// one update adds it with the checkpoint it writes first). It lists the
// device if it can; a full record cannot be made room in from inside a
// flush, so that fails with ErrAccountFull and the changes stay pending.
func (s *session) listedToPublish(ctx context.Context) error {
	if s.wasListed() || s.registering.Load() {
		return nil
	}
	// The flush holds the log's flush lock, which a device review
	// holding recMu may wait for (to write a checkpoint): never wait for
	// recMu here.
	if !s.recMu.TryLock() {
		return errJoining
	}
	defer s.recMu.Unlock()
	if s.wasListed() {
		return nil
	}
	listed, err := s.register(ctx)
	if err != nil {
		return err
	}
	if !listed {
		return s.fullError(nil, "this device joins it with its first change")
	}
	return nil
}

// wasListed reports whether this session has seen its device in the
// account record.
func (s *session) wasListed() bool {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	return !s.listedAt.IsZero()
}

// listCheckDue reports whether this device should make sure it is still in
// the account record.
func (s *session) listCheckDue() bool {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	now := s.now()
	return now.Sub(s.listedAt) >= listCheckEvery || now.Sub(s.registeredAt) < listCheckEvery
}

// ensureListed makes sure this device is in the account record, adding it
// again if a concurrent update replaced its entry or another device
// retired it while it was idle: its batches are read only while it is.
func (s *session) ensureListed(ctx context.Context) error {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	pub, err := s.mgr.Lookup(ctx, s.acct.ID())
	if err != nil {
		return fmt.Errorf("jellyfish: account record: %w", err)
	}
	if pub.Has(account.DeviceID(s.device)) {
		s.noteListed(false)
		return nil
	}
	if s.wasListed() {
		fs.Logf(nil, "jellyfish: this device (%s) is missing from the account record (replaced by a concurrent update, or retired while idle): adding it again", s.device)
	}
	return s.join(ctx)
}

// reviewDevices retires the devices of the account record not seen for
// device_retire_after, and with register lists this device, retiring the
// longest unseen device first if the record is full. A device leaves only
// when its log is held by checkpoints the remaining devices load; when it
// is not yet, this device writes a checkpoint that holds it.
func (s *session) reviewDevices(ctx context.Context, register bool) error {
	self := account.DeviceID(s.device)
	retireAfter := time.Duration(s.opt.DeviceRetireAfter)
	for attempt := 0; ; attempt++ {
		if attempt == 3 {
			return errors.New("jellyfish: devices of the account kept changing while retiring unused ones")
		}
		pub, err := s.mgr.Lookup(ctx, s.acct.ID())
		if err != nil {
			return fmt.Errorf("jellyfish: account record: %w", err)
		}
		if pub.Has(self) {
			register = false
		}
		devs := deviceIDs(pub)
		tips, err := s.log.readTips(ctx, devs)
		if err != nil {
			return err
		}
		tips[s.device] = s.log.ownTip()
		now := s.now()
		seen := map[ns.DeviceID]time.Time{}
		var due []ns.DeviceID
		for _, d := range devs {
			if d == s.device {
				continue
			}
			if t := tips[d]; t != nil {
				seen[d] = deviceSeen(t.head)
			}
			if retireAfter > 0 && !seen[d].IsZero() && now.Sub(seen[d]) > retireAfter {
				due = append(due, d)
			}
		}
		room := func(leaving int) bool { return !register || len(devs)-leaving < account.MaxDevices }
		// The devices that may make room, longest unseen first (never
		// seen: first), but none seen lately: it may be running.
		others := slices.DeleteFunc(slices.Clone(devs), func(d ns.DeviceID) bool {
			return d == s.device || slices.Contains(due, d) || !seen[d].IsZero() && now.Sub(seen[d]) <= deviceBusyWindow
		})
		slices.SortStableFunc(others, func(a, b ns.DeviceID) int { return seen[a].Compare(seen[b]) })
		if !room(len(due)) && len(others) > 0 {
			due = append(due, others[0])
			others = others[1:]
		}
		if len(due) == 0 {
			if !room(0) {
				return s.fullError(pub, "every device in it was used in the last "+deviceBusyWindow.String())
			}
			if register {
				return s.addSelf(ctx, nil, nil)
			}
			return nil
		}
		ok, not := retirable(tips, due)
		if len(not) > 0 {
			// This device holds their logs in a checkpoint of its own,
			// once it has read them as far as their heads say.
			for _, d := range not {
				if t := tips[d]; t != nil && s.log.appliedSeq(d) < lastWritten(t) {
					if _, err := s.poll(ctx); err != nil {
						return err
					}
					break
				}
			}
			if err := s.checkpointNow(ctx); err != nil {
				fs.Errorf(nil, "jellyfish: retiring unused devices: %v", err)
			} else {
				tips[s.device] = s.log.ownTip()
				ok, not = retirable(tips, due)
			}
		}
		if len(not) > 0 {
			fs.Debugf(nil, "jellyfish: %d unused devices stay in the account record until a checkpoint holds their changes", len(not))
		}
		for len(others) > 0 && !room(len(ok)) {
			if canLeave(tips, append(slices.Clip(ok), others[0])) {
				ok = append(ok, others[0])
			}
			others = others[1:]
		}
		if !room(len(ok)) {
			return s.fullError(pub, "the changes of the devices that could leave are in no checkpoint yet")
		}
		if len(ok) == 0 {
			if register {
				return s.addSelf(ctx, nil, nil)
			}
			return nil
		}
		// A last look: a device that wrote since stays, and the review
		// starts again.
		heads, err := s.log.readHeads(ctx, ok)
		if err != nil {
			return err
		}
		moved := false
		for i, h := range heads {
			if t := tips[ok[i]]; h != nil && (t == nil || h.BatchSeq != t.head.BatchSeq) {
				moved = true
			}
		}
		if moved {
			continue
		}
		var gone []string
		for i, d := range ok {
			if i == 5 {
				gone = append(gone, fmt.Sprintf("and %d more", len(ok)-i))
				break
			}
			name := d.String()[:8]
			for _, pd := range pub.Devices {
				if ns.DeviceID(pd.ID) == d && pd.Name != "" {
					name += " (" + pd.Name + ")"
				}
			}
			if !seen[d].IsZero() {
				name += ", last seen " + seen[d].UTC().Format(time.DateOnly)
			}
			gone = append(gone, name)
		}
		if register {
			return s.addSelf(ctx, ok, gone)
		}
		ids := make([]account.DeviceID, len(ok))
		for i, d := range ok {
			ids[i] = account.DeviceID(d)
		}
		if _, err := s.mgr.Update(ctx, s.acct, account.RemoveDevices(ids...)); err != nil {
			return fmt.Errorf("jellyfish: retire unused devices: %w", err)
		}
		fs.Logf(nil, "jellyfish: retired %d unused devices from the account record: %s", len(ok), strings.Join(gone, "; "))
		return nil
	}
}

// addSelf lists this device in the account record, retiring the devices
// retire (described by names) in the same update.
func (s *session) addSelf(ctx context.Context, retire []ns.DeviceID, names []string) error {
	ids := make([]account.DeviceID, len(retire))
	for i, d := range retire {
		ids[i] = account.DeviceID(d)
	}
	if err := s.heads.refresh(ctx, refreshAfter); err != nil {
		return fmt.Errorf("jellyfish: publish this device's head: %w", err)
	}
	pub, err := s.mgr.Update(ctx, s.acct, account.Edits(account.RemoveDevices(ids...), account.AddDevice(s.thisDevice())))
	if errors.Is(err, account.ErrDevicesFull) {
		return s.fullError(pub, "other devices took the room")
	}
	if err != nil {
		return fmt.Errorf("jellyfish: add this device to the account record: %w", err)
	}
	if len(names) > 0 {
		fs.Logf(nil, "jellyfish: retired %d unused devices from the account record to make room for this one: %s", len(retire), strings.Join(names, "; "))
	}
	s.noteListed(true)
	return nil
}

func (s *session) fullError(pub *account.Public, why string) error {
	n := account.MaxDevices
	if pub != nil {
		n = len(pub.Devices)
	}
	return fmt.Errorf("%w: it lists %d devices and none can be retired now (%s): list them with `jellyfish account devices` and remove one with `jellyfish account devices --remove ID`", ErrAccountFull, n, why)
}

// checkpointNow publishes a checkpoint of everything this device has read.
func (s *session) checkpointNow(ctx context.Context) error {
	var locs []ns.Location
	return s.log.flushCheckpoint(ctx, s.flushHooks(&locs))
}

// slotDevice returns the device this slot writes as: the one its device
// file names, unless that one cannot go on. Two cases make the slot take a
// new device (returned with the old one, whose journal it adopts):
//
//   - The slot was copied (a restored backup, a cloned machine, a copied
//     data_dir): the network holds a head of the device newer than any
//     this slot published, so another copy wrote as it. Writing on would
//     fork the device's log and hide one copy's batches from everyone.
//   - The device was retired from the account record and its log is held
//     by the remaining devices' checkpoints: nothing reads it any more, and
//     nothing keeps its batches alive, so the slot starts a new log.
func (s *session) slotDevice(ctx context.Context) (ns.DeviceID, *formerDevice, error) {
	dev, fresh, err := loadDevice(s.slotDir)
	if err != nil || fresh {
		// A device ID drawn just now has no head, log or copy anywhere.
		return dev, nil, err
	}
	heads, err := newAccountHeads(s.acct, s.mgr, s.net.Records(), dev, filepath.Join(s.slotDir, "head"))
	if err != nil {
		return dev, nil, err
	}
	heads.now = s.now
	local := heads.Local()
	net, err := heads.Read(ctx, dev)
	if err != nil {
		return dev, nil, fmt.Errorf("jellyfish: this device's head: %w", err)
	}
	var why string
	var flushed uint64
	var forked *forkedLog
	if local != nil {
		flushed = local.HLC
	}
	switch {
	case copiedSlot(local, heads.Pending(), net):
		why = fmt.Sprintf("this device slot (%s) was copied: another copy wrote as device %s up to batch %d, this one only up to batch %d", s.slotDir, dev, net.BatchSeq, local.BatchSeq)
		if net.BatchSeq == local.BatchSeq {
			why = fmt.Sprintf("this device slot (%s) was copied: another copy published its own batch %d as device %s", s.slotDir, net.BatchSeq, dev)
		}
		forked = &forkedLog{local: local, net: net}
	default:
		retired, err := s.wasRetired(ctx, dev, heads, local, net)
		if err != nil {
			return dev, nil, err
		}
		if !retired {
			return dev, nil, nil
		}
		if net != nil {
			flushed = max(flushed, net.HLC)
		}
		why = fmt.Sprintf("device %s was retired from the account record", dev)
	}
	var nd ns.DeviceID
	if _, err := rand.Read(nd[:]); err != nil {
		return dev, nil, err
	}
	txt, _ := nd.MarshalText()
	// The old device's journal goes aside first, named with how far the
	// old device's log holds its changes, so a crash before it is adopted
	// leaves it to the next process.
	old := &formerDevice{id: dev, flushed: flushed, forked: forked}
	if err := os.Rename(filepath.Join(s.slotDir, journalDir), old.journalDir(s.slotDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return dev, nil, fmt.Errorf("jellyfish: journal: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(s.slotDir, "device"), append(txt, '\n'), 0o600); err != nil {
		return dev, nil, err
	}
	fs.Logf(nil, "jellyfish: %s; this slot goes on as new device %s", why, nd)
	return nd, old, nil
}

// copiedSlot reports whether the network holds a head of this slot's
// device that the slot did not publish: newer than the slot's copy of its
// last head, or of the same batch with another tip, and not the head it
// was publishing when its last process was killed (pending). A slot
// without a copy (one of a release that kept none) is trusted.
func copiedSlot(local, pending, net *ns.Head) bool {
	if local == nil || net == nil || pending != nil && sameHead(net, pending) {
		return false
	}
	return net.BatchSeq > local.BatchSeq || net.BatchSeq == local.BatchSeq && !bytes.Equal(net.Tip, local.Tip)
}

func sameHead(a, b *ns.Head) bool { return a.BatchSeq == b.BatchSeq && bytes.Equal(a.Tip, b.Tip) }

// wasRetired reports whether dev, which has a log, is missing from the
// account record while the listed devices' checkpoints hold its log: it
// was retired, not lost to a concurrent update (then it registers again).
func (s *session) wasRetired(ctx context.Context, dev ns.DeviceID, heads *accountHeads, local, net *ns.Head) (bool, error) {
	head := net
	if head == nil || local != nil && local.BatchSeq > head.BatchSeq {
		head = local
	}
	if head == nil || head.BatchSeq == 0 {
		return false, nil
	}
	pub, err := s.mgr.Lookup(ctx, s.acct.ID())
	if errors.Is(err, account.ErrNotFound) || errors.Is(err, record.ErrStale) {
		// Published again from the slot's copy later (openSession): a
		// record that is gone, or served only in versions older than
		// this slot's node has seen.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("jellyfish: account record: %w", err)
	}
	if pub.Has(account.DeviceID(dev)) {
		return false, nil
	}
	l := newNSLog(dev, s.meta, heads, ns.NewClock(s.now), logConfig{})
	tips, err := l.readTips(ctx, deviceIDs(pub))
	if err != nil {
		return false, err
	}
	t := &deviceTip{head: head}
	if head.Tip != nil {
		if t.batch, err = l.readBatch(ctx, head.Tip); err != nil {
			t.batch = nil // then its newest batch counts as written
		}
	}
	tips[dev] = t
	ok, _ := retirable(tips, []ns.DeviceID{dev})
	return len(ok) == 1, nil
}

// formerDevice is the device a slot wrote as before it took a new one.
type formerDevice struct {
	id      ns.DeviceID
	flushed uint64 // its newest stamp the network holds
	// forked, for a copied slot: its last head and the network's.
	forked *forkedLog
}

// forkedLog is a device's log written by two copies of its slot: local is
// the head this copy published last, net the head the network holds.
type forkedLog struct {
	local, net *ns.Head
}

// recoverForked stores again, as this device's changes, what the batches
// this slot published as its former device hold that the network's log of
// that device does not: two copies running at once can each publish batch
// n, and the one published last hides the other. Walking back from the
// slot's last head (the batches are in its log cache) to where the two
// logs meet, the changes are committed again (keeping their bases, so a
// change made since elsewhere shows as a conflict) with their pack
// records and locations. Batches older than the network's head names
// (64) are left: copies that far apart were not running at once.
func (s *session) recoverForked(ctx context.Context, f *formerDevice) {
	net, local := f.forked.net, f.forked.local
	theirs := map[uint64][]byte{net.BatchSeq: net.Tip}
	oldest := net.BatchSeq
	if net.Tip != nil {
		if b, err := s.log.readBatch(ctx, net.Tip); err == nil {
			for _, p := range b.Prevs {
				theirs[p.Seq] = p.Ref
				oldest = min(oldest, p.Seq)
			}
			if len(b.Prev) > 0 {
				theirs[b.PrevSeq] = b.Prev
				oldest = min(oldest, b.PrevSeq)
			}
		}
	}
	var mine []*ns.Batch
	ref, seq := local.Tip, local.BatchSeq
	for ref != nil && seq >= oldest && !bytes.Equal(theirs[seq], ref) {
		b, err := s.log.readBatch(ctx, ref)
		if err != nil {
			fs.Errorf(nil, "jellyfish: batch %d this slot published as device %s cannot be read (%v): its changes may be hidden by the other copy's", seq, f.id, err)
			break
		}
		mine = append(mine, b)
		switch {
		case len(b.Prevs) > 0:
			ref, seq = b.Prevs[0].Ref, b.Prevs[0].Seq
		case len(b.Prev) > 0:
			ref, seq = b.Prev, b.PrevSeq
		default:
			ref = nil
		}
	}
	n := 0
	for i := len(mine) - 1; i >= 0; i-- {
		b := mine[i]
		for _, p := range b.Packs {
			s.log.applyPending(p)
		}
		s.restorePackRecords(b.Packs)
		if len(b.Locations) > 0 {
			s.recordLocations(b.Locations)
		}
		if len(b.Entries) == 0 {
			continue
		}
		if err := s.log.commit(ctx, slices.Clone(b.Entries), nil, commitKeepBases); err != nil {
			fs.Errorf(nil, "jellyfish: store again the changes of batch %d of former device %s: %v", b.Seq, f.id, err)
			continue
		}
		n += len(b.Entries)
	}
	if n > 0 {
		fs.Logf(nil, "jellyfish: %d changes this slot published as device %s, hidden by the other copy's batches, are stored again", n, f.id)
	}
}

// formerJournalPrefix names the journals of former devices in a slot:
// journal-<device hex>-<flushed HLC hex>.
const formerJournalPrefix = journalDir + "-"

func (f *formerDevice) journalDir(slot string) string {
	return filepath.Join(slot, fmt.Sprintf("%s%s-%x", formerJournalPrefix, f.id, f.flushed))
}

// adoptFormerJournals commits, as this device's changes, what the journals
// of the slot's former devices hold beyond what their logs do, and removes
// those journals.
func (s *session) adoptFormerJournals(ctx context.Context, key []byte) {
	dirs, _ := filepath.Glob(filepath.Join(s.slotDir, formerJournalPrefix+"*"))
	slices.SortFunc(dirs, cmp.Compare)
	for _, dir := range dirs {
		var f formerDevice
		name := strings.TrimPrefix(filepath.Base(dir), formerJournalPrefix)
		id, hlc, ok := strings.Cut(name, "-")
		if !ok || f.id.UnmarshalText([]byte(id)) != nil {
			continue
		}
		if _, err := fmt.Sscanf(hlc, "%x", &f.flushed); err != nil {
			continue
		}
		n, err := s.adoptJournalFrom(ctx, dir, key, &f.flushed)
		switch {
		case err != nil:
			fs.Errorf(nil, "jellyfish: journal of former device %s: %v", f.id, err)
			continue
		case n > 0:
			fs.Logf(nil, "jellyfish: %d changes left unstored by former device %s of this slot are stored now", n, f.id)
		}
		os.RemoveAll(dir)
	}
}
