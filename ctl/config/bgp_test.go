package config

import (
	"strings"
	"testing"
	"time"
)

const bgpDoc = `[[port]]
name = "eth0"

[bgp]
local_as = 65010
router_id = "198.18.0.1"
communities = ["65010:1"]
withdraw_delay = "500ms"
  [bgp.drain]
  communities = ["graceful-shutdown"]
  med = 500
  prepend = 2
  [[bgp.neighbor]]
  address = "198.18.0.254"
  as = 65000
  hold = "9s"
  keepalive = "3s"

[[service]]
proto = "tcp"
vip = "198.18.1.10"
port = 80
scheduler = "mh"
method = "dr"
announce = true
min_healthy = 2
  [[service.real]]
  addr = "198.18.2.11"
  [[service.real]]
  addr = "198.18.2.12"

[[service]]
proto = "tcp"
vip = "198.18.1.11"
port = 80
  [[service.real]]
  addr = "198.18.2.11"
`

func TestBGP(t *testing.T) {
	cfg, err := Parse("b.toml", []byte(bgpDoc))
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.BGP
	if b == nil || b.LocalAS != 65010 || b.ListenPort != 0 || b.Withdraw != 500*time.Millisecond || len(b.Neighbors) != 1 {
		t.Fatalf("bgp %+v", b)
	}
	if n := b.Neighbors[0]; n.AS != 65000 || n.Hold != 9*time.Second || n.Keepalive != 3*time.Second {
		t.Fatalf("neighbor %+v", n)
	}
	if len(b.Attrs.Communities) != 1 || b.Attrs.Communities[0] != 65010<<16|1 || b.Drain.Prepend != 2 || *b.Drain.MED != 500 || b.Drain.Communities[0] != 0xFFFF0000 {
		t.Fatalf("attrs %+v drain %+v", b.Attrs, b.Drain)
	}
	if len(b.VIPs) != 1 || b.VIPs[0].VIP.String() != "198.18.1.10" || b.VIPs[0].Services[0].MinHealthy != 2 {
		t.Fatalf("policies %+v", b.VIPs)
	}
}

func TestBGPErrors(t *testing.T) {
	cases := []struct{ from, to, key string }{
		{"local_as = 65010", "local_as = 0", "bgp.local_as"},
		{`router_id = "198.18.0.1"`, `router_id = "x"`, "bgp.router_id"},
		{`hold = "9s"`, `hold = "2s"`, "bgp.neighbor[0].hold"},
		{`"65010:1"`, `"65010:x"`, "bgp.communities[0]"},
		{"min_healthy = 2", "min_healthy = 3", "service[0].min_healthy"},
		{"prepend = 2", "prepend = 20", "bgp.drain.prepend"},
	}
	for _, c := range cases {
		_, err := Parse("b.toml", []byte(strings.Replace(bgpDoc, c.from, c.to, 1)))
		if err == nil || !strings.Contains(err.Error(), c.key) || !strings.Contains(err.Error(), "b.toml:") {
			t.Errorf("%s → %s: %v", c.from, c.to, err)
		}
	}
	noBGP := bgpDoc[:strings.Index(bgpDoc, "[bgp]")] + bgpDoc[strings.Index(bgpDoc, "[[service]]"):]
	if _, err := Parse("b.toml", []byte(noBGP)); err == nil || !strings.Contains(err.Error(), "needs a [bgp] section") {
		t.Errorf("announce without [bgp]: %v", err)
	}
}
