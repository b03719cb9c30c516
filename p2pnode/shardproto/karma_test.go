package shardproto

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/karma"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// TestKarmaEvidence: a holder that renewed a shard and later answers an
// audit with a signed not-found has made a DeletedPart report anyone can
// check; every part swapped, missing or out of time is refused.
func TestKarmaEvidence(t *testing.T) {
	// A holder that drops shards itself does not keep releases (its
	// owners did not ask): its store is served without them.
	e := newEnvWith(t, nil, func(d *shardstore.Disk) Backend { return struct{ Backend }{d} })
	ctx := ctxT(t)
	p := e.holder.ID()
	data, id := shard(51, 3*codec.LeafSize+5)
	other, otherID := shard(52, 700)
	for _, s := range []struct {
		b  []byte
		id codec.ShardID
	}{{data, id}, {other, otherID}} {
		if _, err := e.client.Put(ctx, p, s.id, s.b, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	until := time.Now().Add(48 * time.Hour)
	_, rs, err := e.client.RenewReceipts(ctx, p, []codec.ShardID{id, otherID}, until)
	if err != nil || len(rs) != 1 {
		t.Fatalf("renew: %v", err)
	}
	inc := func(s codec.ShardID) []byte {
		ri, err := rs[0].Inclusion(s)
		if err != nil {
			t.Fatal(err)
		}
		return ri.Marshal()
	}
	// A good proof answer first: not evidence of anything.
	_, good, err := e.client.Proof(ctx, p, id, []int64{1})
	if err != nil {
		t.Fatal(err)
	}
	// The holder drops the shard silently and says so when audited.
	if err := e.disk.Delete(ctx, e.client.Owner(), id); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.client.Proof(ctx, p, id, []int64{1})
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("audit of a dropped shard: %v", err)
	}
	report := karma.DeletedPart{Holder: string(p), Shard: karma.ShardRef(id), Receipt: inc(id), Answer: nf.Answer.Marshal()}
	now := time.Now()
	at, err := karma.CheckDeletedPart(report, KarmaEvidence{}, now)
	if err != nil || !at.Equal(nf.Answer.Issued) {
		t.Fatalf("valid evidence refused: %v", err)
	}

	forged := nf.Answer
	forged.Issued = forged.Issued.Add(time.Second) // changes what was signed
	otherAnswer := nf.Answer
	otherAnswer.Shard = otherID
	otherAnswer.Sign(holderKey(t, e)) // the holder's key, but another shard than the receipt's
	bad := map[string]karma.DeletedPart{
		"no answer":            {Holder: string(p), Shard: karma.ShardRef(id), Receipt: inc(id)},
		"a good answer":        {Holder: string(p), Shard: karma.ShardRef(id), Receipt: inc(id), Answer: good.Marshal()},
		"a forged answer":      {Holder: string(p), Shard: karma.ShardRef(id), Receipt: inc(id), Answer: forged.Marshal()},
		"another shard's":      {Holder: string(p), Shard: karma.ShardRef(id), Receipt: inc(otherID), Answer: nf.Answer.Marshal()},
		"answer for another":   {Holder: string(p), Shard: karma.ShardRef(id), Receipt: inc(id), Answer: otherAnswer.Marshal()},
		"another holder named": {Holder: string(e.ch.ID()), Shard: karma.ShardRef(id), Receipt: inc(id), Answer: nf.Answer.Marshal()},
		"answer as receipt":    {Holder: string(p), Shard: karma.ShardRef(id), Receipt: nf.Answer.Marshal(), Answer: nf.Answer.Marshal()},
		"garbage receipt":      {Holder: string(p), Shard: karma.ShardRef(id), Receipt: []byte("JFRI\x01junk"), Answer: nf.Answer.Marshal()},
	}
	for name, r := range bad {
		if _, err := karma.CheckDeletedPart(r, KarmaEvidence{}, now); !errors.Is(err, karma.ErrNoEvidence) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Out of time: replayed a window later, or after the lease ended.
	if _, err := karma.CheckDeletedPart(report, KarmaEvidence{}, now.Add(karma.Window+time.Hour)); !errors.Is(err, karma.ErrNoEvidence) {
		t.Errorf("replayed after the window: %v", err)
	}
	late := nf.Answer
	late.Issued = until.Add(time.Minute)
	late.Sign(holderKey(t, e))
	r := report
	r.Answer = late.Marshal()
	if _, err := karma.CheckDeletedPart(r, KarmaEvidence{}, until.Add(time.Hour)); !errors.Is(err, karma.ErrNoEvidence) {
		t.Errorf("not found after the lease ended: %v", err)
	}
}

// TestReleasedNotFoundIsUnsigned: an owner that stored, renewed and then
// deleted a shard gets an unsigned "not found" when it audits it while the
// lease it held would still run, so it cannot frame the holder; another
// owner's audit of a shard it never held is answered signed as before.
func TestReleasedNotFoundIsUnsigned(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	p := e.holder.ID()
	data, id := shard(61, 2*codec.LeafSize)
	if _, err := e.client.Put(ctx, p, id, data, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.client.RenewReceipts(ctx, p, []codec.ShardID{id}, time.Now().Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Delete(ctx, p, id); err != nil {
		t.Fatal(err)
	}
	_, _, err := e.client.Proof(ctx, p, id, []int64{0})
	var nf *NotFoundError
	if err == nil || errors.As(err, &nf) || !strings.Contains(err.Error(), "unsigned") {
		t.Fatalf("audit of a shard the owner deleted: %v", err)
	}
	// Someone else asking about a shard it never held: signed, as before.
	other, err := NewClient(e.ch, ed25519Key(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.Proof(ctx, p, id, []int64{0}); !errors.As(err, &nf) {
		t.Fatalf("another owner's audit: %v", err)
	}
}
