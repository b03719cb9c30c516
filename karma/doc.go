// Package karma is Jellyfish's reputation arithmetic: what witnesses say
// about a provider node, how that becomes the node's uptime and standing,
// and how standing becomes an account's storage allowance.
//
// It is pure: no hosts, no DHT, no rclone, no wall clock. Time comes in as
// arguments (the caller's injected clock), identities are opaque byte strings (libp2p
// peer IDs in practice), and checking a holder's signed evidence is left to
// an EvidenceChecker the caller supplies. The network side — witnesses that
// probe, summary records in the DHT, providers that refuse uploads over an
// allowance — is built on top of it.
//
// The pieces, in the order they are used:
//
//   - Epochs (epoch.go): days of UTC time; reports count for WindowEpochs
//     complete epochs after the one they describe.
//   - Nonce chains (chain.go): each node commits to a hash chain once, and
//     reveals one link per epoch; the links of a subject's witnesses seed
//     the choice of its next witnesses, so nobody knows them in advance and
//     nobody can grind them.
//   - Witnesses (witness.go): the vetted nodes closest to a key derived from
//     (subject, epoch, seed); at most one per owner account.
//   - Probes (probe.go): random times in an epoch at which a witness checks
//     that the subject answers.
//   - Summaries (summary.go): one witness's signed-elsewhere report of one
//     subject for one epoch, in a bounded binary format.
//   - Evidence and containment (evidence.go): a DeletedPart report is checked,
//     not believed; a shard the holder keeps silent about is re-asked, and
//     silence on it while answering everything else counts as deletion.
//   - Standing (standing.go): per epoch, the median of a quorum of the
//     witnesses' summaries; over the window, uptime, audits, strikes.
//   - Allowance (allowance.go): vetted shared space, bounded by what the
//     node has shown it holds, × uptime, summed over an account's linked
//     nodes, never under the starter allowance; zero while the account has
//     a node with three strikes in the window.
package karma
