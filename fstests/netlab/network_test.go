package netlab_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jellyfish-p2p/jellyfish/fstests/netlab"
)

// startProviders starts a provider node on each host, the first alone and
// the others bootstrapping from it, with args after those; a home host
// (whose router must forward netlab.NodePort) announces its router's
// address. It waits until every node finds itself publicly reachable and
// serves the DHT, and returns the nodes in the hosts' order and up to
// three addresses to bootstrap from.
func startProviders(t *testing.T, ctx context.Context, hosts []*netlab.Host, args ...string) (nodes []*netlab.Node, boot []string) {
	t.Helper()
	for i, h := range hosts {
		var a []string
		if i > 0 {
			a = append(a, "--bootstrap", nodes[0].Addr())
		}
		if h.Router != "" {
			a = append(a,
				"--announce", fmt.Sprintf("/ip4/%s/tcp/%d", h.PublicIP, netlab.NodePort),
				"--announce", fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", h.PublicIP, netlab.NodePort))
		}
		n := h.StartNode(t, bin, append(a, args...)...)
		nodes = append(nodes, n)
		if len(boot) < 3 {
			boot = append(boot, n.Addr())
		}
	}
	waitReachability(t, ctx, func(yield func(*netlab.Node, [2]string) bool) {
		for _, n := range nodes {
			if !yield(n, [2]string{"public", "server"}) {
				return
			}
		}
	})
	return nodes, boot
}

// newRemote creates user's account from h and returns the environment
// that configures the remote `jellyfish:` for it, joining the network
// through boot and storing k + m shards per segment.
func newRemote(t *testing.T, ctx context.Context, h *netlab.Host, user string, boot []string, k, m int) []string {
	t.Helper()
	common := []string{"--insecure-test-kdf", "--config-dir", t.TempDir(), "--username", user}
	for _, b := range boot {
		common = append(common, "--bootstrap", b)
	}
	env := []string{"JELLYFISH_PASSWORD=" + password, "HOME=" + t.TempDir()}
	jf(t, ctx, h, env, append([]string{"account", "create"}, common...)...)
	obscured, _ := jf(t, ctx, h, nil, "obscure", password)
	return slices.Concat(env, []string{
		"RCLONE_CONFIG=/dev/null",
		"RCLONE_CONFIG_JELLYFISH_TYPE=jellyfish",
		"RCLONE_CONFIG_JELLYFISH_USERNAME=" + user,
		"RCLONE_CONFIG_JELLYFISH_PASSWORD=" + strings.TrimSpace(obscured),
		"RCLONE_CONFIG_JELLYFISH_BOOTSTRAP=" + strings.Join(boot, " "),
		"RCLONE_CONFIG_JELLYFISH_INSECURE_TEST_KDF=true",
		fmt.Sprintf("RCLONE_CONFIG_JELLYFISH_DATA_SHARDS=%d", k),
		fmt.Sprintf("RCLONE_CONFIG_JELLYFISH_PARITY_SHARDS=%d", m),
	})
}

// logProblems returns the lines of a jellyfish command's log that speak
// of an error, a retry or a missed deadline.
func logProblems(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "ERROR") || strings.Contains(l, "retry") || strings.Contains(l, "deadline") {
			out = append(out, l)
		}
	}
	return out
}
