package trafficgen

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	good := func() Options {
		return Options{Driver: DriverAFPacket, Netns: "tg-a", Iface: "veth0", DstMAC: MAC{2, 0, 0, 0, 0, 2},
			Src: []netip.Addr{testSrc4}, Dst: []netip.Addr{testDst4}, Duration: time.Second, Flows: 1,
			Sinks: []Sink{{Netns: "tg-b", Iface: "veth1", Driver: DriverAFPacket}}}
	}
	cases := []struct {
		name string
		mod  func(*Options)
		want string // "" : valid
	}{
		{"good", func(*Options) {}, ""},
		{"good mem", func(o *Options) { *o = Options{Driver: DriverMem, Src: o.Src, Dst: o.Dst, Count: 10, Flows: 1} }, ""},
		{"driver", func(o *Options) { o.Driver = "pcap" }, `driver "pcap" unknown`},
		{"family", func(o *Options) { o.Family = "5" }, `family "5" unknown`},
		{"proto", func(o *Options) { o.Proto = "icmp" }, `unknown protocol "icmp"`},
		{"weight", func(o *Options) { o.Proto = "udp:x" }, `weight "x" of udp`},
		{"zero weights", func(o *Options) { o.Proto = "udp:0" }, "all weights are zero"},
		{"flows 0", func(o *Options) { o.Flows = 0 }, "flows 0 out of range 1..1048576"},
		{"flows big", func(o *Options) { o.Flows = 1<<20 + 1 }, "out of range 1..1048576"},
		{"size small", func(o *Options) { o.Size = 63 }, "size 63 out of range 64..9018"},
		{"size big", func(o *Options) { o.Size = 9019 }, "size 9019 out of range"},
		{"size and imix", func(o *Options) { o.Size, o.IMIX = 128, true }, "size 128 and imix both given"},
		{"rate", func(o *Options) { o.Rate = -1 }, "rate -1 is negative"},
		{"no bound", func(o *Options) { o.Duration = 0 }, "neither duration nor count"},
		{"too long", func(o *Options) { o.Duration = 2 * time.Hour }, "duration 2h0m0s longer than 1h0m0s"},
		{"mac", func(o *Options) { o.DstMAC = MAC{1, 2, 3} }, "dst-mac 01:02:03 malformed"},
		{"no dst mac", func(o *Options) { o.DstMAC = nil }, "dst-mac missing"},
		{"no iface", func(o *Options) { o.Iface = "" }, "iface missing"},
		{"root ns", func(o *Options) { o.Netns = "" }, "netns missing"},
		{"root ns allowed", func(o *Options) { o.Netns, o.AllowRootNS = "", true }, ""},
		{"sink root ns", func(o *Options) { o.Sinks[0].Netns = "" }, "no netns"},
		{"no sink", func(o *Options) { o.Sinks = nil }, "no sink"},
		{"mem with sink", func(o *Options) { o.Driver = DriverMem }, "driver mem sends into an in-memory port"},
		{"dst outside", func(o *Options) { o.Dst = []netip.Addr{netip.MustParseAddr("10.0.0.1")} }, "dst 10.0.0.1: outside the allowed prefixes"},
		{"src outside", func(o *Options) { o.Src = []netip.Addr{netip.MustParseAddr("8.8.8.8")} }, "src 8.8.8.8: outside the allowed prefixes"},
		{"v6 outside", func(o *Options) {
			o.Family, o.Src, o.Dst = "6", []netip.Addr{testSrc6}, []netip.Addr{netip.MustParseAddr("2001:4860::8888")}
		}, "dst 2001:4860::8888: outside"},
		{"flows leave the prefix", func(o *Options) {
			o.Src, o.Flows, o.SportBase = []netip.Addr{netip.MustParseAddr("198.19.255.255")}, 100, 65500
		}, "need source addresses up to 198.20.0.1"},
		{"allow narrows", func(o *Options) { o.Allow = []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")} }, "src 198.18.0.1: outside the allowed prefixes [198.18.1.0/24]"},
		{"allow too wide", func(o *Options) { o.Allow = []netip.Prefix{netip.MustParsePrefix("198.0.0.0/8")} }, "allow 198.0.0.0/8: not inside"},
		{"allow routable", func(o *Options) { o.Allow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} }, "allow 10.0.0.0/8: not inside"},
		{"allow test-net", func(o *Options) {
			o.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
			o.Src, o.Dst = []netip.Addr{netip.MustParseAddr("192.0.2.1")}, []netip.Addr{netip.MustParseAddr("192.0.2.10")}
		}, ""},
		{"no v6 source", func(o *Options) { o.Family = "both"; o.Dst = append(o.Dst, testDst6) }, "src: no IPv6 source given"},
		{"mapped", func(o *Options) { o.Src = append(o.Src, netip.MustParseAddr("::ffff:198.18.0.1")) }, "IPv4-mapped"},
		{"flows for mix", func(o *Options) {
			o.Proto, o.Family, o.Src, o.Dst = "mix", "both", []netip.Addr{testSrc4, testSrc6}, []netip.Addr{testDst4, testDst6}
		}, "flows 1 fewer than the 6"},
		{"drain", func(o *Options) { o.Drain = time.Minute }, "drain 1m0s out of range"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := good()
			c.mod(&o)
			o.Defaults()
			err := o.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("no error, want %q", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q, want %q", err, c.want)
			}
		})
	}
}

func TestParseSink(t *testing.T) {
	k, err := ParseSink("tg-b:veth1")
	if err != nil || k != (Sink{Netns: "tg-b", Iface: "veth1", Driver: DriverAFPacket}) {
		t.Fatalf("%+v %v", k, err)
	}
	if k, err := ParseSink("tg-b:veth1:afxdp"); err != nil || k.Driver != DriverAFXDP {
		t.Fatalf("%+v %v", k, err)
	}
	for _, bad := range []string{"veth1", "a:b:c:d", "a::afxdp", "a:b:mem"} {
		if _, err := ParseSink(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
