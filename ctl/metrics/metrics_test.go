package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"gvs/ctl/api"
	"gvs/pipeline"
)

// fakeSource returns whatever was last set; set replaces a whole snapshot,
// so a reader never sees a half-written one.
type fakeSource struct {
	mu     sync.Mutex
	stats  api.Stats
	health []api.HealthStatus
	vrrp   []api.VRRPStatus
	bgp    api.BGPStatus
}

func (f *fakeSource) BGP() api.BGPStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bgp
}

func (f *fakeSource) Stats() api.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *fakeSource) Health() []api.HealthStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

func (f *fakeSource) VRRP() []api.VRRPStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vrrp
}

func (f *fakeSource) set(st api.Stats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats = st
}

// versioned adds a Versioner to a source.
type versioned struct{ *fakeSource }

func (versioned) VersionInfo() api.VersionInfo {
	return api.VersionInfo{Version: "1.2.3", Protocol: api.Version, Go: "go1.99"}
}

func fixture() *fakeSource {
	return &fakeSource{
		bgp: api.BGPStatus{Enabled: true, LocalAS: 65010, RouterID: "198.18.0.1", Drained: true,
			Sessions: []api.BGPSession{{Neighbor: "198.18.0.254", AS: 65000, State: "established", Ups: 2}},
			Prefixes: []api.BGPPrefix{{Prefix: "198.18.1.10/32", Announced: true, Transitions: 3}}},
		stats: api.Stats{
			IntervalSec: 2,
			Services: []api.ServiceStats{
				{
					ServiceID: api.ServiceID{Proto: "tcp", VIP: "10.0.0.1", Port: 80},
					Scheduler: "wrr", Method: "nat",
					Counters: api.Counters{Conns: 30, InPkts: 300, OutPkts: 200, InBytes: 30000, OutBytes: 20000, CPS: 2.5},
					Reals: []api.RealStats{
						{
							Addr: "192.168.1.10", Port: 8080, Method: "nat", Weight: 10, State: "up",
							ActiveConns: 5, InactiveConns: 2,
							Counters: api.Counters{Conns: 20, InPkts: 200, OutPkts: 150, InBytes: 20000, OutBytes: 15000, CPS: 1.5},
						},
						{
							Addr: "192.168.1.11", Port: 8080, Method: "nat", Weight: 0, State: "drain",
							ActiveConns: 1,
							Counters:    api.Counters{Conns: 10, InPkts: 100, OutPkts: 50, InBytes: 10000, OutBytes: 5000, CPS: 1},
						},
					},
				},
				{
					ServiceID: api.ServiceID{Proto: "udp", VIP: "2001:db8::1", Port: 53},
					Scheduler: "mh", Method: "dr",
					Counters: api.Counters{Conns: 7, InPkts: 70, InBytes: 7000},
					Reals: []api.RealStats{
						{
							Addr: "2001:db8::53", Port: 53, Method: "dr", Weight: 1, State: "removed",
							InactiveConns: 3,
							Counters:      api.Counters{Conns: 7, InPkts: 70, InBytes: 7000},
						},
					},
				},
			},
			Workers: []api.WorkerStats{
				{
					Worker: 0,
					Counters: map[string]uint64{
						"rx_packets": 1000, "rx_bytes": 100000, "tx_packets": 900, "tx_bytes": 90000,
						"sessions_new": 37, "session_hits": 800, "sessions_live": 12,
						"handover_in": 5, "handover_drops": 3, "tx_ring_drops": 4,
					},
					Drops:         map[string]uint64{"no_real": 6, "truncated": 1},
					Sessions:      12,
					IdleRatio:     0.25,
					HandoverDepth: 7,
				},
				{
					Worker:    1,
					Counters:  map[string]uint64{"rx_packets": 10, "rx_bytes": 1000, "tx_packets": 9, "tx_bytes": 900},
					Drops:     map[string]uint64{"future_reason": 2},
					IdleRatio: 0.99,
				},
			},
			Ports: []api.PortStats{
				{Name: "eth0", Driver: "afxdp", RxPackets: 5000, RxBytes: 500000, TxPackets: 4000, TxBytes: 400000, RxDropped: 11, TxDropped: 12},
				{Name: "eth1", Driver: "afpacket", RxPackets: 1, RxBytes: 64, TxPackets: 2, TxBytes: 128},
			},
		},
		health: []api.HealthStatus{
			{
				Service: api.ServiceID{Proto: "tcp", VIP: "10.0.0.1", Port: 80}, Real: "192.168.1.10:8080",
				Up: true, Since: "2025-01-02T03:04:05Z", LastResult: "ok", LatencyMS: 12.5,
			},
			{
				// Written unbracketed-style sources would not parse; this one does
				// and must come out as gvs_real_* writes it.
				Service: api.ServiceID{Proto: "udp", VIP: "2001:db8::1", Port: 53}, Real: "[2001:db8:0::53]:53",
				Up: false, LastResult: "timeout", Reason: "no answer",
			},
		},
		vrrp: []api.VRRPStatus{
			{Name: "vi1", State: "MASTER", Priority: 150, Master: "10.0.0.2"},
			{Name: "vi2", State: "backup", Priority: 100},
			{Name: "vi3", State: "stopped", Priority: 1},
		},
	}
}

// scrape GETs url and parses the text exposition.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := tryScrape(url)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func tryScrape(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse exposition: %w", err)
	}
	return fams, nil
}

// key writes a label set canonically: name=value pairs sorted by name.
func key(kv ...string) string {
	var pairs []string
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, kv[i]+"="+kv[i+1])
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

// metricKey is key of a metric's labels, less those named in drop.
func metricKey(m *dto.Metric, drop ...string) string {
	var kv []string
	for _, lp := range m.GetLabel() {
		if !slices.Contains(drop, lp.GetName()) {
			kv = append(kv, lp.GetName(), lp.GetValue())
		}
	}
	return key(kv...)
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return -1
}

// series returns a family's series by canonical label set.
func series(t testing.TB, fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Errorf("family %s missing", name)
	}
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		k := metricKey(m)
		if _, dup := out[k]; dup {
			t.Errorf("%s{%s} exposed twice", name, k)
		}
		out[k] = value(m)
	}
	return out
}

// family checks a family's type and help and that its series are exactly want.
func family(t *testing.T, fams map[string]*dto.MetricFamily, name string, typ dto.MetricType, want map[string]float64) {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Errorf("family %s missing", name)
		return
	}
	if f.GetType() != typ {
		t.Errorf("%s: type %v, want %v", name, f.GetType(), typ)
	}
	if len(f.GetHelp()) < 10 {
		t.Errorf("%s: help %q too short", name, f.GetHelp())
	}
	got := series(t, fams, name)
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s{%s} missing", name, k)
		case g != v:
			t.Errorf("%s{%s} = %v, want %v", name, k, g, v)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s{%s} = %v not expected", name, k, g)
		}
	}
}

const (
	counter = dto.MetricType_COUNTER
	gauge   = dto.MetricType_GAUGE
)

func svcKey(proto, vip, port string, kv ...string) string {
	return key(append([]string{"proto", proto, "vip", vip, "port", port}, kv...)...)
}

func TestScrapeValues(t *testing.T) {
	src := fixture()
	srv := httptest.NewServer(Handler(versioned{src}))
	defer srv.Close()
	fams := scrape(t, srv.URL)

	family(t, fams, "gvs_build_info", gauge, map[string]float64{key("version", "1.2.3", "go", "go1.99"): 1})
	family(t, fams, "gvs_stats_interval_seconds", gauge, map[string]float64{"": 2})

	a := func(kv ...string) string { return svcKey("tcp", "10.0.0.1", "80", kv...) }
	b := func(kv ...string) string { return svcKey("udp", "2001:db8::1", "53", kv...) }
	family(t, fams, "gvs_service_info", gauge, map[string]float64{
		a("scheduler", "wrr", "method", "nat"): 1, b("scheduler", "mh", "method", "dr"): 1,
	})
	family(t, fams, "gvs_service_connections_total", counter, map[string]float64{a(): 30, b(): 7})
	family(t, fams, "gvs_service_packets_total", counter, map[string]float64{
		a("direction", "in"): 300, a("direction", "out"): 200, b("direction", "in"): 70, b("direction", "out"): 0,
	})
	family(t, fams, "gvs_service_bytes_total", counter, map[string]float64{
		a("direction", "in"): 30000, a("direction", "out"): 20000, b("direction", "in"): 7000, b("direction", "out"): 0,
	})
	family(t, fams, "gvs_service_new_sessions_per_second", gauge, map[string]float64{a(): 2.5, b(): 0})
	family(t, fams, "gvs_service_active_sessions", gauge, map[string]float64{a(): 6, b(): 0})
	family(t, fams, "gvs_service_inactive_sessions", gauge, map[string]float64{a(): 2, b(): 3})

	r10 := func(kv ...string) string { return a(append([]string{"real", "192.168.1.10:8080"}, kv...)...) }
	r11 := func(kv ...string) string { return a(append([]string{"real", "192.168.1.11:8080"}, kv...)...) }
	r6 := func(kv ...string) string { return b(append([]string{"real", "[2001:db8::53]:53"}, kv...)...) }
	family(t, fams, "gvs_real_connections_total", counter, map[string]float64{r10(): 20, r11(): 10, r6(): 7})
	family(t, fams, "gvs_real_packets_total", counter, map[string]float64{
		r10("direction", "in"): 200, r10("direction", "out"): 150,
		r11("direction", "in"): 100, r11("direction", "out"): 50,
		r6("direction", "in"): 70, r6("direction", "out"): 0,
	})
	family(t, fams, "gvs_real_bytes_total", counter, map[string]float64{
		r10("direction", "in"): 20000, r10("direction", "out"): 15000,
		r11("direction", "in"): 10000, r11("direction", "out"): 5000,
		r6("direction", "in"): 7000, r6("direction", "out"): 0,
	})
	family(t, fams, "gvs_real_new_sessions_per_second", gauge, map[string]float64{r10(): 1.5, r11(): 1, r6(): 0})
	family(t, fams, "gvs_real_active_sessions", gauge, map[string]float64{r10(): 5, r11(): 1, r6(): 0})
	family(t, fams, "gvs_real_inactive_sessions", gauge, map[string]float64{r10(): 2, r11(): 0, r6(): 3})
	family(t, fams, "gvs_real_weight", gauge, map[string]float64{r10(): 10, r11(): 0, r6(): 1})
	family(t, fams, "gvs_real_up", gauge, map[string]float64{r10(): 1, r11(): 0, r6(): 0})
	states := map[string]float64{}
	for r, cur := range map[string]string{"192.168.1.10:8080": "up", "192.168.1.11:8080": "drain"} {
		for _, s := range []string{"up", "drain", "down", "removed"} {
			states[a("real", r, "state", s)] = b2f(s == cur)
		}
	}
	for _, s := range []string{"up", "drain", "down", "removed"} {
		states[r6("state", s)] = b2f(s == "removed")
	}
	family(t, fams, "gvs_real_state", gauge, states)

	w := func(id string, kv ...string) string { return key(append([]string{"worker", id}, kv...)...) }
	family(t, fams, "gvs_worker_packets_total", counter, map[string]float64{
		w("0", "direction", "rx"): 1000, w("0", "direction", "tx"): 900,
		w("1", "direction", "rx"): 10, w("1", "direction", "tx"): 9,
	})
	family(t, fams, "gvs_worker_bytes_total", counter, map[string]float64{
		w("0", "direction", "rx"): 100000, w("0", "direction", "tx"): 90000,
		w("1", "direction", "rx"): 1000, w("1", "direction", "tx"): 900,
	})
	drops := map[string]float64{}
	for _, id := range []string{"0", "1"} {
		for r := pipeline.DropReason(0); int(r) < pipeline.NumDropReasons; r++ {
			drops[w(id, "reason", r.String())] = 0
		}
		drops[w(id, "reason", "handover_ring_full")] = 0
		drops[w(id, "reason", "tx_ring_full")] = 0
	}
	drops[w("0", "reason", "no_real")] = 6
	drops[w("0", "reason", "truncated")] = 1
	drops[w("0", "reason", "handover_ring_full")] = 3
	drops[w("0", "reason", "tx_ring_full")] = 4
	drops[w("1", "reason", "future_reason")] = 2
	family(t, fams, "gvs_worker_drops_total", counter, drops)
	family(t, fams, "gvs_worker_events_total", counter, map[string]float64{
		w("0", "event", "sessions_new"): 37, w("0", "event", "session_hits"): 800, w("0", "event", "handover_in"): 5,
	})
	family(t, fams, "gvs_worker_sessions", gauge, map[string]float64{w("0"): 12, w("1"): 0})
	family(t, fams, "gvs_worker_idle_ratio", gauge, map[string]float64{w("0"): 0.25, w("1"): 0.99})
	family(t, fams, "gvs_worker_handover_ring_depth", gauge, map[string]float64{w("0"): 7, w("1"): 0})

	p0 := func(dir string) string { return key("port", "eth0", "driver", "afxdp", "direction", dir) }
	p1 := func(dir string) string { return key("port", "eth1", "driver", "afpacket", "direction", dir) }
	family(t, fams, "gvs_port_packets_total", counter, map[string]float64{p0("rx"): 5000, p0("tx"): 4000, p1("rx"): 1, p1("tx"): 2})
	family(t, fams, "gvs_port_bytes_total", counter, map[string]float64{p0("rx"): 500000, p0("tx"): 400000, p1("rx"): 64, p1("tx"): 128})
	family(t, fams, "gvs_port_dropped_total", counter, map[string]float64{p0("rx"): 11, p0("tx"): 12, p1("rx"): 0, p1("tx"): 0})

	family(t, fams, "gvs_health_up", gauge, map[string]float64{r10(): 1, r6(): 0})
	family(t, fams, "gvs_health_latency_seconds", gauge, map[string]float64{r10(): 0.0125, r6(): 0})
	since := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	family(t, fams, "gvs_health_last_change_timestamp_seconds", gauge, map[string]float64{r10(): float64(since.Unix())})

	vrrp := map[string]float64{}
	for inst, cur := range map[string]string{"vi1": "master", "vi2": "backup", "vi3": "stopped"} {
		for _, s := range []string{"init", "backup", "master", "fault"} {
			vrrp[key("instance", inst, "state", s)] = b2f(s == cur)
		}
	}
	vrrp[key("instance", "vi3", "state", "stopped")] = 1
	family(t, fams, "gvs_vrrp_state", gauge, vrrp)
	family(t, fams, "gvs_vrrp_priority", gauge, map[string]float64{
		key("instance", "vi1"): 150, key("instance", "vi2"): 100, key("instance", "vi3"): 1,
	})

	family(t, fams, "gvs_bgp_session_up", gauge, map[string]float64{key("neighbor", "198.18.0.254", "as", "65000"): 1})
	family(t, fams, "gvs_bgp_session_established_total", counter, map[string]float64{key("neighbor", "198.18.0.254", "as", "65000"): 2})
	family(t, fams, "gvs_bgp_announced", gauge, map[string]float64{key("prefix", "198.18.1.10/32"): 1})
	family(t, fams, "gvs_bgp_announcement_changes_total", counter, map[string]float64{key("prefix", "198.18.1.10/32"): 3})
	family(t, fams, "gvs_bgp_drained", gauge, map[string]float64{"": 1})

	// Every described family was exposed (the fixture has them all), and
	// the runtime collectors and the handler's own are there too.
	for _, d := range descs {
		name := descName(d)
		if _, ok := fams[name]; !ok {
			t.Errorf("described family %s not exposed", name)
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "promhttp_metric_handler_requests_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("family %s missing", name)
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, "gvs_") && !describedName(name) {
			t.Errorf("family %s exposed but not described", name)
		}
	}
}

func descName(d fmt.Stringer) string {
	s := d.String() // Desc{fqName: "gvs_...", help: ...}
	s = s[strings.Index(s, `"`)+1:]
	return s[:strings.Index(s, `"`)]
}

func describedName(name string) bool {
	for _, d := range descs {
		if descName(d) == name {
			return true
		}
	}
	return false
}

// An empty daemon (no services, no health checks, no VRRP) still answers,
// with the build info and the interval.
func TestScrapeEmpty(t *testing.T) {
	srv := httptest.NewServer(Handler(&fakeSource{}))
	defer srv.Close()
	fams := scrape(t, srv.URL)
	bi := fams["gvs_build_info"].GetMetric()
	if len(bi) != 1 {
		t.Fatalf("gvs_build_info: %v", bi)
	}
	labels := map[string]string{}
	for _, lp := range bi[0].GetLabel() {
		labels[lp.GetName()] = lp.GetValue()
	}
	if value(bi[0]) != 1 || labels["go"] != runtime.Version() || labels["version"] == "" || len(labels) != 2 {
		t.Errorf("gvs_build_info%v = %v", labels, value(bi[0]))
	}
	for name := range fams {
		if strings.HasPrefix(name, "gvs_") && name != "gvs_build_info" && name != "gvs_stats_interval_seconds" {
			t.Errorf("unexpected family %s", name)
		}
	}
}

// The names, types and help strings follow Prometheus's conventions.
func TestLint(t *testing.T) {
	problems, err := testutil.CollectAndLint(NewCollector(versioned{fixture()}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// mutate returns a snapshot whose totals are consistent (service = sum of
// its reals) and whose shape changes with n.
func mutate(n int) api.Stats {
	st := api.Stats{IntervalSec: 2}
	for s := 0; s < 1+n%3; s++ {
		ss := api.ServiceStats{ServiceID: api.ServiceID{Proto: "tcp", VIP: fmt.Sprintf("10.0.0.%d", s+1), Port: 80}, Scheduler: "rr", Method: "dr"}
		for r := 0; r < 1+(n+s)%4; r++ {
			rs := api.RealStats{Addr: fmt.Sprintf("192.168.%d.%d", s, r), Port: 80, Weight: 1, State: "up",
				Counters: api.Counters{Conns: uint64(n * (r + 1)), InPkts: uint64(n * 10)}}
			ss.Reals = append(ss.Reals, rs)
			ss.Conns += rs.Conns
			ss.InPkts += rs.InPkts
		}
		st.Services = append(st.Services, ss)
	}
	for w := 0; w < 2; w++ {
		st.Workers = append(st.Workers, api.WorkerStats{Worker: w,
			Counters: map[string]uint64{"rx_packets": uint64(n), "sessions_new": uint64(n)}, Drops: map[string]uint64{"no_real": uint64(n)}})
	}
	return st
}

// Scrapes while the source changes under them: every scrape sees one
// snapshot (a service's connections are the sum of its reals'), nothing
// races (run with -race), and counters never go back.
func TestConcurrentScrapes(t *testing.T) {
	src := &fakeSource{}
	src.set(mutate(0))
	srv := httptest.NewServer(Handler(src))
	defer srv.Close()

	stop := make(chan struct{})
	var writer sync.WaitGroup
	writer.Go(func() {
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			src.set(mutate(n))
			runtime.Gosched()
		}
	})
	var scrapers sync.WaitGroup
	var scrapes atomic.Int64
	for range 4 {
		scrapers.Go(func() {
			last := -1.0
			for range 25 {
				fams, err := tryScrape(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				scrapes.Add(1)
				svc := series(t, fams, "gvs_service_connections_total")
				sums := map[string]float64{} // the reals', by service
				for _, m := range fams["gvs_real_connections_total"].GetMetric() {
					sums[metricKey(m, "real")] += value(m)
				}
				if len(sums) != len(svc) {
					t.Errorf("%d services, reals of %d: not one snapshot", len(svc), len(sums))
				}
				for k, v := range svc {
					if sums[k] != v {
						t.Errorf("service {%s}: %v connections, its reals %v: not one snapshot", k, v, sums[k])
					}
				}
				rx := series(t, fams, "gvs_worker_packets_total")[key("worker", "0", "direction", "rx")]
				if rx < last {
					t.Errorf("worker rx went back from %v to %v", last, rx)
				}
				last = rx
			}
		})
	}
	scrapers.Wait()
	close(stop)
	writer.Wait()
	if scrapes.Load() != 100 {
		t.Errorf("%d scrapes, want 100", scrapes.Load())
	}
}

// captureHandler is a slog.Handler that hands records to a channel.
type captureHandler struct{ ch chan slog.Record }

func (h captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h captureHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.ch <- r.Clone():
	default:
	}
	return nil
}
func (h captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h captureHandler) WithGroup(string) slog.Handler      { return h }

// startServe runs Serve on a free port and returns its address and the
// channel that delivers its result.
func startServe(t *testing.T, ctx context.Context, src Source) (string, <-chan error) {
	t.Helper()
	h := captureHandler{make(chan slog.Record, 64)}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, "127.0.0.1:0", src, slog.New(h)) }()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-h.ch:
			if r.Message != "metrics: serving" {
				continue
			}
			var addr string
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "addr" {
					addr = a.Value.String()
				}
				return true
			})
			return addr, done
		case err := <-done:
			t.Fatalf("Serve returned early: %v", err)
		case <-timeout:
			t.Fatal("Serve did not log its address")
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, done := startServe(t, ctx, fixture())

	fams := scrape(t, "http://"+addr+"/metrics")
	if got := series(t, fams, "gvs_service_connections_total")[svcKey("tcp", "10.0.0.1", "80")]; got != 30 {
		t.Errorf("gvs_service_connections_total = %v, want 30", got)
	}
	if code, body := get(t, "http://"+addr+"/"); code != 200 || !strings.Contains(body, `href="/metrics"`) {
		t.Errorf("GET /: %d %q", code, body)
	}
	if code, _ := get(t, "http://"+addr+"/nothing"); code != 404 {
		t.Errorf("GET /nothing: %d, want 404", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop on cancel")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("still listening after Serve returned")
	}
}

// blockingSource holds Stats until released, to have a scrape in flight.
type blockingSource struct {
	*fakeSource
	entered chan struct{}
	release chan struct{}
}

func (b blockingSource) Stats() api.Stats {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeSource.Stats()
}

// A scrape in flight when ctx is cancelled completes before Serve returns.
func TestServeGracefulShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := blockingSource{fixture(), make(chan struct{}, 1), make(chan struct{})}
	addr, done := startServe(t, ctx, src)

	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(b), err}
	}()
	<-src.entered
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Serve returned with a scrape in flight: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(src.release)
	r := <-res
	if r.err != nil || r.code != 200 || !strings.Contains(r.body, "gvs_real_connections_total") {
		t.Fatalf("in-flight scrape: %d %v %.200q", r.code, r.err, r.body)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop")
	}
}

// Listen errors come back at once, without waiting for ctx.
func TestServeListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, addr := range []string{ln.Addr().String(), "127.0.0.1:notaport"} {
		done := make(chan error, 1)
		go func() { done <- Serve(context.Background(), addr, fixture(), nil) }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("Serve(%s): no error", addr)
			}
			var opErr *net.OpError
			if !errors.As(err, &opErr) && !strings.Contains(err.Error(), "port") {
				t.Errorf("Serve(%s): %v, want the listen error", addr, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Serve(%s) did not return the listen error", addr)
		}
	}
}
