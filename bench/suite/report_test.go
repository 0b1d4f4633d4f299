package suite

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gvs/bench/httpbench"
	"gvs/bench/trafficgen"
	"gvs/bench/vethbench"
)

// sampleReport is a report as a run would leave it, with made-up numbers.
func sampleReport() *Report {
	rate := &vethbench.Report{Rounds: 2, Flows: 1024, DurationSeconds: 3}
	for round := 1; round <= 2; round++ {
		for name, mpps := range map[string]float64{vethbench.DUTXDPTX: 1.6, vethbench.DUTReflector: 0.9, vethbench.DUTGvsAFXDP: 0.85, vethbench.DUTNftNumgen: 0.75} {
			rate.Results = append(rate.Results, vethbench.Result{Name: name, Round: round, TxPackets: 100, RxPackets: 90, RxMpps: mpps * float64(round)})
		}
	}
	rate.ComputeRatios()
	one := 1.0
	half := 0.5
	h := &httpbench.Report{Options: httpbench.ReportOptions{Rounds: 1, Threads: 2, Connections: 64, DurationSec: 5, Backends: 1}, Results: []httpbench.Result{
		{Contender: "direct", Mode: "keepalive", MedianRPS: 100000, MedianP99ms: 3, RatioToDirect: &one, Samples: []httpbench.Sample{{Round: 1, WrkOutput: &httpbench.WrkOutput{RequestsPerSec: 100000}}}},
		{Contender: "direct", Mode: "newconn", MedianRPS: 40000, MedianP99ms: 3, RatioToDirect: &one},
		{Contender: "gvs", Mode: "keepalive", MedianRPS: 50000, MedianP99ms: 1, RatioToDirect: &half, Flagged: true,
			Samples: []httpbench.Sample{{Round: 1, WrkOutput: &httpbench.WrkOutput{RequestsPerSec: 50000}, Flagged: true}}},
		{Contender: "gvs", Mode: "newconn", MedianRPS: 20000, MedianP99ms: 2, RatioToDirect: &half},
	}}
	lat := []LatencyResult{
		{Contender: vethbench.DUTXDPTX, Sent: 10, Received: 10, Latency: trafficgen.Latency{P50Ns: 20000, P99Ns: 3e6},
			cdf: []trafficgen.CDFPoint{{Nanos: 1000, Fraction: 0.1}, {Nanos: 20000, Fraction: 0.5}, {Nanos: 3e6, Fraction: 1}}},
		{Contender: vethbench.DUTGvsAFXDP, Sent: 10, Received: 10, Latency: trafficgen.Latency{P50Ns: 40000, P99Ns: 3e6},
			cdf: []trafficgen.CDFPoint{{Nanos: 3000, Fraction: 0.1}, {Nanos: 40000, Fraction: 0.5}, {Nanos: 3e6, Fraction: 1}}},
		{Contender: vethbench.DUTNftNumgen, Error: "nothing came back"},
	}
	lat[1].RatioP50 = ratio(40000, 20000)
	hot, _ := ParseBench(strings.NewReader(benchOut))
	return &Report{
		Started: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC), Seconds: 290,
		Machine:  Machine{CPUs: 2, CPUModel: "Test CPU", Kernel: "6.18", Go: "go1.26"},
		Versions: map[string]string{"nftables": "nftables v1.0.6", "haproxy": "HAProxy version 2.6.12"},
		Rate:     rate, HTTP: h, Latency: lat, Hot: hot,
		Errors: map[string]string{PhaseLatency: "failed: nft-numgen"},
	}
}

func TestReportFiles(t *testing.T) {
	dir := t.TempDir()
	r := sampleReport()
	if err := r.write(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"rate.svg", "http.svg", "latency.svg", "report.txt", "report.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".svg") && !strings.HasPrefix(string(b), "<?xml") && !strings.HasPrefix(string(b), "<svg") {
			t.Errorf("%s is not SVG: %.40q", f, b)
		}
	}
	if len(r.Files) != 5 {
		t.Errorf("files %v", r.Files)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	var back struct {
		Machine Machine
		Rate    struct{ Summary []vethbench.Summary }
		HTTP    struct{ Results []httpbench.Result }
		Latency []LatencyResult
		Errors  map[string]string
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Machine.CPUs != 2 || len(back.Rate.Summary) != 4 || len(back.HTTP.Results) != 4 || len(back.Latency) != 3 || back.Errors[PhaseLatency] == "" {
		t.Errorf("JSON round trip: %+v", back)
	}

	txt, _ := os.ReadFile(filepath.Join(dir, "report.txt"))
	if strings.Contains(string(txt), "* returned all") {
		t.Error("the star's footnote without a star")
	}
	for _, want := range []string{
		"machine: 2 CPU(s) Test CPU", "haproxy: HAProxy version 2.6.12",
		"gvs-afxdp            1.275", "0.850 1.700", // median and rounds
		"gvs-afxdp forwards 1.13× the packet rate of the kernel with nftables DNAT",
		"gvs          keepalive         50000      0.50×", "50000!", "! more than 1 %",
		"40.0    3000.0", "2.00×", "nft-numgen       error: nothing came back",
		"a new flow costs",
		"xdp-tx               2.400 ", // no star: nothing was generator-bound "== Phases that failed\nlatency: failed: nft-numgen",
	} {
		if !strings.Contains(string(txt), want) {
			t.Errorf("report.txt lacks %q:\n%s", want, txt)
		}
	}
}
