package httpbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Bounded waits.
const (
	readyLimit     = 20 * time.Second // a contender's stack answering through the VIP
	nginxLimit     = 10 * time.Second // a backend answering on 127.0.0.1:80
	commandLimit   = 20 * time.Second // nft, ip and other short commands
	buildLimit     = 5 * time.Minute  // go build of gvsd
	wrkExtraLimit  = 30 * time.Second // beyond -d, before wrk is killed
	versionLimit   = 5 * time.Second
	gvsdSocketName = "gvsd.sock"
)

// aptPackage names the Debian package of each external program.
var aptPackage = map[string]string{
	"wrk": "wrk", "nginx": "nginx-light", "nft": "nftables", "haproxy": "haproxy", "ip": "iproute2",
}

// requiredPrograms lists the external programs the options need.
func requiredPrograms(o Options) []string {
	progs := []string{"ip", "wrk", "nginx"}
	if o.needs(Nftables) {
		progs = append(progs, "nft")
	}
	if o.needs(HAProxy) {
		progs = append(progs, "haproxy")
	}
	return progs
}

// MissingPrograms returns an error naming the programs (and their Debian
// packages) the options need but PATH lacks; nil if all are there.
func MissingPrograms(o Options) error {
	if len(o.Contenders) == 0 {
		o.Contenders = DefaultContenders
	}
	var missing []string
	for _, p := range requiredPrograms(o) {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", p, aptPackage[p]))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("httpbench: missing programs: %s", strings.Join(missing, ", "))
	}
	return nil
}

// versions records the programs' versions (first line of their output).
func versions(o Options) map[string]string {
	v := map[string]string{"go": runtime.Version(), "cpus": fmt.Sprint(runtime.NumCPU())}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		v["kernel"] = unix.ByteSliceToString(u.Release[:])
	}
	cmds := map[string][]string{"nginx": {"nginx", "-v"}, "wrk": {"wrk", "-v"}}
	if o.needs(Nftables) {
		cmds["nft"] = []string{"nft", "--version"}
	}
	if o.needs(HAProxy) {
		cmds["haproxy"] = []string{"haproxy", "-v"}
	}
	for k, c := range cmds {
		ctx, cancel := context.WithTimeout(context.Background(), versionLimit)
		out, _ := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput() // wrk -v exits 1
		cancel()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		v[k] = strings.TrimSpace(line)
	}
	return v
}

// buildGvsd builds gvs/cmd/gvsd into dir.
func buildGvsd(ctx context.Context, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, buildLimit)
	defer cancel()
	path := filepath.Join(dir, "gvsd")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", path, "gvs/cmd/gvsd").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build gvs/cmd/gvsd (run from the gvs module or set GvsdPath): %w\n%s", err, tail(string(out), 10))
	}
	return path, nil
}

// bench is one Run in progress.
type bench struct {
	o    Options
	t    *topology
	dir  string // configs, pid files, gvsd
	gvsd string
}

// Run builds the topology, starts the backends and measures every
// contender in both modes, Rounds times, alternating contenders (A B C D A
// B C D …); each contender's stack is set up before its runs and torn down
// after them, every round. A contender that fails to come up is recorded
// in its results and the run goes on; errors of the topology itself, and
// ctx's cancellation, end the run (the namespaces and processes are
// removed in every case). The partial report is returned with the error.
func Run(ctx context.Context, o Options) (*Report, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("httpbench: %w", err)
	}
	if err := MissingPrograms(o); err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now(), Versions: versions(o), Options: reportOptions(o)}
	defer func() { rep.Elapsed = time.Since(rep.Started).Seconds() }()
	for _, c := range o.Contenders {
		for _, m := range Modes {
			rep.Results = append(rep.Results, Result{Contender: c, Mode: m})
		}
	}
	if !o.needs(Direct) {
		rep.Notes = append(rep.Notes, "direct not measured: no ratios")
	}
	if o.Backends > 1 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("direct drives backend 0 only, the load balancers spread over %d backends", o.Backends))
	}

	b := &bench{o: o}
	if b.dir, err = os.MkdirTemp("", "gvshttp-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(b.dir)
	if o.needsGvs() {
		if o.GvsdPath != "" {
			b.gvsd = o.GvsdPath
		} else if b.gvsd, err = buildGvsd(ctx, b.dir); err != nil {
			return nil, err
		}
	}
	if b.t, err = newTopology(o.Backends); err != nil {
		return nil, fmt.Errorf("httpbench: topology: %w", err)
	}
	defer func() {
		if err := b.t.close(); err != nil {
			o.Log.Warn("cleanup", "err", err)
		}
	}()
	if err := b.startBackends(ctx); err != nil {
		return rep, err
	}

	k := 0
	for round := 1; round <= o.Rounds; round++ {
		for _, c := range o.Contenders {
			if err := b.t.useClientSource(k); err != nil {
				return rep, fmt.Errorf("httpbench: %w", err)
			}
			k++
			if err := b.contender(ctx, rep, round, c); err != nil {
				rep.summarize()
				return rep, err
			}
		}
	}
	rep.summarize()
	for _, res := range rep.Results {
		if res.Flagged {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s/%s: a run had more than %.0f%% errors", res.Contender, res.Mode, ErrorThreshold*100))
		}
	}
	return rep, nil
}

// startBackends starts nginx in every backend namespace and waits until
// each answers on 127.0.0.1.
func (b *bench) startBackends(ctx context.Context) error {
	for i, ns := range b.t.be {
		dir := filepath.Join(b.dir, fmt.Sprintf("nginx%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		cfg := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(cfg, []byte(nginxConfig(dir)), 0o644); err != nil {
			return err
		}
		p, err := b.t.start(ns, "nginx", "-e", "stderr", "-p", dir, "-c", cfg)
		if err != nil {
			return err
		}
		alive := func() error {
			if p.exited() {
				return fmt.Errorf("nginx in %s exited: %s", ns.name, p.output())
			}
			return nil
		}
		if err := waitHTTP(ctx, ns, fmt.Sprintf("127.0.0.1:%d", VIPPort), nginxLimit, alive); err != nil {
			return fmt.Errorf("httpbench: backend %d: %w", i, err)
		}
	}
	return nil
}

// stack is a contender set up: the address wrk targets and how to undo it.
type stack struct {
	target   string // host:port
	proc     *proc  // the contender's daemon, if any
	teardown []func() error
}

// alive reports the daemon's early exit.
func (s *stack) alive() error {
	if s.proc != nil && s.proc.exited() {
		return fmt.Errorf("%s exited: %v: %s", s.proc.name, s.proc.err, s.proc.output())
	}
	return nil
}

// undo runs the teardown steps in reverse order.
func (s *stack) undo() error {
	var errs []error
	for i := len(s.teardown) - 1; i >= 0; i-- {
		if err := s.teardown[i](); err != nil {
			errs = append(errs, err)
		}
	}
	s.teardown = nil
	return errors.Join(errs...)
}

func (s *stack) then(f func() error) { s.teardown = append(s.teardown, f) }

// contender sets up c, measures both modes and tears it down. It returns
// an error only for ctx's end or a broken topology.
func (b *bench) contender(ctx context.Context, rep *Report, round int, c string) error {
	o := b.o
	fail := func(err error) {
		o.Log.Warn("contender failed", "contender", c, "round", round, "err", err)
		for _, m := range Modes {
			res := rep.find(c, m)
			res.Samples = append(res.Samples, Sample{Round: round, Error: err.Error()})
		}
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "round %d/%d %-9s failed: %v\n", round, o.Rounds, c, err)
		}
	}
	st := &stack{}
	err := b.setup(ctx, c, st)
	if err != nil {
		if uerr := st.undo(); uerr != nil {
			return fmt.Errorf("httpbench: %s: undo after a failed setup: %w", c, uerr)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fail(err)
		return nil
	}
	for _, m := range Modes {
		s := b.measure(ctx, round, m, st.target)
		res := rep.find(c, m)
		res.Samples = append(res.Samples, s)
		if ctx.Err() != nil {
			st.undo()
			return ctx.Err()
		}
		if o.Progress != nil {
			if s.Error != "" {
				fmt.Fprintf(o.Progress, "round %d/%d %-9s %-9s failed: %s\n", round, o.Rounds, c, m, s.Error)
			} else {
				flag := ""
				if s.Flagged {
					flag = fmt.Sprintf("  (%.1f%% errors)", s.ErrorRatio*100)
				}
				fmt.Fprintf(o.Progress, "round %d/%d %-9s %-9s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms%s\n",
					round, o.Rounds, c, m, s.RequestsPerSec, s.P50ms, s.P99ms, flag)
			}
		}
	}
	err = st.undo()
	if st.proc != nil {
		o.Log.Info("contender output", "contender", c, "round", round, "output", st.proc.output())
	}
	if err != nil {
		// The measurements of a daemon that died during them are void.
		o.Log.Warn("teardown", "contender", c, "round", round, "err", err)
		for _, m := range Modes {
			res := rep.find(c, m)
			if s := &res.Samples[len(res.Samples)-1]; s.Error == "" {
				s.Error = "teardown: " + err.Error()
			}
		}
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "round %d/%d %-9s teardown failed: %v\n", round, o.Rounds, c, err)
		}
	}
	return ctx.Err()
}

// measure runs the optional warm-up and the measured wrk run of one mode.
func (b *bench) measure(ctx context.Context, round int, mode, target string) Sample {
	o := b.o
	url := "http://" + target + "/"
	newConn := mode == NewConn
	s := Sample{Round: round}
	if o.Warmup > 0 {
		if _, err := run(ctx, b.t.cl, o.Warmup+wrkExtraLimit, "wrk", wrkArgs(o.Threads, o.Connections, o.Warmup, newConn, url)...); err != nil {
			s.Error = "warm-up: " + err.Error()
			return s
		}
	}
	args := wrkArgs(o.Threads, o.Connections, o.Duration, newConn, url)
	o.Log.Debug("wrk", "args", args)
	out, err := run(ctx, b.t.cl, o.Duration+wrkExtraLimit, "wrk", args...)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	w, err := ParseWrk(out)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.WrkOutput = w
	s.ErrorRatio = w.ErrorRatio()
	s.Flagged = s.ErrorRatio > ErrorThreshold
	return s
}

// setup brings contender c up; st collects the teardown steps even when
// setup fails half-way.
func (b *bench) setup(ctx context.Context, c string, st *stack) error {
	t := b.t
	vip := fmt.Sprintf("%s:%d", VIP, VIPPort)
	var backends []string
	for i := range t.be {
		backends = append(backends, BackendAddr(i))
	}
	switch c {
	case Direct:
		if err := t.backendRoutes(RouterAddr); err != nil {
			return err
		}
		st.target = fmt.Sprintf("%s:%d", BackendAddr(0), VIPPort)

	case Nftables:
		// Replies must pass the lb's conntrack to be un-DNATed.
		st.then(func() error { return t.backendRoutes(RouterAddr) })
		if err := t.backendRoutes(LBAddr); err != nil {
			return err
		}
		st.then(func() error { return t.lb.sysctl("net.ipv4.ip_forward", "0") })
		if err := t.lb.sysctl("net.ipv4.ip_forward", "1"); err != nil {
			return err
		}
		file := filepath.Join(b.dir, "nft.rules")
		if err := os.WriteFile(file, []byte(nftRuleset(VIP, VIPPort, backends)), 0o644); err != nil {
			return err
		}
		st.then(func() error {
			_, err := run(context.Background(), t.lb, commandLimit, "nft", "delete", "table", "ip", nftTable)
			return err
		})
		if _, err := run(ctx, t.lb, commandLimit, "nft", "-f", file); err != nil {
			return err
		}
		st.target = vip

	case HAProxy:
		if err := t.backendRoutes(RouterAddr); err != nil {
			return err
		}
		st.then(func() error { return t.lb.delAddr("lo", VIP+"/32") })
		if err := t.lb.addr("lo", VIP+"/32"); err != nil {
			return err
		}
		file := filepath.Join(b.dir, "haproxy.cfg")
		if err := os.WriteFile(file, []byte(haproxyConfig(VIP, VIPPort, backends, b.o.HAProxyThreads)), 0o644); err != nil {
			return err
		}
		p, err := t.start(t.lb, "haproxy", "-db", "-f", file)
		if err != nil {
			return err
		}
		st.then(stopper(p))
		st.proc = p
		st.target = vip

	case Gvs, GvsNAT:
		method := "dr"
		if c == GvsNAT {
			method = "nat"
			st.then(func() error { return t.backendRoutes(RouterAddr) })
			if err := t.backendRoutes(LBAddr); err != nil {
				return err
			}
		} else {
			if err := t.backendRoutes(RouterAddr); err != nil {
				return err
			}
			// L2 DSR reals: the VIP on lo, and neither answer ARP for it
			// nor use it as ARP sender.
			for _, ns := range t.be {
				st.then(func() error { return ns.delAddr("lo", VIP+"/32") })
				if err := ns.addr("lo", VIP+"/32"); err != nil {
					return err
				}
				for _, k := range []string{"all", "eth0"} {
					for _, kv := range [][2]string{{"arp_ignore", "1"}, {"arp_announce", "2"}} {
						key := "net.ipv4.conf." + k + "." + kv[0]
						st.then(func() error { return ns.sysctl(key, "0") })
						if err := ns.sysctl(key, kv[1]); err != nil {
							return err
						}
					}
				}
			}
		}
		// gvs transmits copy-mode skbs, which a veth peer takes without
		// XDP or GRO (driver/afxdp); GRO on the peer anyway, so that any
		// XDP_TX/redirect path is not dropped (ENVIRONMENT.md).
		was, err := t.sw.setGRO("p-lb", true)
		if err != nil {
			return err
		}
		st.then(func() error { _, err := t.sw.setGRO("p-lb", was); return err })
		file := filepath.Join(b.dir, "gvsd.toml")
		if err := os.WriteFile(file, []byte(gvsdConfig(VIP, VIPPort, method, backends, b.o.GvsWorkers)), 0o644); err != nil {
			return err
		}
		sock := filepath.Join(b.dir, gvsdSocketName)
		p, err := t.start(t.lb, b.gvsd, "--config", file, "--socket", sock, "--log-level", "warn")
		if err != nil {
			return err
		}
		st.then(stopper(p))
		st.proc = p
		st.target = vip

	default:
		return fmt.Errorf("unknown contender %q", c)
	}
	if err := waitHTTP(ctx, t.cl, st.target, readyLimit, st.alive); err != nil {
		if st.proc != nil {
			return fmt.Errorf("%s not ready: %w; its output: %s", c, err, st.proc.output())
		}
		return fmt.Errorf("%s not ready: %w", c, err)
	}
	return nil
}

// stopper stops p; an early exit is an error (the contender died during
// its runs).
func stopper(p *proc) func() error {
	return func() error {
		err := p.stop()
		if errors.Is(err, errExited) {
			return fmt.Errorf("%s exited during the runs: %v: %s", p.name, p.err, p.output())
		}
		return err
	}
}
