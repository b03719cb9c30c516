// Package caretaker keeps an account's records alive on the network while
// its owner's node runs. Login, account, head, keyring and recovery
// records are signed for 35 days and re-signed by a device only when it is
// used; an account nobody
// touches for longer would be forgotten by every node, and with it the
// keys that open its files. The caretaker re-signs each of them (body
// unchanged, next sequence number, fresh expiry) well before it expires,
// and keeps a local copy of each, so a record the network forgot anyway
// (the node was off too) is published again from the copy.
//
// Re-signing needs the keys a device holds: the identity key (account,
// head and keyring records) and the login key (login record); a node
// linked to an account with `jellyfish account login`'s key file has
// them. The recovery record is signed by a key derived from the recovery
// key, which no device holds; the keyring record carries that signing key
// sealed under the account's root key, so the caretaker reads it there.
package caretaker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/atomicfile"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// Config is what a caretaker needs.
type Config struct {
	// Records reads and writes the network's records.
	Records account.Records
	// Account is the account cared for; its login key may be nil (then
	// the login record is left alone).
	Account *account.Account
	// Dir keeps the local copies of the records.
	Dir string
	// Clock is the time source of expiries; nil means time.Now.
	Clock record.Clock
	// MinLeft: a record with less life left than this is re-signed.
	// Zero means 21 days (a record lives 35).
	MinLeft time.Duration
	// Lifetime of a re-signed record; zero means account.RecordLifetime.
	Lifetime time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
	// Skip, if set, names record keys left alone: a device's session
	// keeps its own head (it alone knows the newest tip).
	Skip func(key string) bool
	// Done, if set, is told the outcome of each round Run runs (not of
	// those cut short because Run's context ended): when it began, what
	// it did and its error.
	Done func(start time.Time, st Stats, err error)
}

// Caretaker keeps one account's records alive (see the package comment).
type Caretaker struct {
	cfg Config
}

// New returns a caretaker for cfg.
func New(cfg Config) (*Caretaker, error) {
	if cfg.Records == nil || cfg.Account == nil || cfg.Dir == "" {
		return nil, errors.New("caretaker: records, account and folder are needed")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MinLeft == 0 {
		cfg.MinLeft = 21 * 24 * time.Hour
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = account.RecordLifetime
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("caretaker: %w", err)
	}
	return &Caretaker{cfg: cfg}, nil
}

// Stats counts what one round did.
type Stats struct {
	Checked, Resigned, Restored int
}

// Tick runs one round: every record of the account is checked, and
// re-signed or restored where needed. Errors of single records are joined;
// the round goes on past them.
func (c *Caretaker) Tick(ctx context.Context) (Stats, error) {
	var st Stats
	var errs []error
	a := c.cfg.Account
	acctKey := account.AccountKey(a.ID())
	raw, err := c.keep(ctx, acctKey, account.KindAccount, a.Identity, &st)
	if err != nil {
		errs = append(errs, err)
	}
	if login := a.LoginKey(); login != nil {
		key, err := account.LoginKey(login.GetPublic())
		if err == nil {
			_, err = c.keep(ctx, key, account.KindLogin, login, &st)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	// The keyring names the recovery record's signing key, which no
	// device derives; opened with the root key, it lets any device keep
	// the recovery record alive.
	ringKey := account.KeyringKey(a.ID())
	if ringRaw, err := c.keep(ctx, ringKey, account.KindKeyring, a.Identity, &st); err != nil {
		errs = append(errs, err)
	} else if ringRaw != nil {
		ring, err := account.OpenKeyring(ringKey, ringRaw, a.Root)
		if err == nil && ring.Recovery != nil {
			var key string
			if key, err = account.RecoveryRecordKey(ring.Recovery.GetPublic()); err == nil {
				_, err = c.keep(ctx, key, account.KindRecovery, ring.Recovery, &st)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("caretaker: keyring: %w", err))
		}
	}
	// The devices come from the account record (as found or restored).
	if raw != nil {
		rec, err := account.VerifyOwned(acctKey, raw)
		if err == nil {
			var pub *account.Public
			if pub, err = account.ParsePublic(rec.Body); err == nil {
				for _, d := range pub.Devices {
					if _, err := c.keep(ctx, account.HeadKey(a.ID(), d.ID), account.KindHead, a.Identity, &st); err != nil {
						errs = append(errs, err)
					}
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("caretaker: account record: %w", err))
		}
	}
	c.cfg.Logger.Info("caretaker round", "account", a.ID().String(), "checked", st.Checked, "resigned", st.Resigned, "restored", st.Restored, "errors", len(errs))
	return st, errors.Join(errs...)
}

// Run runs a round now and then every interval until ctx ends.
func (c *Caretaker) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		start := time.Now()
		st, err := c.Tick(ctx)
		if ctx.Err() == nil {
			if err != nil {
				c.cfg.Logger.Warn("caretaker round had errors", "err", err)
			}
			if c.cfg.Done != nil {
				c.cfg.Done(start, st, err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// keep looks up the record at key and returns the raw record now on the
// network (after any re-signing), or nil if there is none. A record with
// less than MinLeft of life is re-signed; one the network no longer holds
// is published again from the local copy, and so is one of which the
// network serves only versions older than this node has seen. A key with
// neither is left alone (a device that never published a head).
func (c *Caretaker) keep(ctx context.Context, key string, kind record.Kind, signer crypto.PrivKey, st *Stats) ([]byte, error) {
	if c.cfg.Skip != nil && c.cfg.Skip(key) {
		return nil, nil
	}
	st.Checked++
	now := c.cfg.Clock()
	raw, err := c.cfg.Records.Get(ctx, key)
	var rec *record.Record
	if err == nil {
		if rec, err = account.VerifyOwned(key, raw); err != nil {
			return nil, fmt.Errorf("caretaker: %s: %w", key, err)
		}
		if !rec.Expires.After(now) {
			rec = nil // expired: the validators' clock is behind ours
		}
	} else if !errors.Is(err, account.ErrNotFound) && !errors.Is(err, record.ErrStale) {
		return nil, fmt.Errorf("caretaker: %s: %w", key, err)
	}
	// Stale: the peers serve only a record older than one this node has
	// seen (a process killed while its newer record was on the way to
	// them). The newest version at hand — the copy, or the best the peers
	// still serve — signed again above the mark mends it; left alone, the
	// account could not be opened here again.
	var stale staleAnswer
	seen := uint64(0)
	if errors.As(err, &stale) {
		seen = stale.SeenSeq()
	}
	copyPath := filepath.Join(c.cfg.Dir, name(key))
	restored := false
	if rec == nil {
		// Gone from the network: the copy, if any, says what it was. A
		// key this node keeps no copy of is not its to restore.
		b, err := os.ReadFile(copyPath)
		if err != nil {
			return nil, nil
		}
		if rec, err = account.VerifyOwned(key, b); err != nil {
			return nil, fmt.Errorf("caretaker: the copy of %s: %w", key, err)
		}
		// A version the peers still serve that is newer than the copy
		// (written since, by another device) is not rolled back.
		if stale != nil && stale.StaleRecord() != nil {
			if served, err := account.VerifyOwned(key, stale.StaleRecord()); err == nil && served.Seq > rec.Seq {
				rec = served
			}
		}
		restored = true
	} else if err := c.save(copyPath, rec, raw); err != nil {
		return raw, err
	}
	if !restored && rec.Expires.Sub(now) >= c.cfg.MinLeft {
		return raw, nil
	}
	next := record.Record{Kind: kind, Seq: max(rec.Seq, seen) + 1, Expires: now.Add(c.cfg.Lifetime), Body: rec.Body}
	nraw, err := next.Sign(key, signer)
	if err != nil {
		return raw, err
	}
	if err := c.cfg.Records.Put(ctx, key, nraw); err != nil {
		return raw, fmt.Errorf("caretaker: publish %s: %w", key, err)
	}
	if restored {
		st.Restored++
	} else {
		st.Resigned++
	}
	return nraw, c.save(copyPath, &next, nraw)
}

// save keeps raw as the local copy of its record unless the copy there is
// newer.
func (c *Caretaker) save(path string, rec *record.Record, raw []byte) error {
	if b, err := os.ReadFile(path); err == nil {
		if old, err := record.Decode(b); err == nil && old.Seq > rec.Seq {
			return nil
		}
	}
	if err := atomicfile.Write(path, raw, 0o600); err != nil {
		return fmt.Errorf("caretaker: keep a copy: %w", err)
	}
	return nil
}

// staleAnswer is a records error saying the peers serve only versions
// older than this node's high-water mark (client.StaleError): the mark,
// and the best version they serve.
type staleAnswer interface {
	error
	SeenSeq() uint64
	StaleRecord() []byte
}

// name is the file name of key's copy.
func name(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:]) + ".rec"
}
