package bgp

import (
	"net/netip"
	"strings"
	"testing"

	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"gvs/lb"
)

func key(vip string, port uint16) lb.ServiceKey {
	return lb.ServiceKey{Proto: lb.ProtoTCP, VIP: netip.MustParseAddr(vip), Port: port}
}

func TestDecide(t *testing.T) {
	pols := Policies([]ServicePolicy{
		{Key: key("198.18.1.10", 80), MinHealthy: 1},
		{Key: key("198.18.1.10", 443), MinHealthy: 2},
		{Key: key("2001:db8::10", 80), MinHealthy: 1},
	})
	if len(pols) != 2 || len(pols[0].Services) != 2 {
		t.Fatalf("policies grouped by VIP: %+v", pols)
	}
	healthy := map[lb.ServiceKey]int{key("198.18.1.10", 80): 3, key("198.18.1.10", 443): 2, key("2001:db8::10", 80): 1}
	base := func() Input {
		return Input{Polling: true, Healthy: func(k lb.ServiceKey) (int, bool) {
			n, ok := healthy[k]
			return n, ok
		}}
	}
	cases := []struct {
		name   string
		in     func() Input
		setup  func()
		want   []bool
		reason string // of the first VIP
	}{
		{"all healthy", base, nil, []bool{true, true}, "healthy"},
		{"below min_healthy on one service", base, func() { healthy[key("198.18.1.10", 443)] = 1 }, []bool{false, true}, "fewer than min_healthy 2"},
		{"no healthy real", base, func() { healthy[key("2001:db8::10", 80)] = 0 }, []bool{true, false}, "healthy"},
		{"service gone", base, func() { delete(healthy, key("198.18.1.10", 80)) }, []bool{false, true}, "not configured"},
		{"dataplane stalled", func() Input {
			in := base()
			in.Polling, in.PollReason = false, "worker 0 has not polled for 1.2s"
			return in
		}, nil, []bool{false, false}, "worker 0 has not polled"},
		{"vrrp backup", func() Input {
			in := base()
			in.Backup = func(a netip.Addr) string {
				if a.Is4() {
					return "vi_1"
				}
				return ""
			}
			return in
		}, nil, []bool{false, true}, "vrrp instance vi_1 is not master"},
		{"stopping", func() Input { in := base(); in.Stopping = true; return in }, nil, []bool{false, false}, "stopping"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			saved := map[lb.ServiceKey]int{}
			for k, v := range healthy {
				saved[k] = v
			}
			defer func() { healthy = saved }()
			if c.setup != nil {
				c.setup()
			}
			ds := Decide(pols, c.in())
			if len(ds) != len(c.want) {
				t.Fatalf("%d decisions, want %d", len(ds), len(c.want))
			}
			for i, d := range ds {
				if d.Announce != c.want[i] {
					t.Errorf("%v: announce %v, want %v (%s)", d.Prefix, d.Announce, c.want[i], d.Reason)
				}
			}
			if !strings.Contains(ds[0].Reason, c.reason) {
				t.Errorf("reason %q, want it to contain %q", ds[0].Reason, c.reason)
			}
			if ds[0].Prefix.Bits() != 32 || ds[1].Prefix.Bits() != 128 {
				t.Errorf("host routes: %v %v", ds[0].Prefix, ds[1].Prefix)
			}
		})
	}
}

func TestPathAttrs(t *testing.T) {
	med, dmed := uint32(10), uint32(500)
	c := Config{LocalAS: 65010, Attrs: Attrs{Communities: []uint32{65010<<16 | 1}, MED: &med},
		Drain: Attrs{Communities: []uint32{0xFFFF0000}, MED: &dmed, Prepend: 3}}
	find := func(attrs []bgppkt.PathAttributeInterface, typ bgppkt.BGPAttrType) bgppkt.PathAttributeInterface {
		for _, a := range attrs {
			if a.GetType() == typ {
				return a
			}
		}
		return nil
	}
	attrs, _, fam, err := c.PathAttrs(netip.MustParsePrefix("198.18.1.10/32"), false)
	if err != nil || fam != bgppkt.RF_IPv4_UC {
		t.Fatal(err, fam)
	}
	if m := find(attrs, bgppkt.BGP_ATTR_TYPE_MULTI_EXIT_DISC).(*bgppkt.PathAttributeMultiExitDisc); m.Value != 10 {
		t.Errorf("MED %d", m.Value)
	}
	if find(attrs, bgppkt.BGP_ATTR_TYPE_AS_PATH) != nil {
		t.Error("AS path prepended without drain")
	}
	attrs, _, _, err = c.PathAttrs(netip.MustParsePrefix("198.18.1.10/32"), true)
	if err != nil {
		t.Fatal(err)
	}
	if m := find(attrs, bgppkt.BGP_ATTR_TYPE_MULTI_EXIT_DISC).(*bgppkt.PathAttributeMultiExitDisc); m.Value != 500 {
		t.Errorf("drained MED %d", m.Value)
	}
	if cs := find(attrs, bgppkt.BGP_ATTR_TYPE_COMMUNITIES).(*bgppkt.PathAttributeCommunities); len(cs.Value) != 2 {
		t.Errorf("drained communities %v", cs.Value)
	}
	ap := find(attrs, bgppkt.BGP_ATTR_TYPE_AS_PATH).(*bgppkt.PathAttributeAsPath)
	if got := ap.String(); !strings.Contains(got, "65010 65010 65010") {
		t.Errorf("drained AS path %q", got)
	}
	_, _, fam, err = c.PathAttrs(netip.MustParsePrefix("2001:db8::10/128"), true)
	if err != nil || fam != bgppkt.RF_IPv6_UC {
		t.Fatal(err, fam)
	}
}
