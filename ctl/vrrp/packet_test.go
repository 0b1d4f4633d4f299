package vrrp

import (
	"encoding/hex"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestAdvertRoundTrip(t *testing.T) {
	cases := []struct {
		name     string
		adv      Advert
		src, dst string
	}{
		{"v3 ipv4", Advert{Version: 3, VRID: 51, Priority: 150, Interval: 100 * time.Millisecond,
			Addrs: []netip.Addr{netip.MustParseAddr("198.18.1.10"), netip.MustParseAddr("198.18.1.11")}}, "198.18.1.1", "224.0.0.18"},
		{"v3 ipv6", Advert{Version: 3, VRID: 7, Priority: 255, Interval: 40950 * time.Millisecond,
			Addrs: []netip.Addr{netip.MustParseAddr("2001:db8:1::10")}}, "fe80::1", "ff02::12"},
		{"v3 unicast", Advert{Version: 3, VRID: 1, Priority: 1, Interval: time.Second,
			Addrs: []netip.Addr{netip.MustParseAddr("198.18.1.10")}}, "198.18.1.1", "198.18.1.2"},
		{"v2 password", Advert{Version: 2, VRID: 51, Priority: 100, Interval: 3 * time.Second, AuthType: AuthSimple, AuthData: authData("secret"),
			Addrs: []netip.Addr{netip.MustParseAddr("198.18.1.10")}}, "198.18.1.1", "224.0.0.18"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, dst := netip.MustParseAddr(c.src), netip.MustParseAddr(c.dst)
			b := c.adv.Marshal(nil, src, dst)
			got, reason := Parse(b, src, dst)
			if reason != "" {
				t.Fatalf("parse: %s (%x)", reason, b)
			}
			if !reflect.DeepEqual(got, c.adv) {
				t.Fatalf("got %+v\nwant %+v", got, c.adv)
			}
			// The checksum covers the pseudo-header in v3 only.
			other := netip.MustParseAddr("198.18.1.99")
			if src.Is6() {
				other = netip.MustParseAddr("fe80::99")
			}
			_, reason = Parse(b, other, dst)
			if c.adv.Version == 3 && reason != DiscardChecksum {
				t.Fatalf("v3 checksum does not cover the source address: %q", reason)
			}
			if c.adv.Version == 2 && reason != "" {
				t.Fatalf("v2 checksum must not cover addresses: %q", reason)
			}
		})
	}
}

// Known encodings: the field layout of RFC 5798 §5.1 and RFC 3768 §5.1
// byte by byte, and checksums verified independently of Marshal. (Wire
// compatibility with keepalived is proven by tests/vrrp_test.go.)
func TestKnownEncodings(t *testing.T) {
	src, dst := netip.MustParseAddr("198.18.1.1"), Group4
	adv := Advert{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("198.18.1.254")}}
	got := hex.EncodeToString(adv.Marshal(nil, src, dst))
	// 0x31 v3/advert, vrid 0x33, prio 0x64, 1 addr, 0x0064 = 100 cs.
	if got[:16-4] != "313364010064" {
		t.Fatalf("header %s", got)
	}
	// Checksum check independent of Marshal: the whole message plus the
	// pseudo-header sums to 0xffff.
	b := adv.Marshal(nil, src, dst)
	if fold(pseudoSum(src, dst, len(b))+onesSum(b)) != 0xffff {
		t.Fatal("checksum does not verify")
	}
	v2 := Advert{Version: 2, VRID: 51, Priority: 100, Interval: time.Second, AuthType: AuthSimple, AuthData: authData("secret"),
		Addrs: []netip.Addr{netip.MustParseAddr("198.18.1.254")}}
	b2 := v2.Marshal(nil, src, dst)
	if hex.EncodeToString(b2[:6]) != "213364010101" || string(b2[12:18]) != "secret" || len(b2) != 20 {
		t.Fatalf("v2 %x", b2)
	}
	if checksum(b2, 0) != 0 {
		t.Fatal("v2 checksum does not verify")
	}
}

func FuzzParse(f *testing.F) {
	src, dst := netip.MustParseAddr("198.18.1.1"), Group4
	adv := Advert{Version: 3, VRID: 1, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("198.18.1.254")}}
	f.Add(adv.Marshal(nil, src, dst))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, reason := Parse(b, src, dst)
		if reason == "" {
			again := a.Marshal(nil, src, dst)
			if _, r := Parse(again, src, dst); r != "" {
				t.Fatalf("re-encoding fails: %s", r)
			}
		}
	})
}
