package suite

import (
	"strings"
	"testing"
)

const benchOut = `goos: linux
goarch: amd64
pkg: gvs/pipeline
cpu: Intel(R) Xeon(R) Processor
BenchmarkPipeline/dr/established/ipv4-2     20000   162.4 ns/op   161.1 ns/pkt   0 B/op   0 allocs/op
BenchmarkPipeline/dr/established/ipv4-2     20000   150.0 ns/op   149.0 ns/pkt   0 B/op   0 allocs/op
BenchmarkPipeline/dr/established/ipv4-2     20000   170.0 ns/op   168.0 ns/pkt   0 B/op   0 allocs/op
BenchmarkPipeline/dr/new/ipv4-2             20000   453.4 ns/op   449.8 ns/pkt   0 B/op   0 allocs/op
BenchmarkPipeline/dr/new/ipv4-2             20000   500.0 ns/op   480.0 ns/pkt   0 B/op   0 allocs/op
BenchmarkPipeline/nat/established/ipv4-2    20000   157.1 ns/op   155.9 ns/pkt   0 B/op   0 allocs/op
    bench_test.go:12: BenchmarkPipeline/dr: a log line
PASS
ok  	gvs/pipeline	3.1s
pkg: gvs/lb
BenchmarkMaglevBuild/65537-2   5   3048705 ns/op   1233721 B/op   28 allocs/op
`

func TestParseBench(t *testing.T) {
	res, err := ParseBench(strings.NewReader(benchOut))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 {
		t.Fatalf("%d results: %+v", len(res), res)
	}
	e := res[0]
	if e.Name != "BenchmarkPipeline/dr/established/ipv4" || e.Package != "gvs/pipeline" || e.Runs != 3 || e.Median["ns/pkt"] != 161.1 || e.Median["allocs/op"] != 0 {
		t.Errorf("established: %+v", e)
	}
	if n := res[1]; n.Runs != 2 || n.Median["ns/pkt"] != (449.8+480)/2 {
		t.Errorf("new: %+v", n)
	}
	if m := res[3]; m.Package != "gvs/lb" || m.Median["ns/op"] != 3048705 || m.Median["allocs/op"] != 28 {
		t.Errorf("maglev: %+v", m)
	}
	if _, err := ParseBench(strings.NewReader("BenchmarkX-2 10 abc ns/op\n")); err == nil {
		t.Error("a malformed value parsed")
	}

	var b strings.Builder
	writeHot(&b, res)
	for _, want := range []string{"dr ", "161 (  0)", "a new flow costs 2.9× an established one", "nat packet 0.97× a dr one", "BenchmarkMaglevBuild/65537: "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("hot table lacks %q:\n%s", want, b.String())
		}
	}
}
