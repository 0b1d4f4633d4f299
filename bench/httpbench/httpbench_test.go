package httpbench

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gvs/ctl/config"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

func TestParseWrk(t *testing.T) {
	for _, tc := range []struct {
		file string
		want WrkOutput
	}{
		{"keepalive.txt", WrkOutput{RequestsPerSec: 146644.59, Requests: 161307, DurationSec: 1.1,
			P50ms: 0.106, P75ms: 0.140, P90ms: 0.297, P99ms: 1.52}},
		{"newconn.txt", WrkOutput{RequestsPerSec: 48948.63, Requests: 53857, DurationSec: 1.1,
			P50ms: 0.232, P75ms: 0.342, P90ms: 0.452, P99ms: 1.04}},
		{"errors.txt", WrkOutput{RequestsPerSec: 116196.90, Requests: 127836, DurationSec: 1.1,
			P50ms: 0.130, P75ms: 0.162, P90ms: 0.200, P99ms: 0.343, ReadErrors: 2609, Non2xx: 13043}},
		{"seconds_edited.txt", WrkOutput{RequestsPerSec: 7768.96, Requests: 38922, DurationSec: 5.01,
			P50ms: 4.21, P75ms: 9.87, P90ms: 31.05, P99ms: 1230, Timeouts: 41}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ParseWrk(readTestdata(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			w := tc.want
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"rps", got.RequestsPerSec, w.RequestsPerSec}, {"duration", got.DurationSec, w.DurationSec},
				{"p50", got.P50ms, w.P50ms}, {"p75", got.P75ms, w.P75ms}, {"p90", got.P90ms, w.P90ms}, {"p99", got.P99ms, w.P99ms},
			} {
				if !near(f.got, f.want) {
					t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
				}
			}
			if got.Requests != w.Requests || got.ConnectErrors != w.ConnectErrors || got.ReadErrors != w.ReadErrors ||
				got.WriteErrors != w.WriteErrors || got.Timeouts != w.Timeouts || got.Non2xx != w.Non2xx {
				t.Errorf("counts = %+v, want %+v", *got, w)
			}
		})
	}
}

func TestParseWrkErrorsRatio(t *testing.T) {
	w, err := ParseWrk(readTestdata(t, "errors.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Errors() != 2609+13043 {
		t.Errorf("Errors = %d", w.Errors())
	}
	if r := w.ErrorRatio(); !near(r, float64(2609+13043)/127836) {
		t.Errorf("ErrorRatio = %v", r)
	}
	if (&WrkOutput{}).ErrorRatio() != 0 || (&WrkOutput{Timeouts: 3}).ErrorRatio() != 1 {
		t.Error("ErrorRatio of empty runs")
	}
}

func TestParseWrkRejects(t *testing.T) {
	for name, out := range map[string]string{
		"refused":    readTestdata(t, "refused.txt"),
		"empty":      "",
		"no latency": "  10 requests in 1.00s, 1KB read\nRequests/sec:     10.00\n",
		"bad unit":   "  Latency Distribution\n     50%    4.21xs\nRequests/sec:   1.00\n",
	} {
		if w, err := ParseWrk(out); err == nil {
			t.Errorf("%s: parsed as %+v, want an error", name, w)
		}
	}
}

func TestParseWrkTime(t *testing.T) {
	for in, want := range map[string]float64{"455.12us": 0.45512, "1.65ms": 1.65, "2.00s": 2000, "1.50m": 90000, "1.00h": 3.6e6} {
		got, err := parseWrkTime(in)
		if err != nil || !near(got, want) {
			t.Errorf("parseWrkTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestWrkArgs(t *testing.T) {
	got := strings.Join(wrkArgs(2, 64, 5*time.Second, true, "http://198.18.22.10:80/"), " ")
	if want := "-t2 -c64 -d5s --latency -H Connection: close http://198.18.22.10:80/"; got != want {
		t.Errorf("wrkArgs = %q, want %q", got, want)
	}
	if got := strings.Join(wrkArgs(1, 8, time.Second, false, "http://x/"), " "); strings.Contains(got, "Connection") {
		t.Errorf("keep-alive args %q ask for Connection: close", got)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{5}, 5}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		in := append([]float64(nil), tc.in...)
		if got := median(in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Errorf("median modified its input")
			}
		}
	}
}

func sample(round int, rps, p99 float64) Sample {
	return Sample{Round: round, WrkOutput: &WrkOutput{RequestsPerSec: rps, P99ms: p99, Requests: 1000}}
}

func TestSummarize(t *testing.T) {
	flagged := sample(2, 900, 9)
	flagged.Flagged = true
	r := &Report{Results: []Result{
		{Contender: Direct, Mode: KeepAlive, Samples: []Sample{sample(1, 100, 1), sample(2, 300, 3), sample(3, 200, 2)}},
		{Contender: Direct, Mode: NewConn, Samples: []Sample{sample(1, 50, 5)}},
		{Contender: Gvs, Mode: KeepAlive, Samples: []Sample{sample(1, 150, 4), flagged, {Round: 3, Error: "boom"}}},
		{Contender: Gvs, Mode: NewConn, Samples: []Sample{{Round: 1, Error: "setup failed"}}},
	}}
	r.summarize()
	d := r.find(Direct, KeepAlive)
	if d.MedianRPS != 200 || d.MedianP99ms != 2 || d.RatioToDirect == nil || *d.RatioToDirect != 1 || d.Flagged || d.Error != "" {
		t.Errorf("direct keepalive: %+v", d)
	}
	g := r.find(Gvs, KeepAlive)
	if g.MedianRPS != 525 || g.MedianP99ms != 6.5 || g.RatioToDirect == nil || !near(*g.RatioToDirect, 525.0/200) || !g.Flagged || g.Error != "round 3: boom" {
		t.Errorf("gvs keepalive: %+v", g)
	}
	gn := r.find(Gvs, NewConn)
	if gn.MedianRPS != 0 || gn.RatioToDirect != nil || gn.Error == "" {
		t.Errorf("gvs newconn: %+v", gn)
	}
	if f := strings.Join(r.Failed(), ","); f != "gvs/keepalive,gvs/newconn" {
		t.Errorf("Failed = %v", f)
	}

	// Without direct there is no ratio.
	r2 := &Report{Results: []Result{{Contender: Nftables, Mode: KeepAlive, Samples: []Sample{sample(1, 10, 1)}}}}
	r2.summarize()
	if r2.Results[0].RatioToDirect != nil {
		t.Error("ratio without direct")
	}

	var b strings.Builder
	r.Options = ReportOptions{Rounds: 3, DurationSec: 5, Connections: 64, Threads: 2, Backends: 1}
	r.Versions = map[string]string{"wrk": "wrk 4.1.0"}
	r.Notes = []string{"a note"}
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"contender", "vs direct", "direct     keepalive  200", "1.00x", "2.62x", "100 300 200",
		"150 900 failed", ">1% errors", "error: round 3: boom", "wrk: wrk 4.1.0", "note: a note", "wrk -t2 -c64 -d5s"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := r.WriteJSON(&b); err != nil || !strings.Contains(b.String(), `"ratio_to_direct": 2.625`) || !strings.Contains(b.String(), `"requests_per_sec": 150`) {
		t.Errorf("json (%v):\n%s", err, b.String())
	}
}

func TestOptions(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Rounds != 3 || o.Duration != 5*time.Second || o.Warmup != 0 || o.Connections != 64 || o.Threads != 2 ||
		o.Backends != 1 || strings.Join(o.Contenders, ",") != "direct,nftables,haproxy,gvs" || o.GvsWorkers != 1 || o.HAProxyThreads != 1 || o.Log == nil {
		t.Errorf("defaults: %+v", o)
	}
	if err := DefaultOptions().validate(); err != nil {
		t.Errorf("DefaultOptions: %v", err)
	}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Rounds: -1}, "rounds -1"},
		{Options{Duration: 1500 * time.Millisecond}, "whole number of seconds"},
		{Options{Duration: 500 * time.Millisecond}, "at least 1s"},
		{Options{Warmup: 300 * time.Millisecond}, "warmup 300ms"},
		{Options{Warmup: -time.Second}, "warmup -1s"},
		{Options{Threads: 4, Connections: 2}, "connections 2: must be at least threads (4)"},
		{Options{Backends: 1000}, "backends 1000"},
		{Options{Contenders: []string{"ipvs"}}, `unknown contender "ipvs"`},
		{Options{Contenders: []string{Gvs, Gvs}}, `contender "gvs" given twice`},
		{Options{GvsWorkers: -1}, "gvs workers -1"},
		{Options{HAProxyThreads: 100}, "haproxy threads 100"},
	} {
		_, err := tc.o.withDefaults()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to contain %q", tc.o, err, tc.want)
		}
	}
	if c, err := ParseContenders(" direct, gvs-nat"); err != nil || strings.Join(c, ",") != "direct,gvs-nat" {
		t.Errorf("ParseContenders = %v, %v", c, err)
	}
	if c, err := ParseContenders(""); err != nil || len(c) != len(DefaultContenders) {
		t.Errorf("ParseContenders empty = %v, %v", c, err)
	}
	if _, err := ParseContenders("direct,lvs"); err == nil {
		t.Error("ParseContenders accepted lvs")
	}
}

func TestRequiredPrograms(t *testing.T) {
	got := strings.Join(requiredPrograms(Options{Contenders: []string{Direct, Gvs}}), ",")
	if got != "ip,wrk,nginx" {
		t.Errorf("direct,gvs needs %s", got)
	}
	got = strings.Join(requiredPrograms(Options{Contenders: []string{Nftables, HAProxy}}), ",")
	if got != "ip,wrk,nginx,nft,haproxy" {
		t.Errorf("nftables,haproxy needs %s", got)
	}
	t.Setenv("PATH", t.TempDir())
	err := MissingPrograms(Options{Contenders: []string{HAProxy}})
	if err == nil || !strings.Contains(err.Error(), "haproxy (apt-get install haproxy)") || !strings.Contains(err.Error(), "nginx (apt-get install nginx-light)") {
		t.Errorf("MissingPrograms: %v", err)
	}
}

func TestRunNotRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root")
	}
	if _, err := Run(t.Context(), Options{}); err != ErrNotRoot {
		t.Errorf("Run as non-root: %v, want ErrNotRoot", err)
	}
}

func TestConfigs(t *testing.T) {
	contains := func(name, text string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q:\n%s", name, w, text)
			}
		}
	}
	be := []string{BackendAddr(0), BackendAddr(1)}
	contains("nft", nftRuleset(VIP, 80, be),
		"table ip gvshttp {",
		"type nat hook prerouting priority dstnat; policy accept;",
		"ip daddr 198.18.22.10 tcp dport 80 dnat to numgen inc mod 2 map { 0 : 198.18.21.11, 1 : 198.18.21.12 }")
	contains("haproxy", haproxyConfig(VIP, 80, be, 1),
		"nbthread 1", "maxconn 8000", "mode tcp", "bind 198.18.22.10:80", "balance roundrobin",
		"server s0 198.18.21.11:80", "server s1 198.18.21.12:80")
	contains("nginx", nginxConfig("/tmp/x"),
		"worker_processes 1;", "master_process off;", "daemon off;", "access_log off;", "keepalive_requests 1000000;",
		"listen 80 backlog=65535;", `return 200 "ok\n";`, "pid /tmp/x/nginx.pid;")
	g := gvsdConfig(VIP, 80, "dr", be, 1)
	contains("gvsd", g, "workers = 1", `driver = "afxdp"`, `name = "eth0"`, `vip = "198.18.22.10"`, "port = 80",
		`scheduler = "rr"`, `method = "dr"`, `addr = "198.18.21.11"`, `addr = "198.18.21.12"`, `proto = "tcp"`)
	contains("gvsd nat", gvsdConfig(VIP, 80, "nat", be[:1], 2), `method = "nat"`, "workers = 2")
}

func TestAddresses(t *testing.T) {
	if BackendAddr(0) != "198.18.21.11" || BackendAddr(maxBackends-1) != "198.18.21.210" {
		t.Error("backend addresses")
	}
	if ClientSource(0) != "198.18.20.10" || ClientSource(clientSources) != ClientSource(0) || ClientSource(clientSources-1) != "198.18.20.209" {
		t.Error("client source addresses")
	}
	for _, a := range []string{ClientAddr, RouterClientAddr, RouterAddr, LBAddr, VIP, BackendAddr(0), ClientSource(199)} {
		if !strings.HasPrefix(a, "198.18.") && !strings.HasPrefix(a, "198.19.") {
			t.Errorf("%s is outside 198.18.0.0/15", a)
		}
	}
}

// The rendered gvsd configuration passes gvsd's own parser and validation.
func TestGvsdConfigValid(t *testing.T) {
	for _, method := range []string{"dr", "nat"} {
		if _, err := config.Parse("gvsd.toml", []byte(gvsdConfig(VIP, 80, method, []string{BackendAddr(0), BackendAddr(1)}, 1))); err != nil {
			t.Errorf("%s: %v", method, err)
		}
	}
}
