package vethbench

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	return &Report{
		Bench: "veth", CPUs: 2, GenCPU: 0, DUTCPU: 1, Generator: "afxdp", FrameSize: 64, Flows: 1024,
		WarmupSeconds: 1, DurationSeconds: 3,
		Results: []Result{
			{Name: DUTXDPTX, TxPackets: 6_000_000, RxPackets: 6_000_000, TxMpps: 2.0, RxMpps: 2.0},
			{Name: DUTReflector, TxPackets: 4_000_000, RxPackets: 3_000_000, TxMpps: 1.3, RxMpps: 1.0},
			{Name: DUTGvsAFXDP, TxPackets: 3_000_000, RxPackets: 2_400_000, TxMpps: 1.0, RxMpps: 0.8},
			{Name: DUTGvsAFPkt, Error: "start: boom"},
		},
	}
}

func TestComputeRatios(t *testing.T) {
	r := sampleReport()
	r.ComputeRatios()
	g := r.Results[2]
	if g.RatioXDPTX == nil || *g.RatioXDPTX != 0.4 || g.RatioReflector == nil || *g.RatioReflector != 0.8 {
		t.Fatalf("gvs ratios: %v %v", g.RatioXDPTX, g.RatioReflector)
	}
	if x := r.Results[0]; *x.RatioXDPTX != 1 || *x.RatioReflector != 2 || !x.GenBound {
		t.Fatalf("xdp-tx: %v %v bound %v", *x.RatioXDPTX, *x.RatioReflector, x.GenBound)
	}
	if r.Results[1].GenBound {
		t.Fatal("the reflector dropped 25%: not generator-bound")
	}
	if f := r.Results[3]; f.RatioXDPTX != nil || f.RatioReflector != nil {
		t.Fatal("a failed DUT has no ratios")
	}
	if got := strings.Join(r.Failed(), ","); got != DUTGvsAFPkt {
		t.Fatalf("Failed() = %q", got)
	}

	// Without the baselines there is nothing to compare with.
	r.Results = r.Results[2:3]
	r.ComputeRatios()
	if r.Results[0].RatioXDPTX != nil || r.Results[0].RatioReflector != nil {
		t.Fatal("ratios without baselines")
	}
}

func TestWriteTable(t *testing.T) {
	r := sampleReport()
	r.ComputeRatios()
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"2 CPU(s)", "ratios", "vs xdp-tx", "vs afxdp-reflector",
		"xdp-tx               2.000     2.000  100.0%*      1.000               2.000",
		"gvs-afxdp            1.000     0.800    80.0%      0.400               0.800",
		"gvs-afpacket             -         -        -          -                   -   error: start: boom",
		"* the DUT returned",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	r := sampleReport()
	r.ComputeRatios()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back struct {
		CPUs    int `json:"cpus"`
		Results []struct {
			Name      string   `json:"name"`
			RxMpps    float64  `json:"rx_mpps"`
			RatioXDP  *float64 `json:"ratio_to_xdp_tx"`
			RatioRefl *float64 `json:"ratio_to_afxdp_reflector"`
			Error     string   `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.CPUs != 2 || len(back.Results) != 4 || back.Results[2].RatioRefl == nil || *back.Results[2].RatioRefl != 0.8 {
		t.Fatalf("round trip: %+v", back)
	}
	if back.Results[3].Error == "" || back.Results[3].RatioXDP != nil {
		t.Fatalf("failed DUT: %+v", back.Results[3])
	}
}

func TestParseOnly(t *testing.T) {
	got, err := ParseOnly("gvs-afpacket, xdp-tx")
	if err != nil || strings.Join(got, ",") != "xdp-tx,gvs-afpacket" {
		t.Fatalf("ParseOnly: %v %v (want run order)", got, err)
	}
	if all, _ := ParseOnly(""); len(all) != len(DUTNames) {
		t.Fatalf("empty --only: %v", all)
	}
	for _, bad := range []string{"nope", ","} {
		if _, err := ParseOnly(bad); err == nil {
			t.Errorf("ParseOnly(%q): no error", bad)
		}
	}
}

func TestGvsConfigValid(t *testing.T) {
	cfg := GvsConfig()
	if len(cfg.Services) != 1 || cfg.Services[0].VIP != VIP || cfg.Services[0].Port != VIPPort {
		t.Fatalf("service: %+v", cfg.Services)
	}
	if len(cfg.Services[0].Reals) != len(Backends) {
		t.Fatalf("reals: %+v, want the %d backends", cfg.Services[0].Reals, len(Backends))
	}
	for _, b := range Backends {
		if hop := cfg.NextHops[b]; !hop.OK || hop.MAC != [6]byte(GenMAC) {
			t.Fatalf("next hop of %s: %+v", b, hop)
		}
	}
	for _, want := range []string{"ip daddr 198.18.1.10 udp dport 9", "numgen inc mod 2 map { 0 : 198.18.0.11, 1 : 198.18.0.12 }"} {
		if rs := NftRuleset(false); !strings.Contains(rs, want) {
			t.Errorf("numgen ruleset lacks %q:\n%s", want, rs)
		}
	}
	if rs := NftRuleset(true); !strings.Contains(rs, "jhash ip saddr . udp sport mod 2 map") {
		t.Errorf("jhash ruleset:\n%s", rs)
	}
}

func TestCPULoad(t *testing.T) {
	a := cpuSnap{busy: map[int]uint64{0: 100, 1: 100}, total: map[int]uint64{0: 1000, 1: 1000}, steal: map[int]uint64{0: 0, 1: 0}}
	b := cpuSnap{busy: map[int]uint64{0: 300, 1: 150}, total: map[int]uint64{0: 1200, 1: 1200}, steal: map[int]uint64{0: 0, 1: 20}, others: 30}
	a.at = time.Unix(100, 0)
	b.at = a.at.Add(2 * time.Second)
	l := cpuLoadBetween(a, b)
	if l.BusyPercent[0] != 100 || l.BusyPercent[1] != 25 || l.StealPercent[1] != 10 || l.OthersPercent != 15 {
		t.Fatalf("load %+v", l)
	}
	if got := l.String(); got != "CPU busy: cpu0 100% cpu1 25% (steal 10%); other processes 15% of a CPU" {
		t.Fatalf("String() = %q", got)
	}
	if !l.Disturbed() {
		t.Fatal("15% of a CPU to others is a disturbance")
	}
	if quiet := cpuLoadBetween(a, a); quiet.Disturbed() {
		t.Fatalf("no time passed, yet disturbed: %+v", quiet)
	}
	// The live reading works on this machine (no root needed).
	if s := takeCPUSnap(); len(s.total) == 0 {
		t.Fatal("no CPU in /proc/stat")
	}
}

// TestSummaryMedian: per DUT the median of its rounds, failed rounds left
// out, ratios of the medians and per-round ratios to the same round.
func TestSummaryMedian(t *testing.T) {
	r := &Report{Rounds: 3}
	add := func(round int, name string, mpps float64, errText string) {
		r.Results = append(r.Results, Result{Name: name, Round: round, TxPackets: 100, RxPackets: uint64(mpps * 10), RxMpps: mpps, Error: errText})
	}
	for round, v := range [][4]float64{{2, 1, 0.5, 0.4}, {4, 1.2, 0.9, 0.5}, {3, 0.8, 0.7, 0}} {
		add(round+1, DUTXDPTX, v[0], "")
		add(round+1, DUTReflector, v[1], "")
		add(round+1, DUTGvsAFXDP, v[2], "")
		e := ""
		if v[3] == 0 {
			e = "no frames came back"
		}
		add(round+1, DUTNftNumgen, v[3], e)
	}
	r.ComputeRatios()
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	want := map[string]float64{DUTXDPTX: 3, DUTReflector: 1, DUTGvsAFXDP: 0.7, DUTNftNumgen: 0.45}
	for name, m := range want {
		sm := r.Find(name)
		if sm == nil || !near(sm.MedianMpps, m) {
			t.Fatalf("%s: summary %+v, want median %v", name, sm, m)
		}
	}
	g := r.Find(DUTGvsAFXDP)
	if !near(*g.RatioReflector, 0.7) || !near(*g.RatioNftables, 0.7/0.45) || len(g.Samples) != 3 {
		t.Fatalf("gvs-afxdp summary %+v", g)
	}
	if n := r.Find(DUTNftNumgen); n.Failed != 1 || len(n.Samples) != 2 {
		t.Fatalf("nft summary %+v", n)
	}
	// Round 2's gvs ratio is to round 2's reflector (1.2), not the median.
	if x := r.Results[6]; x.Round != 2 || x.Name != DUTGvsAFXDP || !near(*x.RatioReflector, 0.9/1.2) {
		t.Fatalf("round 2 gvs: %+v", x)
	}
	if f := r.Failed(); len(f) != 1 || f[0] != DUTNftNumgen {
		t.Fatalf("failed %v", f)
	}
}
