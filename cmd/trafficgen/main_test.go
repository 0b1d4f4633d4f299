package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	base := []string{"--netns", "tg-a", "--iface", "veth0", "--dst-mac", "02:00:00:00:00:02",
		"--src", "198.18.0.1", "--dst", "198.18.1.10", "--sink", "tg-b:veth1", "--count", "10"}
	with := func(extra ...string) []string { return append(append([]string(nil), base...), extra...) }
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", with("--bogus"), "unknown flag: --bogus"},
		{"argument", with("extra"), `unexpected argument "extra"`},
		{"driver", with("--driver", "pcap"), `driver "pcap" unknown`},
		{"dpdk", with("--driver", "dpdk"), "driver dpdk: not in this build"},
		{"proto", with("--proto", "icmp"), `unknown protocol "icmp"`},
		{"family", with("--family", "7"), `family "7" unknown`},
		{"flows", with("--flows", "0"), "flows 0 out of range 1..1048576"},
		{"flows big", with("--flows", "2000000"), "flows 2000000 out of range"},
		{"size", with("--size", "40"), "size 40 out of range 64..9018"},
		{"size word", with("--size", "big"), `size "big": not a number or imix`},
		{"rate", with("--rate", "-5"), "rate -5 is negative"},
		{"rate word", with("--rate", "fast"), `rate "fast": not a number`},
		{"duration", with("--duration", "2h"), "duration 2h0m0s longer than 1h0m0s"},
		{"no bound", []string{"--netns", "a", "--iface", "b", "--dst-mac", "02:00:00:00:00:02", "--src", "198.18.0.1", "--dst", "198.18.1.10", "--sink", "c:d"}, "neither duration nor count"},
		{"mac", with("--dst-mac", "02:00:00"), `dst-mac: MAC "02:00:00" malformed`},
		{"src mac", with("--src-mac", "zz"), `src-mac: MAC "zz" malformed`},
		{"no dst mac", []string{"--netns", "a", "--iface", "b", "--src", "198.18.0.1", "--dst", "198.18.1.10", "--sink", "c:d", "--count", "1"}, "dst-mac missing"},
		{"addr", with("--dst", "nope"), `dst "nope": not an IP address`},
		{"dst outside", []string{"--netns", "a", "--iface", "b", "--dst-mac", "02:00:00:00:00:02", "--src", "198.18.0.1", "--dst", "10.1.1.1", "--sink", "c:d", "--count", "1"}, "dst 10.1.1.1: outside the allowed prefixes"},
		{"src outside", []string{"--netns", "a", "--iface", "b", "--dst-mac", "02:00:00:00:00:02", "--src", "192.168.1.1", "--dst", "198.18.1.10", "--sink", "c:d", "--count", "1"}, "src 192.168.1.1: outside the allowed prefixes"},
		{"allow wide", with("--allow", "0.0.0.0/0"), "allow 0.0.0.0/0: not inside"},
		{"allow bad", with("--allow", "x"), `allow "x": not a prefix`},
		{"root ns", []string{"--iface", "b", "--dst-mac", "02:00:00:00:00:02", "--src", "198.18.0.1", "--dst", "198.18.1.10", "--sink", "c:d", "--count", "1"}, "netns missing"},
		{"sink", with("--sink", "nocolon"), `sink "nocolon" malformed`},
		{"sink driver", with("--sink", "a:b:mem"), `driver "mem" not usable for a sink`},
		{"sink root ns", with("--sink", ":veth1"), "no netns"},
		{"no v6 dst", with("--family", "6", "--src", "2001:db8::1"), "dst: no IPv6 destination given"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr, stdout bytes.Buffer
			_, _, err := parse(c.args, &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if !strings.Contains(stderr.String(), c.want) || !strings.Contains(stderr.String(), "usage: trafficgen") {
				t.Fatalf("stderr lacks the error or the usage:\n%s", stderr.String())
			}
			if code := run(c.args, &stdout, &stderr); code != 2 {
				t.Fatalf("exit status %d, want 2", code)
			}
		})
	}
}

func TestParseGood(t *testing.T) {
	var stderr bytes.Buffer
	o, c, err := parse([]string{"--netns", "tg-a", "--iface", "veth0", "--driver", "afxdp", "--dst-mac", "02:00:00:00:00:02",
		"--src", "198.18.0.1,2001:db8::1", "--dst", "198.18.1.10,2001:db8::10", "--family", "both", "--proto", "udp:3,ack:1",
		"--flows", "1000", "--size", "imix", "--rate", "1.5M", "--duration", "5s", "--sink", "tg-b:veth1:afxdp", "--sink", "tg-c:veth2",
		"--allow", "198.18.0.0/16,2001:db8::/48", "--json", "r.json", "--svg", "r", "--quiet", "--cpu", "1"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.Rate != 1.5e6 || !o.IMIX || len(o.Sinks) != 2 || o.Sinks[1].Driver != "afpacket" || o.CPU != 1 || len(o.Allow) != 2 ||
		!c.quiet || c.json != "r.json" || c.svg != "r" || len(o.Src) != 2 {
		t.Fatalf("%+v %+v", o, c)
	}
}

func TestRunMem(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"--driver", "mem", "--src", "198.18.0.1", "--dst", "198.18.1.10", "--count", "2000", "--rate", "20k",
		"--flows", "16", "--proto", "mix", "--json", filepath.Join(dir, "r.json"), "--svg", filepath.Join(dir, "r")}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "total") {
		t.Fatalf("no table:\n%s", stdout.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "r.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Total struct {
			Sent, Received uint64
			Lost           int64
		}
	}
	if err := json.Unmarshal(b, &res); err != nil || res.Total.Sent != 2000 || res.Total.Received != 2000 || res.Total.Lost != 0 {
		t.Fatalf("JSON %+v %v", res, err)
	}
	for _, f := range []string{"r-throughput.svg", "r-latency.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
}
