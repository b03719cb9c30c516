package shardproto

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/karma"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// Bounds of a report's parts on the wire: a renew inclusion is at most a
// few KiB, a proof answer with one leaf's proof about 17 KiB; together
// they stay inside a header frame.
const (
	MaxReportReceipt = 8 << 10
	MaxReportAnswer  = 48 << 10
)

// Reportee takes a report that a node deleted a shard it kept (request
// 11): the holder's observer (provider.Provider.Report). It returns what
// it did, in words, or an error wrapping shardstore.ErrInvalid when the
// report is not evidence.
type Reportee func(ctx context.Context, r karma.DeletedPart) (string, error)

// WithReports has the service hand reports to take; a service without it
// answers that it watches no node.
func WithReports(take Reportee) Option {
	return func(cfg *serviceConfig) error {
		cfg.report = take
		return nil
	}
}

// serveReport passes a report on. Reports are not signed: the evidence
// is the reported holder's own signatures, and anyone may carry it.
func (s *Service) serveReport(ctx context.Context, st network.Stream, req *request) error {
	if s.cfg.report == nil {
		return respond(st, req.typ, &response{msg: "not watched here: this node watches no node"})
	}
	r := karma.DeletedPart{Holder: string(req.holder), Shard: karma.ShardRef(req.id), Receipt: req.receipt, Answer: req.answer}
	msg, err := s.cfg.report(ctx, r)
	if err != nil {
		return fail(st, req.typ, err)
	}
	return respond(st, req.typ, &response{msg: msg})
}

// Report hands provider p evidence that holder r.Holder deleted shard
// r.Shard it kept (karma.DeletedPart: its renew inclusion and its later
// failed audit answer). It returns what p said it did ("recorded", "not
// watched here: ..."); a report p found not to be evidence fails with a
// *RemoteError. A provider of an earlier version does not know the
// request and fails it.
func (c *Client) Report(ctx context.Context, p peer.ID, r karma.DeletedPart) (string, error) {
	if r.Holder == "" || len(r.Holder) > maxIDLen || len(r.Receipt) > MaxReportReceipt || len(r.Answer) > MaxReportAnswer {
		return "", fmt.Errorf("shardproto: report: %w: holder of %d bytes, receipt %d, answer %d", shardstore.ErrInvalid, len(r.Holder), len(r.Receipt), len(r.Answer))
	}
	cl, resp, err := c.roundTrip(ctx, p, &request{typ: msgReport, id: codec.ShardID(r.Shard), holder: []byte(r.Holder), receipt: r.Receipt, answer: r.Answer})
	if err != nil {
		return "", err
	}
	cl.finish(nil)
	return resp.msg, nil
}
