// Package nodestatus reports what a running provider node knows about
// itself, for the people who run it: a Snapshot read from the node, its
// provider (shard store and shard service), its corrected clock and the
// background rounds the node command runs, and a Server that shows the
// snapshot as an HTML page (/), as JSON (/status.json) and as Prometheus
// metrics (/metrics).
//
// A snapshot holds only what the node measures or counts. Figures the
// network does not compute yet (a node's storage allowance and its
// standing with other nodes) are reported as not yet computed, never as
// numbers. The counters start at zero when the node starts.
//
// The server listens on a loopback address unless told otherwise, and
// then answers only requests whose Host is a loopback name, so a web page
// in the operator's browser cannot read it through DNS rebinding.
package nodestatus
