package suite

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

// HotResult is one hot-path microbenchmark (go test -bench) over its
// -count runs: the median of each metric ("ns/pkt", "allocs/op", …).
type HotResult struct {
	Package string             `json:"package"`
	Name    string             `json:"name"` // without the -GOMAXPROCS suffix
	Runs    int                `json:"runs"`
	Median  map[string]float64 `json:"median"`
}

// HotBench is one go test -bench invocation of the hot-path set.
type HotBench struct {
	Package, Pattern, Benchtime string
}

// HotBenches are the microbenchmarks summarised in the report: the
// pipeline per forwarding method (mem driver replay, 131 072 flows, one
// worker), the session table and the Maglev table build.
var HotBenches = []HotBench{
	{"./pipeline", "^BenchmarkPipeline$", "20000x"},
	{"./lb", "^BenchmarkMaglevBuild$", "5x"},
}

// RunHot runs the hot-path benchmarks with go test (count runs each) in
// the module rooted at dir and returns the medians.
func RunHot(ctx context.Context, dir string, count int, progress io.Writer) ([]HotResult, error) {
	var out []HotResult
	for _, hb := range HotBenches {
		args := []string{"test", "-run", "^$", "-bench", hb.Pattern, "-benchmem", "-benchtime", hb.Benchtime, "-count", strconv.Itoa(count), hb.Package}
		fmt.Fprintf(progress, "hot path: go %s\n", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		if err != nil {
			return out, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, tailLines(string(b), 20))
		}
		res, err := ParseBench(strings.NewReader(string(b)))
		if err != nil {
			return out, err
		}
		out = append(out, res...)
	}
	return out, nil
}

// ParseBench reads go test -bench output and returns one result per
// benchmark name (in first-seen order) with the median of every metric
// over its runs.
func ParseBench(r io.Reader) ([]HotResult, error) {
	type acc struct {
		pkg  string
		runs int
		vals map[string][]float64
	}
	var order []string
	by := map[string]*acc{}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // a log line that starts with a benchmark's name
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		a := by[name]
		if a == nil {
			a = &acc{pkg: pkg, vals: map[string][]float64{}}
			by[name] = a
			order = append(order, name)
		}
		a.runs++
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: value %q: %v", line, f[i], err)
			}
			a.vals[f[i+1]] = append(a.vals[f[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make([]HotResult, 0, len(order))
	for _, n := range order {
		a := by[n]
		m := map[string]float64{}
		for k, vs := range a.vals {
			m[k] = median(vs)
		}
		out = append(out, HotResult{Package: a.pkg, Name: n, Runs: a.runs, Median: m})
	}
	return out, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
