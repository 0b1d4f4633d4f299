package vethbench

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"

	"gvs/driver"
	"gvs/driver/afpacket"
	"gvs/driver/afxdp"
	"gvs/lb"
	"gvs/pipeline"
	"gvs/pmd"
)

// DUT names, in the order they run.
const (
	DUTXDPTX     = "xdp-tx"
	DUTReflector = "afxdp-reflector"
	DUTGvsAFXDP  = "gvs-afxdp"
	DUTGvsAFPkt  = "gvs-afpacket"
	DUTGvsDPDK   = "gvs-dpdk" // only in a build with the dpdk tag
	DUTNftNumgen = "nft-numgen"
	DUTNftJhash  = "nft-jhash"
)

// DUTNames lists every DUT of this build in run order.
var DUTNames = func() []string {
	n := []string{DUTXDPTX, DUTReflector, DUTGvsAFXDP, DUTGvsAFPkt}
	if newDPDKDUT != nil {
		n = append(n, DUTGvsDPDK)
	}
	return append(n, DUTNftNumgen, DUTNftJhash)
}()

// newDPDKDUT builds the gvs-dpdk DUT: from dut_dpdk.go in a build with
// the dpdk tag, nil otherwise (dut_nodpdk.go).
var newDPDKDUT = dpdkDUT()

// dutDescriptions say what each DUT is, for the report.
var dutDescriptions = map[string]string{
	DUTXDPTX:     "bare XDP program: swap MACs, XDP_TX (the kernel path's ceiling)",
	DUTReflector: "bare Go AF_XDP reflector on driver/afxdp: receive burst, swap MACs, transmit burst",
	DUTGvsAFXDP:  "gvs: lb.Balancer (1 DR service, 2 reals) + pmd (1 worker) over driver/afxdp",
	DUTGvsAFPkt:  "gvs: lb.Balancer (1 DR service, 2 reals) + pmd (1 worker) over driver/afpacket",
	DUTGvsDPDK:   "gvs: lb.Balancer (1 DR service, 2 reals) + pmd (1 worker) over driver/dpdk, net_af_packet on the DUT veth",
	DUTNftNumgen: "kernel as the LB: nftables DNAT to numgen inc mod 2 (conntrack, forwarding), RPS to the DUT CPU",
	DUTNftJhash:  "kernel as the LB: nftables DNAT to jhash ip saddr . udp sport mod 2 (conntrack, forwarding), RPS to the DUT CPU",
}

// DUT is a device under test running in the topology's DUT namespace: it
// receives the generator's frames on the DUT veth and sends them back.
type DUT interface {
	Name() string
	// Start sets the DUT up and starts forwarding; a worker thread, if
	// any, is pinned to cpu (-1: not pinned).
	Start(t *Topology, cpu int) error
	// Stop stops forwarding and releases everything Start set up.
	Stop() error
	// Detail summarises the DUT's own counters and mode after Stop.
	Detail() string
}

// NewDUT returns the DUT with the given name. flows sizes gvs's session
// table.
func NewDUT(name string, flows int, log *slog.Logger) (DUT, error) {
	switch name {
	case DUTXDPTX:
		return &xdpTXDUT{}, nil
	case DUTReflector:
		return &reflectorDUT{log: log}, nil
	case DUTGvsAFXDP, DUTGvsAFPkt:
		return &gvsDUT{name: name, flows: flows, log: log}, nil
	case DUTGvsDPDK:
		if newDPDKDUT != nil {
			return newDPDKDUT(flows, log), nil
		}
		return nil, fmt.Errorf("DUT %s needs a build with the dpdk tag (go run -tags dpdk ./cmd/gvs-bench; libdpdk-dev)", name)
	case DUTNftNumgen, DUTNftJhash:
		return &nftDUT{name: name}, nil
	}
	return nil, fmt.Errorf("unknown DUT %q (want one of %s)", name, strings.Join(DUTNames, ", "))
}

// ParseOnly turns a comma-separated --only value into DUT names in run
// order ("" or "all": every DUT).
func ParseOnly(s string) ([]string, error) {
	if s == "" || s == "all" {
		return append([]string(nil), DUTNames...), nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		ok := false
		for _, d := range DUTNames {
			if d == n {
				ok = true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown DUT %q (want one of %s)", n, strings.Join(DUTNames, ", "))
		}
		want[n] = true
	}
	var out []string
	for _, d := range DUTNames {
		if want[d] {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--only names no DUT")
	}
	return out, nil
}

// serviceRule steers the generator's traffic to gvs (AF_XDP DUTs).
var serviceRule = []driver.SteerRule{{Kind: driver.SteerService, Proto: 17, Addr: VIP, Port: VIPPort}}

// --- xdp-tx ---

type xdpTXDUT struct{ a *xdpAttachment }

func (d *xdpTXDUT) Name() string { return DUTXDPTX }

func (d *xdpTXDUT) Start(t *Topology, _ int) (err error) {
	d.a, err = attachSwapTX(t.DUT, t.DUTIndex)
	return err
}

func (d *xdpTXDUT) Stop() error {
	if d.a == nil {
		return nil
	}
	err := d.a.Close()
	d.a = nil
	return err
}

func (d *xdpTXDUT) Detail() string {
	return "native XDP on the DUT veth; runs in the sender's softirq (CPU of the generator)"
}

// --- afxdp-reflector ---

type reflectorDUT struct {
	log    *slog.Logger
	port   *afxdp.Port
	stop   atomic.Bool
	done   chan error
	pinErr string
	detail string
}

func (d *reflectorDUT) Name() string { return DUTReflector }

func openAFXDP(t *Topology, log *slog.Logger) (*afxdp.Port, error) {
	var p *afxdp.Port
	err := t.DUT.Do(func() (err error) {
		p, err = afxdp.Open(afxdp.Config{Interface: t.DUTIf, Logger: log})
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := p.SetSteering(serviceRule); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (d *reflectorDUT) Start(t *Topology, cpu int) error {
	p, err := openAFXDP(t, d.log)
	if err != nil {
		return err
	}
	d.port = p
	d.stop.Store(false)
	d.done = make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		runtime.LockOSThread() // left locked: the pinned thread is discarded at exit
		pinMsg := ""
		if cpu >= 0 {
			if err := pinThread(cpu); err != nil {
				pinMsg = err.Error()
			}
		}
		ready <- pinMsg
		d.done <- reflect(p.Queue(0), &d.stop)
	}()
	d.pinErr = <-ready
	return nil
}

// reflect is the bare reflector loop: receive a burst, swap the MACs,
// transmit it, free what the TX ring refused.
func reflect(q driver.Queue, stop *atomic.Bool) error {
	var burst [driver.BurstSize]driver.Frame
	for !stop.Load() {
		n, err := q.Receive(burst[:])
		if err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		for i := 0; i < n; i++ {
			swapMACs(burst[i].Data())
		}
		m, err := q.Transmit(burst[:n])
		if m < n {
			q.Free(burst[m:n])
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func swapMACs(b []byte) {
	if len(b) < 12 {
		return
	}
	var t [6]byte
	copy(t[:], b[0:6])
	copy(b[0:6], b[6:12])
	copy(b[6:12], t[:])
}

func (d *reflectorDUT) Stop() error {
	if d.port == nil {
		return nil
	}
	d.stop.Store(true)
	err := <-d.done
	st := d.port.Stats()
	d.detail = fmt.Sprintf("afxdp %s; port rx %d tx %d rx-dropped %d tx-dropped %d", d.port.Mode(), st.RxPackets, st.TxPackets, st.RxDropped, st.TxDropped)
	if d.pinErr != "" {
		d.detail += "; " + d.pinErr
	}
	err = errors.Join(err, d.port.Close())
	d.port = nil
	return err
}

func (d *reflectorDUT) Detail() string { return d.detail }

// --- gvs over afxdp or afpacket ---

type gvsDUT struct {
	name string
	// open opens the port of a DUT other than gvs-afxdp and gvs-afpacket.
	open   func(t *Topology) (driver.Port, error)
	flows  int
	log    *slog.Logger
	port   driver.Port
	engine *pmd.Engine
	detail string
}

func (d *gvsDUT) Name() string { return d.name }

// GvsConfig is the balancer configuration of the gvs DUTs: one UDP DR
// service on VIP:VIPPort over the two Backends, the same reals the nftables
// DUTs balance over. Their next hop MAC is the generator veth's, so every
// packet goes back where it came from, with only its MACs rewritten.
func GvsConfig() lb.Config {
	c := lb.Config{
		Services: []lb.Service{{Proto: lb.ProtoUDP, VIP: VIP, Port: VIPPort, Scheduler: "rr", Method: lb.MethodDR}},
		NextHops: map[netip.Addr]lb.NextHop{},
	}
	for _, b := range Backends {
		c.Services[0].Reals = append(c.Services[0].Reals, lb.Real{Addr: b, Weight: 1})
		c.NextHops[b] = lb.NextHop{MAC: [6]byte(GenMAC), Port: 0, OK: true}
	}
	return c
}

func (d *gvsDUT) Start(t *Topology, cpu int) error {
	switch d.name {
	case DUTGvsAFXDP:
		p, err := openAFXDP(t, d.log)
		if err != nil {
			return err
		}
		d.port = p
	case DUTGvsAFPkt:
		var p *afpacket.Port
		err := t.DUT.Do(func() (err error) {
			p, err = afpacket.Open(afpacket.Config{Interface: t.DUTIf})
			return err
		})
		if err != nil {
			return err
		}
		d.port = p
	default:
		p, err := d.open(t)
		if err != nil {
			return err
		}
		d.port = p
	}
	bal := lb.NewBalancer(1, 16)
	if err := bal.Apply(GvsConfig()); err != nil {
		d.release()
		return fmt.Errorf("balancer: %w", err)
	}
	cpus := []int(nil)
	if cpu >= 0 {
		cpus = []int{cpu}
	}
	e, err := pmd.New(pmd.Config{
		Workers: 1, CPUs: cpus, Ports: []driver.Port{d.port}, Balancer: bal,
		Sessions: max(1<<16, 2*d.flows),
	})
	if err != nil {
		d.release()
		return err
	}
	d.engine = e
	e.Start()
	return nil
}

func (d *gvsDUT) release() error {
	var err error
	if d.port != nil {
		err = d.port.Close()
		d.port = nil
	}
	return err
}

func (d *gvsDUT) Stop() error {
	if d.engine == nil {
		return d.release()
	}
	d.engine.Stop()
	w := d.engine.Workers()[0]
	ws := w.Stats()
	ps := w.Pipeline().Stats()
	st := d.port.Stats()
	var drops []string
	for r := pipeline.DropReason(0); int(r) < pipeline.NumDropReasons; r++ {
		if n := ps.Drops(r); n > 0 {
			drops = append(drops, fmt.Sprintf("%s=%d", r, n))
		}
	}
	sort.Strings(drops)
	mode := strings.TrimPrefix(d.name, "gvs-")
	if p, ok := d.port.(*afxdp.Port); ok {
		mode = "afxdp " + p.Mode()
	}
	d.detail = fmt.Sprintf("%s; worker rx %d tx %d sessions_new %d session_hits %d slow_path %d tx_drops %d; port rx-dropped %d tx-dropped %d",
		mode, ps.Counter(pipeline.CtrRxPkts), ps.Counter(pipeline.CtrTxPkts), ps.Counter(pipeline.CtrSessionNew),
		ps.Counter(pipeline.CtrSessionHit), ps.Counter(pipeline.CtrSlowPath), ws.TxDrops, st.RxDropped, st.TxDropped)
	if len(drops) > 0 {
		d.detail += "; drops " + strings.Join(drops, " ")
	}
	if ws.PinError != "" {
		d.detail += "; " + ws.PinError
	}
	d.engine = nil
	return d.release()
}

func (d *gvsDUT) Detail() string { return d.detail }
