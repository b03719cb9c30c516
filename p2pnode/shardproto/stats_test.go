package shardproto

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// TestServiceStats: every request the service answers is counted by type
// and status, refusals included, and a stream reset before its request
// decoded is counted as such.
func TestServiceStats(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	p := e.holder.ID()
	data, id := shard(1, 3000)
	if _, err := e.client.Put(ctx, p, id, data, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.client.Get(ctx, p, id); err != nil {
		t.Fatal(err)
	}
	_, missing := shard(2, 10)
	if _, err := e.client.Stat(ctx, p, missing); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	var salt [32]byte
	if _, err := e.client.Challenge(ctx, p, id, salt); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.client.Proof(ctx, p, id, []int64{0}); err != nil {
		t.Fatal(err)
	}
	// A delete signed by someone else's key is refused unauthorized.
	now := time.Now()
	sig, _ := ed25519Key(t).Sign(deleteSigned(p, id, now))
	if _, err := rawCall(ctx, e.client, p, &request{typ: msgDelete, id: id, ts: now, key: e.client.keyBytes, sig: sig}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("delete with a wrong signature: %v", err)
	}
	// A header that does not decode.
	st, err := e.ch.NewStream(ctx, p, ID)
	if err != nil {
		t.Fatal(err)
	}
	writeFrame(st, []byte{99})
	io.ReadAll(st)

	waitFor(t, 5*time.Second, "the garbled stream counted", func() bool { return e.svc.Stats().Resets[unknownRequest] == 1 })
	s := e.svc.Stats()
	for _, c := range []struct {
		req    string
		status Status
		want   int64
	}{
		{"put", StatusOK, 1}, {"get", StatusOK, 1}, {"stat", StatusNotFound, 1},
		{"challenge", StatusOK, 1}, {"proof", StatusOK, 1}, {"delete", StatusUnauthorized, 1},
		{"delete", StatusOK, 0}, {"renew", StatusOK, 0},
	} {
		if got := s.Answered(c.req, c.status); got != c.want {
			t.Errorf("%s %v: %d answers, want %d (%+v)", c.req, c.status, got, c.want, s.Answers)
		}
	}
	if len(s.Answers) != 6 || s.Pending != 0 || s.Serving != 0 {
		t.Fatalf("stats %+v", s)
	}
	if StatusQuotaExceeded.String() != "quota_exceeded" || Status(200).String() != "status_200" {
		t.Fatal("status names")
	}
}

// halfSentPut starts a put of data whose body stops after half, and returns
// the writer of the rest and the put's outcome.
func halfSentPut(t *testing.T, e *env, seed uint64, n int) (*io.PipeWriter, []byte, <-chan error) {
	t.Helper()
	data, id := shard(seed, n)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
	done := make(chan error, 1)
	go func() {
		_, err := e.client.PutReader(context.Background(), e.holder.ID(), id, int64(n), pr, time.Now().Add(time.Hour))
		done <- err
	}()
	if _, err := pw.Write(data[:n/2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the put served", func() bool { return e.svc.Stats().Serving == 1 })
	return pw, data[n/2:], done
}

// TestDrainFinishesPuts: Drain lets a put being received finish and get
// its receipt, while a request arriving meanwhile is refused with the
// code clients retry on; Drain then returns nil and the service is closed.
func TestDrainFinishesPuts(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	pw, rest, done := halfSentPut(t, e, 7, 200_000)
	drained := make(chan error, 1)
	go func() { drained <- e.svc.Drain(ctx) }()
	waitFor(t, 5*time.Second, "the gate closed", func() bool {
		e.svc.gate.mu.Lock()
		defer e.svc.gate.mu.Unlock()
		return e.svc.gate.closed
	})
	_, other := shard(8, 10)
	var se *network.StreamError
	if _, err := e.client.Stat(ctx, e.holder.ID(), other); !errors.As(err, &se) || se.ErrorCode != network.StreamResourceLimitExceeded {
		t.Fatalf("a request while draining: %v, want a reset with the retry code", err)
	}
	if _, err := pw.Write(rest); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("the put in flight when draining began: %v", err)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if s := e.svc.Stats(); s.Answered("put", StatusOK) != 1 || s.Serving != 0 {
		t.Fatalf("stats after draining %+v", s)
	}
	if u := e.disk.Usage(); u.Shards != 1 || u.Used != 200_000 {
		t.Fatalf("usage after draining %+v", u)
	}
}

// TestDrainCutsOffAtDeadline: a put still receiving when Drain's context
// ends is reset; the client gets an error, not a receipt, and the store
// keeps nothing of it, not even a temporary file.
func TestDrainCutsOffAtDeadline(t *testing.T) {
	e := newEnv(t, nil)
	pw, rest, done := halfSentPut(t, e, 9, 200_000)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := e.svc.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain past its deadline: %v", err)
	}
	// The rest of the body, sent too late, meets the reset stream.
	go pw.Write(rest)
	if err := <-done; err == nil {
		t.Fatal("a put cut off by the drain deadline got a receipt")
	}
	if u := e.disk.Usage(); u.Shards != 0 || u.Used != 0 || u.Reserved != 0 {
		t.Fatalf("usage after a cut-off put %+v", u)
	}
	left, err := os.ReadDir(filepath.Join(e.dir, "tmp"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	if s := e.svc.Stats(); s.Resets["put"] != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestDrainIdle: draining a service that serves nothing succeeds even with
// no time left (--shutdown-grace 0), and closes it.
func TestDrainIdle(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		if err := e.svc.Drain(ctx); err != nil {
			t.Fatalf("Drain of an idle service: %v", err)
		}
	}
	_, id := shard(3, 10)
	if _, err := e.client.Stat(ctxT(t), e.holder.ID(), id); err == nil {
		t.Fatal("a drained service answered")
	}
}
