package jellyfish

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/journal"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
)

// journalDir is the journal's folder inside a device slot.
const journalDir = "journal"

// journalKey derives the key that seals a device's journal from the
// account's root key.
func journalKey(root account.RootKey) ([]byte, error) {
	return hkdf.Key(sha256.New, root[:], nil, "jellyfish/backend/v1/journal-key", journal.KeySize)
}

// openJournal opens this slot's journal and commits again what an earlier
// process of the slot left in it, then what processes of other slots of
// the account left in theirs (slots nobody holds now), so a change that
// rclone was told succeeded is never stranded. Both are stored by the
// next flush, which is started at once.
func (s *session) openJournal(ctx context.Context) error {
	key, err := journalKey(s.acct.Root)
	if err != nil {
		return err
	}
	dir := filepath.Join(s.slotDir, journalDir)
	j, recs, err := journal.Open(dir, key, s.device)
	if errors.Is(err, journal.ErrDamaged) || errors.Is(err, journal.ErrWrongKey) {
		// Keep what cannot be read for inspection, and go on with a new
		// journal: refusing to start would strand the account.
		aside := dir + ".unreadable"
		fs.Errorf(nil, "jellyfish: %v: moved to %s", err, aside)
		os.RemoveAll(aside)
		if rerr := os.Rename(dir, aside); rerr != nil {
			return fmt.Errorf("jellyfish: journal: %w", errors.Join(err, rerr))
		}
		j, recs, err = journal.Open(dir, key, s.device)
	}
	if err != nil {
		return fmt.Errorf("jellyfish: journal: %w", err)
	}
	s.journal = j
	s.log.journal = j
	oldSegment := j.Segment() - 1
	n, err := s.replay(ctx, recs, s.device, s.log.flushedHLC(s.device), commitRecovered)
	if err != nil {
		return err
	}
	if n > 0 {
		fs.Logf(nil, "jellyfish: %d changes an earlier process of this device left unstored are stored now", n)
	}
	// The replayed changes are in the new segment: the old ones (also
	// the empty one a process killed at its start leaves) can go.
	if err := j.DropThrough(oldSegment); err != nil {
		return fmt.Errorf("jellyfish: journal: %w", err)
	}
	s.adoptFormerJournals(ctx, key)
	s.adoptOrphans(ctx, key)
	if s.log.pendingCount() > 0 {
		if err := s.flush(ctx); err != nil {
			// They stay in the journal; the flush is retried.
			fs.Errorf(nil, "jellyfish: storing recovered changes: %v (will retry)", err)
		}
	}
	return nil
}

// replay commits again the changes of device dev in recs that its log
// does not hold yet (those stamped after flushed, its newest stamp the
// network holds). Packed files get their bytes packed anew from the
// journal. It returns how many changes it committed.
func (s *session) replay(ctx context.Context, recs []journal.Record, dev ns.DeviceID, flushed uint64, mode commitMode) (int, error) {
	type chunk struct {
		pack ns.PackID
		off  int64
	}
	data := map[chunk][]byte{}
	var entries []ns.Entry
	for _, r := range recs {
		for _, d := range r.Data {
			data[chunk{d.Pack, d.Off}] = d.Bytes
		}
		for _, e := range r.Entries {
			if e.Stamp.Device == dev && e.Stamp.HLC > flushed {
				entries = append(entries, e)
			}
		}
	}
	// A device's log is in stamp order.
	slices.SortFunc(entries, func(a, b ns.Entry) int { return a.Stamp.Compare(b.Stamp) })
	entries = slices.CompactFunc(entries, func(a, b ns.Entry) bool { return a.Stamp == b.Stamp })
	committed := 0
	for _, e := range entries {
		var packed []journal.Data
		if m, ok, err := parseMember(e.Content); ok && err == nil {
			b, have := data[chunk{m.pack, m.off}]
			switch {
			case have && int64(len(b)) == m.n:
				nm, err := s.packAdd(ctx, b)
				if err != nil {
					return committed, fmt.Errorf("jellyfish: recover %q: %w", e.Path, err)
				}
				e.Content = nm.marshal()
				packed = []journal.Data{{Pack: nm.pack, Off: nm.off, Bytes: b}}
			case s.packPublished(ctx, m.pack):
				// Its pack was stored and published before the crash.
			default:
				fs.Errorf(nil, "jellyfish: recover %q: its bytes are neither in the journal nor in a stored pack; skipped", e.Path)
				continue
			}
		}
		if err := s.log.commit(ctx, []ns.Entry{e}, packed, mode); err != nil {
			return committed, err
		}
		committed++
	}
	return committed, nil
}

// adoptOrphans commits, as this device's changes, what other slots of the
// account on this machine left in their journals, for each slot no process
// holds now, then removes those journals. A slot whose journal belongs to
// another account (same user name on another network) is left alone.
func (s *session) adoptOrphans(ctx context.Context, key []byte) {
	slots, _ := filepath.Glob(filepath.Join(filepath.Dir(s.slotDir), "slot-*"))
	for _, slot := range slots {
		if slot == s.slotDir {
			continue
		}
		dir := filepath.Join(slot, journalDir)
		if size, err := journal.Size(dir); err != nil || size == 0 {
			continue
		}
		unlock, ok := tryLockSlot(slot)
		if !ok {
			continue // in use: its own process stores it
		}
		n, err := s.adoptJournal(ctx, dir, key)
		unlock()
		switch {
		case err != nil:
			fs.Errorf(nil, "jellyfish: journal of %s: %v", slot, err)
		case n > 0:
			fs.Logf(nil, "jellyfish: %d changes left unstored by an earlier process in %s are stored now", n, slot)
		}
	}
}

// adoptJournal commits the unflushed changes of another slot's journal in
// dir (locked by the caller) and removes that journal once they are in
// this slot's journal.
func (s *session) adoptJournal(ctx context.Context, dir string, key []byte) (int, error) {
	return s.adoptJournalFrom(ctx, dir, key, nil)
}

// adoptJournalFrom is adoptJournal; a non-nil flushed is the newest stamp
// of the journal's device that its log holds (a former device of this
// slot: what this slot published of it), instead of how far this device
// has read that device's log.
func (s *session) adoptJournalFrom(ctx context.Context, dir string, key []byte, flushed *uint64) (int, error) {
	dev, recs, err := journal.Read(dir, key)
	if errors.Is(err, journal.ErrWrongKey) {
		return 0, nil
	}
	if err != nil && !errors.Is(err, journal.ErrDamaged) {
		return 0, err
	}
	upTo := s.log.flushedHLC(dev)
	if flushed != nil {
		upTo = *flushed
	}
	n, rerr := s.replay(ctx, recs, dev, upTo, commitKeepBases)
	if rerr != nil {
		return n, rerr
	}
	if err != nil {
		// The readable records were adopted; keep the file for inspection.
		return n, err
	}
	return n, journal.DropThrough(dir, ^uint64(0))
}

// tryLockSlot takes slot's lock if nobody holds it.
func tryLockSlot(slot string) (func(), bool) {
	f, err := os.OpenFile(filepath.Join(slot, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// packPublished reports whether pack id is in the namespace.
func (s *session) packPublished(ctx context.Context, id ns.PackID) bool {
	p, err := s.log.view().Pack(ctx, id)
	return err == nil && p != nil
}
