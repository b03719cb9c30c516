// Package sim is the arithmetic behind `jellyfish sim`: the probability
// that an erasure-coded segment (any k of its k+m shards rebuild it) can be
// read when each node is online with some probability, computed exactly
// and estimated by Monte-Carlo; and the probability that it survives a
// year of nodes leaving the network for good, with audits and repair.
//
// Shards are placed by the backend's own placement function
// (backend/jellyfish/placement), so when there are fewer nodes than shards
// the model holds several shards per node exactly as uploads do. The
// package is pure: no network, no rclone. Its plots and CSV files are
// written by plot.go and csv.go.
package sim
