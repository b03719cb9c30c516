// Package clitest runs the jellyfish binary as a real child process: the
// node daemon, the in-process testnet and the account commands, end to
// end over 127.0.0.1. TestMain builds the binary once per run.
package clitest
