package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// UPnP makes the host's router offer UPnP IGD and NAT-PMP port mappings
// to its home network, as most home routers do, by running miniupnpd
// (Debian's miniupnpd-iptables) in the router's namespace until the test
// ends. It skips the test when miniupnpd is not installed.
func (h *Host) UPnP() {
	t := h.lab.t
	t.Helper()
	if h.Router == "" {
		t.Fatalf("netlab: %s has no router", h.Name)
	}
	bin, err := exec.LookPath("miniupnpd")
	if err != nil {
		t.Skip("netlab: miniupnpd is not installed (apt-get install miniupnpd-iptables)")
	}
	// The chains miniupnpd adds its mappings to, hooked where Debian's
	// iptables_init.sh hooks them: before the router's own rules. Its
	// libiptc sees only the legacy tables; the router's rules may be in
	// nftables (Debian's iptables is iptables-nft). The kernel runs both:
	// a mapping's DNAT here is accepted by the router's FORWARD rule for
	// DNAT connections.
	ipt, err := exec.LookPath("iptables-legacy")
	if err != nil {
		ipt = "iptables"
	}
	for _, c := range [][]string{
		{"-t", "nat", "-N", "MINIUPNPD"},
		{"-t", "nat", "-I", "PREROUTING", "-i", "wan", "-j", "MINIUPNPD"},
		{"-t", "nat", "-N", "MINIUPNPD-POSTROUTING"},
		{"-t", "nat", "-I", "POSTROUTING", "-o", "wan", "-j", "MINIUPNPD-POSTROUTING"},
		{"-t", "mangle", "-N", "MINIUPNPD"},
		{"-t", "mangle", "-I", "PREROUTING", "-i", "wan", "-j", "MINIUPNPD"},
		{"-t", "filter", "-N", "MINIUPNPD"},
		{"-t", "filter", "-I", "FORWARD", "-i", "wan", "!", "-o", "wan", "-j", "MINIUPNPD"},
	} {
		h.lab.must(h.Router, append([]string{ipt}, c...)...)
	}
	dir := t.TempDir()
	// Every router answers only its own home network, so they may all
	// share one device UUID.
	lan := strings.TrimSuffix(h.IP, ".2") + ".0/24" // the home network, 10.n.0.0/24
	conf := fmt.Sprintf(`ext_ifname=wan
listening_ip=lan
http_port=0
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
system_uptime=yes
lease_file=%s
uuid=3a1f7c52-0000-4000-8000-000000000001
allow 1024-65535 %s 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`, filepath.Join(dir, "leases"), lan)
	path := filepath.Join(dir, "miniupnpd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", h.Router, bin, "-d", "-f", path, "-P", filepath.Join(dir, "pid"))
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("miniupnpd on %s's router:\n%s", h.Name, out)
		}
	})
}
