// Package testnet is the test harness for in-process networks: New starts
// a p2pnode/localnet Network for a test, in the test's temporary folder,
// and closes it when the test ends.
//
// Only tests (and the test suites under fstests) import it: it links
// package testing. Programs use localnet.Start directly.
package testnet
