package config

import (
	"strings"
	"testing"
)

const dpdkDoc = `
[global]
workers = 2
[global.dpdk]
memory = "no-huge"
memory_mb = 512
vdevs = ["net_null9"]

[[port]]
name = "eth0"
driver = "dpdk"
device = "net_af_packet0,iface=eth0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.1.1/24", "2001:db8:1::1/64"]
gateways = ["198.18.1.254"]
tap = "gvs-eth0"

[[service]]
proto = "tcp"
vip = "198.18.250.10"
port = 80
  [[service.real]]
  addr = "198.18.1.11"
`

func TestDPDKPort(t *testing.T) {
	cfg, err := Parse("d.toml", []byte(dpdkDoc))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Ports[0]
	if p.Driver != "dpdk" || p.Device != "net_af_packet0,iface=eth0" || len(p.Addresses) != 2 || p.Tap != "gvs-eth0" {
		t.Fatalf("port %+v", p)
	}
	if d := cfg.Global.DPDK; d == nil || d.MemoryMB != 512 || d.Vdevs[0] != "net_null9" {
		t.Fatalf("global.dpdk %+v", d)
	}
	out, err := Marshal(cfg.File)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("again.toml", out); err != nil {
		t.Fatalf("round trip: %v\n%s", err, out)
	}
}

func TestDPDKErrors(t *testing.T) {
	cases := []struct{ name, from, to, want string }{
		{"bad memory", `memory = "no-huge"`, `memory = "lots"`, "global.dpdk.memory: want no-huge, hugepages or in-memory"},
		{"address without prefix", `"198.18.1.1/24"`, `"198.18.1.1"`, "port[0].addresses[0]: want an address with its prefix length"},
		{"two v4 gateways", `gateways = ["198.18.1.254"]`, `gateways = ["198.18.1.254", "198.18.1.253"]`, "port[0].gateways[1]: one gateway per address family"},
		{"bad mac", `mac = "02:00:00:00:00:01"`, `mac = "zz"`, "port[0].mac: bad Ethernet address"},
		{"long tap", `tap = "gvs-eth0"`, `tap = "a-very-long-tap-name"`, "port[0].tap: bad interface name"},
		{"bad exception", `tap = "gvs-eth0"`, `exception = "kni"`, "port[0].exception: want tap or none"},
		{"dpdk key on afxdp", `driver = "dpdk"`, `driver = "afxdp"`, "are for driver = \"dpdk\" only"},
		{"mixed drivers", `[[service]]`, "[[port]]\nname = \"eth1\"\ndriver = \"afpacket\"\n\n[[service]]", "cannot be mixed with kernel drivers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(dpdkDoc, c.from, c.to, 1)
			_, err := Parse("d.toml", []byte(doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}
