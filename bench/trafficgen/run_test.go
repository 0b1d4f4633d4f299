package trafficgen

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunMem(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.Family, o.Proto, o.Flows, o.IMIX, o.Size = "both", "mix", 60, true, 0
	o.Count, o.Rate, o.CPU = 6000, 30000, -1
	o.Duration = 10 * time.Second // never reached: the count ends the run
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var progress bytes.Buffer
	res, err := Run(ctx, o, &progress)
	if err != nil {
		t.Fatal(err)
	}
	var tab bytes.Buffer
	res.WriteTable(&tab)
	t.Logf("\n%s", tab.String())
	if res.Total.Sent != o.Count || res.Total.Received != o.Count || res.Total.Lost != 0 || res.Total.Reordered != 0 || res.Total.Duplicates != 0 {
		t.Fatalf("sent %d received %d lost %d reordered %d dup %d", res.Total.Sent, res.Total.Received, res.Total.Lost, res.Total.Reordered, res.Total.Duplicates)
	}
	if len(res.Classes) != NumClasses {
		t.Fatalf("%d classes", len(res.Classes))
	}
	for _, c := range res.Classes {
		if c.Sent == 0 || c.Received != c.Sent || c.Latency.Samples != c.Sent || c.Latency.P50Ns == 0 || c.Latency.MaxNs < c.Latency.P99Ns {
			t.Errorf("%s: %+v", c.Class, c)
		}
	}
	// 6000 packets at 30 kpps: about 0.2 s.
	if res.Elapsed < 0.15 || res.Elapsed > 5 {
		t.Errorf("elapsed %.3f s at %g pps for %d packets", res.Elapsed, o.Rate, o.Count)
	}
	if res.Total.TxMpps > 0.05 {
		t.Errorf("tx %.4f Mpps above the 0.03 asked", res.Total.TxMpps)
	}
	if len(res.Series) == 0 || res.Foreign != 0 {
		t.Errorf("series %d foreign %d", len(res.Series), res.Foreign)
	}

	jp := filepath.Join(dir, "r.json")
	if err := res.WriteJSON(jp); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(jp)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("JSON does not parse: %v", err)
	}
	if back.Total.Received != o.Count || back.Options.Flows != 60 || len(back.Classes) != NumClasses || back.Total.Latency.P99Ns == 0 {
		t.Fatalf("JSON read back: %+v", back.Total)
	}
	prefix := filepath.Join(dir, "r")
	if err := res.WriteSVG(prefix); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{prefix + "-throughput.svg", prefix + "-latency.svg"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("<?xml")) && !bytes.HasPrefix(b, []byte("<svg")) {
			t.Fatalf("%s starts with %q", f, b[:min(len(b), 20)])
		}
	}
}

func TestRunStopsOnDurationAndContext(t *testing.T) {
	o := testOptions()
	o.Count, o.Duration, o.CPU = 0, 300*time.Millisecond, -1
	start := time.Now()
	res, err := Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second || res.Elapsed < 0.29 {
		t.Fatalf("run took %v, sender %.3f s", el, res.Elapsed)
	}
	if res.Total.Sent == 0 || res.Total.Lost != 0 {
		t.Fatalf("flat out for 300 ms: sent %d lost %d", res.Total.Sent, res.Total.Lost)
	}

	o.Duration = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err = Run(ctx, o, nil)
	if err == nil || !res.Interrupted || res.Total.Lost != 0 {
		t.Fatalf("cancelled run: err %v, result %+v", err, res)
	}
	var b strings.Builder
	res.WriteTable(&b)
	if !strings.Contains(b.String(), "interrupted") {
		t.Fatalf("table does not say interrupted:\n%s", b.String())
	}
}
