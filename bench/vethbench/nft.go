package vethbench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// nftDUT is the kernel as a load balancer, configured as a user would:
// an nftables DNAT rule that spreads the VIP's flows over the Backends
// (numgen or jhash), conntrack, and IPv4 forwarding back out of the DUT
// veth. The ruleset is loaded with the nft command (package nftables) so
// that what runs is exactly the text a user would write.
//
// veth hands a frame to the receiving namespace on the sending CPU, so
// without help the whole kernel path (conntrack, NAT, routing, transmit)
// would run on the generator's CPU. RPS on the DUT veth moves it to the
// DUT CPU, the CPU gvs's worker gets: both load balancers get one CPU.
type nftDUT struct {
	name   string
	t      *Topology
	dir    string
	detail string
}

func (d *nftDUT) Name() string { return d.name }

// NftRuleset is the nftables ruleset of the nft-numgen (jhash false) or
// nft-jhash DUT.
func NftRuleset(jhash bool) string {
	var m []string
	for i, b := range Backends {
		m = append(m, fmt.Sprintf("%d : %s", i, b))
	}
	pick := fmt.Sprintf("numgen inc mod %d", len(Backends))
	if jhash {
		pick = fmt.Sprintf("jhash ip saddr . udp sport mod %d", len(Backends))
	}
	return fmt.Sprintf(`table ip gvsbench {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %s udp dport %d counter dnat to %s map { %s }
	}
}
`, VIP, VIPPort, pick, strings.Join(m, ", "))
}

// nsExec runs a command inside the named namespace (ip netns exec, which
// also mounts the namespace's own /sys).
func nsExec(ns *Netns, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (d *nftDUT) Start(t *Topology, cpu int) (err error) {
	if _, err := exec.LookPath("nft"); err != nil {
		return errors.New("nft not found: install the nftables package (make bench does)")
	}
	d.t = t
	defer func() {
		if err != nil {
			d.Stop()
		}
	}()
	if d.dir, err = os.MkdirTemp("", "gvsbench-nft-"); err != nil {
		return err
	}
	file := filepath.Join(d.dir, "lb.nft")
	if err := os.WriteFile(file, []byte(NftRuleset(d.name == DUTNftJhash)), 0o644); err != nil {
		return err
	}
	// Static neighbours: the backends live behind the generator veth.
	err = t.DUT.Do(func() error {
		for _, b := range Backends {
			n := &netlink.Neigh{LinkIndex: t.DUTIndex, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: b.AsSlice(), HardwareAddr: GenMAC}
			if err := netlink.NeighSet(n); err != nil {
				return fmt.Errorf("neighbour %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := t.DUT.sysctl("net.ipv4.ip_forward", "1"); err != nil {
		return err
	}
	if _, err := nsExec(t.DUT, "nft", "-f", file); err != nil {
		return err
	}
	if cpu >= 0 {
		if _, err := nsExec(t.DUT, "sh", "-c", fmt.Sprintf("echo %x > /sys/class/net/%s/queues/rx-0/rps_cpus", uint64(1)<<cpu, t.DUTIf)); err != nil {
			return fmt.Errorf("RPS to CPU %d: %w", cpu, err)
		}
	}
	return nil
}

func (d *nftDUT) Stop() error {
	if d.t == nil {
		return nil
	}
	t := d.t
	d.t = nil
	var errs []error
	ct := strings.TrimSpace(readFileIn(t.DUT, "/proc/sys/net/netfilter/nf_conntrack_count"))
	if out, err := nsExec(t.DUT, "nft", "list", "table", "ip", "gvsbench"); err == nil {
		if i := strings.Index(out, "counter packets "); i >= 0 {
			f := strings.Fields(out[i:])
			if len(f) >= 3 {
				d.detail = "rule matched " + f[2] + " packets (first of each flow; conntrack NATs the rest)"
			}
		}
	}
	if ct != "" {
		d.detail += "; conntrack entries " + ct
	}
	if _, err := nsExec(t.DUT, "nft", "delete", "table", "ip", "gvsbench"); err != nil && !strings.Contains(err.Error(), "No such file") {
		errs = append(errs, err)
	}
	if _, err := nsExec(t.DUT, "sh", "-c", fmt.Sprintf("echo 0 > /sys/class/net/%s/queues/rx-0/rps_cpus", t.DUTIf)); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, t.DUT.sysctl("net.ipv4.ip_forward", "0"))
	// Conntrack entries outlive the table (30 s for one-way UDP): a later
	// round may find its flows already NATed, which changes nothing on
	// the per-packet path measured here.
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
	return errors.Join(errs...)
}

// readFileIn reads a file of /proc inside the namespace ("" on error).
func readFileIn(ns *Netns, path string) string {
	var s string
	ns.Do(func() error {
		b, err := os.ReadFile(path)
		s = string(b)
		return err
	})
	return s
}

func (d *nftDUT) Detail() string { return d.detail }
