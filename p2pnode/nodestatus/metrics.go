package nodestatus

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns a Prometheus registry of the node's metrics (read
// from a fresh Snapshot at every scrape) and of the Go runtime and the
// process. It is the node's own: several nodes in one process each have
// one, and nothing is registered in the process-wide default registry.
func NewRegistry(s *Status) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{s}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("jellyfish_"+name, help, labels, nil)
}

// The node's metrics. Counters count since the node started.
var (
	mInfo    = desc("node_info", "The node's identity and build (value 1).", "peer_id", "version", "shard_protocol")
	mStarted = desc("node_start_time_seconds", "When the node started, in seconds since the Unix epoch.")

	mTier     = desc("storage_tier", "Shared space tier: 2^tier GiB.")
	mQuota    = desc("storage_quota_bytes", "Bytes of shards the node offers to hold.")
	mUsed     = desc("storage_used_bytes", "Bytes of shards held (each shard counted once).")
	mReserved = desc("storage_reserved_bytes", "Bytes reserved by puts in flight.")
	mFree     = desc("storage_free_bytes", "Bytes of the quota neither used nor reserved.")
	mShards   = desc("shards_held", "Shards held.")
	mOwners   = desc("shard_owners", "Accounts with a reference to a shard held.")

	mPuts         = desc("shard_puts_total", "Puts the store accepted, a shard already held included.")
	mPutBytes     = desc("shard_put_bytes_total", "Bytes of the puts the store accepted.")
	mNewShards    = desc("shard_new_shards_total", "Puts that wrote a shard not held before.")
	mNewBytes     = desc("shard_new_bytes_total", "Bytes of the puts that wrote a shard not held before.")
	mPutsInFlight = desc("shard_puts_in_flight", "Puts being received now.")
	mAnswers      = desc("shard_requests_total", "Shard protocol requests answered, by request and status.", "request", "status")
	mResets       = desc("shard_streams_reset_total", "Shard protocol streams reset, by request (undecoded: before a request was read).", "request")
	mEvicted      = desc("shard_streams_evicted_total", "Streams reset while waiting for their header, to make room or when draining.")
	mRefused      = desc("shard_streams_refused_total", "Streams refused a serving slot.")
	mHeld         = desc("shard_refusals_held_total", "Refusals and Busy answers held before they were sent, the peer being over its refusal budget.")
	mStreams      = desc("shard_streams", "Shard protocol streams open now, by phase.", "phase")
	mAudits       = desc("shard_audits_answered_total", "Challenges and proof requests answered with the shard's data.")

	mPeers     = desc("peers_connected", "Peers with an open connection.")
	mConns     = desc("connections", "Open connections, by kind.", "kind")
	mRouting   = desc("routing_table_peers", "Peers in the DHT routing table.")
	mReach     = desc("reachability", "1 for the reachability AutoNAT last concluded, 0 for the others.", "state")
	mAddrs     = desc("announced_addrs", "Addresses the node announces, by kind.", "kind")
	mRecords   = desc("records", "DHT records kept, by kind.", "kind")
	mRecRefuse = desc("records_refused_total", "New DHT record keys refused at a store limit.")
	mMarks     = desc("marks", "High-water marks kept.")
	mMarkRef   = desc("marks_refused_total", "New high-water marks refused at a limit.")

	mCorrection = desc("clock_correction_seconds", "Offset applied to the machine's clock to follow the network's.")
	mOffset     = desc("clock_network_offset_seconds", "Peers' median clock offset at the last measurement.")
	mOffsetAt   = desc("clock_measured_time_seconds", "When the network's clocks were last measured, in seconds since the Unix epoch.")

	mRounds      = desc("round_runs_total", "Background rounds run.", "round")
	mRoundsFail  = desc("round_failures_total", "Background rounds that ended with an error.", "round")
	mRoundLast   = desc("round_last_start_time_seconds", "When the last round began, in seconds since the Unix epoch.", "round")
	mRoundTook   = desc("round_last_duration_seconds", "How long the last round took.", "round")
	mRoundFigure = desc("round_last_figure", "The numeric figures the last round reported.", "round", "figure")

	allDescs = []*prometheus.Desc{
		mInfo, mStarted, mTier, mQuota, mUsed, mReserved, mFree, mShards, mOwners,
		mPuts, mPutBytes, mNewShards, mNewBytes, mPutsInFlight, mAnswers, mResets, mEvicted, mRefused, mHeld, mStreams, mAudits,
		mPeers, mConns, mRouting, mReach, mAddrs, mRecords, mRecRefuse, mMarks, mMarkRef,
		mCorrection, mOffset, mOffsetAt, mRounds, mRoundsFail, mRoundLast, mRoundTook, mRoundFigure,
	}
)

// collector exposes a Status's snapshots.
type collector struct{ s *Status }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.s.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	n := snap.Node
	gauge(mInfo, 1, n.ID, n.Version, n.ShardProtocol)
	gauge(mStarted, float64(n.Started.UnixNano())/1e9)

	st := snap.Storage
	gauge(mTier, float64(st.Tier))
	gauge(mQuota, float64(st.QuotaBytes))
	gauge(mUsed, float64(st.UsedBytes))
	gauge(mReserved, float64(st.ReservedBytes))
	gauge(mFree, float64(st.FreeBytes))
	gauge(mShards, float64(st.Shards))
	gauge(mOwners, float64(st.Owners))

	sv := snap.Service
	counter(mPuts, float64(sv.Puts))
	counter(mPutBytes, float64(sv.PutBytes))
	counter(mNewShards, float64(sv.NewShards))
	counter(mNewBytes, float64(sv.NewBytes))
	gauge(mPutsInFlight, float64(sv.PutsInFlight))
	for _, a := range sv.Answers {
		counter(mAnswers, float64(a.Count), a.Request, a.Status)
	}
	for _, r := range sortedKeys(sv.Resets) {
		counter(mResets, float64(sv.Resets[r]), r)
	}
	counter(mEvicted, float64(sv.StreamsEvicted))
	counter(mRefused, float64(sv.StreamsRefused))
	counter(mHeld, float64(sv.RefusalsHeld))
	gauge(mStreams, float64(sv.StreamsPending), "pending")
	gauge(mStreams, float64(sv.StreamsServing), "serving")
	counter(mAudits, float64(sv.AuditsAnswered))

	nw := snap.Network
	gauge(mPeers, float64(nw.PeersConnected))
	gauge(mConns, float64(nw.Connections-nw.RelayedConnections), "direct")
	gauge(mConns, float64(nw.RelayedConnections), "relayed")
	gauge(mRouting, float64(nw.RoutingTablePeers))
	for _, r := range []string{"public", "private", "unknown"} {
		v := 0.0
		if nw.Reachability == r {
			v = 1
		}
		gauge(mReach, v, r)
	}
	gauge(mAddrs, float64(nw.PublicAddrs), "public")
	gauge(mAddrs, float64(len(nw.AnnouncedAddrs)-nw.PublicAddrs), "other")

	rc := snap.Records
	for _, k := range sortedKeys(rc.RecordsByKind) {
		gauge(mRecords, float64(rc.RecordsByKind[k]), k)
	}
	counter(mRecRefuse, float64(rc.RecordsRefused))
	gauge(mMarks, float64(rc.Marks))
	counter(mMarkRef, float64(rc.MarksRefused))

	if cl := snap.Clock; cl != nil {
		gauge(mCorrection, cl.CorrectionSeconds)
		if cl.NetworkOffsetSeconds != nil {
			gauge(mOffset, *cl.NetworkOffsetSeconds)
			gauge(mOffsetAt, float64(cl.MeasuredAt.UnixNano())/1e9)
		}
	}

	for _, r := range snap.Rounds {
		counter(mRounds, float64(r.Runs), r.Name)
		counter(mRoundsFail, float64(r.Failed), r.Name)
		if r.LastStart == nil {
			continue
		}
		gauge(mRoundLast, float64(r.LastStart.UnixNano())/1e9, r.Name)
		gauge(mRoundTook, r.LastTookSeconds, r.Name)
		for _, k := range sortedKeys(r.LastFigures) {
			if v, ok := number(r.LastFigures[k]); ok {
				gauge(mRoundFigure, v, r.Name, k)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// number returns v as a float if it is a number.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
