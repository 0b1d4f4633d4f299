// Package trafficgen is gvs's traffic generator and sink: it sends stamped
// IPv4/IPv6 UDP and TCP (SYN or established) packets of fixed sizes or IMIX
// for many flows through any gvs driver, at a fixed rate or flat out, and
// receives them at one or more sinks, which account per class what
// arrived: loss, reordering, duplicates and one-way latency.
//
// Packets are built once per class and size as templates (gopacket); per
// packet only the flow's source address and port and an 18-byte stamp at
// the end of the L4 payload are written, and the checksums are updated
// from precomputed sums, so sending makes no allocation and no checksum
// pass. Because the stamp is the last bytes of the outermost IP datagram,
// a sink finds it behind NAT, full NAT or IPIP encapsulation alike.
//
// Run is the entry point (cmd/trafficgen is its command line). Every
// address must lie in non-routable benchmark or documentation prefixes and
// interfaces are opened inside named network namespaces only, so that a
// typo cannot flood a production network.
package trafficgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"gvs/driver"
	"gvs/driver/mem"
)

// progressEvery is the interval of the time series and progress lines.
var progressEvery = time.Second

// Run sends and receives as o says and returns the result. Progress lines
// go to progress once per interval (nil: none). When ctx ends the sender
// stops, the sinks drain as usual and Run returns the partial result with
// ctx's error.
func Run(ctx context.Context, o Options, progress io.Writer) (*Result, error) {
	o.Defaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()

	// Ports.
	tx := o.TxPort
	sinkPorts := append([]driver.Port(nil), o.SinkPorts...)
	var sinkNames []string
	for _, p := range sinkPorts {
		sinkNames = append(sinkNames, p.Name())
	}
	dstMAC := net.HardwareAddr(o.DstMAC)
	switch {
	case tx != nil:
	case o.Driver == DriverMem:
		a, b, err := mem.NewPair(mem.Config{Name: "tg-tx", MAC: net.HardwareAddr{0x02, 0, 0xc6, 0x12, 0xff, 1}, MTU: 9000, FrameSize: 16384, Frames: 2048},
			mem.Config{Name: "tg-sink", MAC: net.HardwareAddr{0x02, 0, 0xc6, 0x12, 0xff, 2}, MTU: 9000, FrameSize: 16384, Frames: 2048})
		if err != nil {
			return nil, err
		}
		tx = a
		closers = append(closers, a.Close, b.Close)
		if len(o.SinkPorts) == 0 {
			sinkPorts, sinkNames = []driver.Port{b}, []string{"mem:" + b.Name()}
		}
		if dstMAC == nil {
			dstMAC = b.MAC()
		}
	default:
		p, err := openPort(o.Driver, o.Netns, o.Iface, false)
		if err != nil {
			return nil, err
		}
		tx = p
		closers = append(closers, p.Close)
	}
	if len(o.SinkPorts) == 0 && o.Driver != DriverMem {
		for _, s := range o.Sinks {
			p, err := openPort(s.Driver, s.Netns, s.Iface, true)
			if err != nil {
				return nil, fmt.Errorf("sink %s: %w", s, err)
			}
			closers = append(closers, p.Close)
			if err := steerSink(p, s.Netns, s.Iface, o.Dst); err != nil {
				return nil, err
			}
			sinkPorts, sinkNames = append(sinkPorts, p), append(sinkNames, s.String())
		}
	}
	if dstMAC == nil {
		dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	}
	srcMAC := net.HardwareAddr(o.SrcMAC)
	if srcMAC == nil {
		srcMAC = tx.MAC()
	}
	if len(srcMAC) != 6 {
		return nil, fmt.Errorf("port %s has no Ethernet address: give src-mac", tx.Name())
	}

	src, err := newPacketSource(&o, srcMAC, dstMAC)
	if err != nil {
		return nil, err
	}
	if l3 := src.maxFrameLen() - 14; l3 > tx.MTU() {
		return nil, fmt.Errorf("frames of %d bytes carry %d-byte IP packets, more than the MTU %d of %s", src.maxFrameLen()+4, l3, tx.MTU(), tx.Name())
	}

	// Sinks first, so nothing sent is missed.
	sinks := make([]*sinkRunner, len(sinkPorts))
	for i, p := range sinkPorts {
		sinks[i] = newSinkRunner(sinkNames[i], p, o.Flows)
		sinks[i].start()
	}
	stopSinks := func() error {
		var errs []error
		for _, k := range sinks {
			k.stop.Store(true)
		}
		for _, k := range sinks {
			if err := <-k.done; err != nil {
				errs = append(errs, fmt.Errorf("sink %s: %w", k.name, err))
			}
		}
		return errors.Join(errs...)
	}
	snd := &sender{q: tx.Queue(0), src: src, rate: o.Rate, count: o.Count, duration: o.Duration, cpu: o.CPU}
	received := func() uint64 {
		var n uint64
		for _, k := range sinks {
			n += k.rcv.Total()
		}
		return n
	}

	res := &Result{Options: o, Start: time.Now()}
	sdone := make(chan error, 1)
	go func() { sdone <- snd.run() }()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	var lastT time.Duration
	var lastTx, lastRx uint64
	sample := func() Sample {
		t := time.Since(res.Start)
		s, r := snd.sent.Load(), received()
		dt := (t - lastT).Seconds()
		sm := Sample{T: t.Seconds(), Sent: s, Received: r, Lost: int64(s) - int64(r)}
		if dt > 0 {
			sm.TxMpps = float64(s-lastTx) / dt / 1e6
			sm.RxMpps = float64(r-lastRx) / dt / 1e6
		}
		lastT, lastTx, lastRx = t, s, r
		res.Series = append(res.Series, sm)
		return sm
	}
	var sendErr error
wait:
	for {
		select {
		case sendErr = <-sdone:
			break wait
		case <-ctx.Done():
			snd.stop.Store(true)
			res.Interrupted = true
		case <-tick.C:
			sm := sample()
			if progress != nil {
				fmt.Fprintf(progress, "%5.0fs  tx %8.4f Mpps  rx %8.4f Mpps  sent %d  received %d  missing %d (%.2f%%)  left %s\n",
					sm.T, sm.TxMpps, sm.RxMpps, sm.Sent, sm.Received, sm.Lost, pct(sm.Lost, sm.Sent), o.timeLeft(time.Since(res.Start), sm.Sent))
			}
		}
	}
	// Drain: stragglers in rings and queues, bounded by o.Drain, also
	// after an interrupt, so a cut-short run still reports true loss.
	sent := snd.sent.Load()
	for end := time.Now().Add(o.Drain); time.Now().Before(end) && received() < sent; {
		time.Sleep(time.Millisecond)
	}
	sinkErr := stopSinks()
	if len(res.Series) == 0 || res.Series[len(res.Series)-1].Sent != sent || received() != res.Series[len(res.Series)-1].Received {
		sample()
	}

	// Result.
	res.Elapsed = time.Duration(snd.elapsed.Load()).Seconds()
	res.Unsent = snd.unsent.Load()
	res.TxRefused = tx.Stats().TxDropped
	res.PinError = snd.pinErr
	var all Receiver
	for i, k := range sinks {
		all.Merge(k.rcv)
		res.Sinks = append(res.Sinks, SinkResult{Name: k.name, Received: k.rcv.Total(), Foreign: k.rcv.Foreign, RxDropped: sinkPorts[i].Stats().RxDropped})
	}
	res.Foreign = all.Foreign
	total := ClassResult{Class: "total", hist: &Histogram{}}
	for c := 0; c < NumClasses; c++ {
		if len(src.tpls[c]) == 0 {
			continue
		}
		cr := ClassResult{Class: ClassName(c), Sent: snd.sentClass[c].Load(), TxBytes: snd.bytes[c].Load(), hist: &Histogram{}}
		for _, t := range src.tpls[c] {
			cr.FrameSizes = append(cr.FrameSizes, t.wireLen)
		}
		cc := &all.Class[c]
		cr.Received, cr.RxBytes, cr.Reordered, cr.Duplicates = cc.Received, cc.Bytes, cc.Reordered, cc.Duplicates
		cr.hist.Merge(&cc.Latency)
		cr.finish(res.Elapsed)
		total.Sent += cr.Sent
		total.TxBytes += cr.TxBytes
		total.Received += cr.Received
		total.RxBytes += cr.RxBytes
		total.Reordered += cr.Reordered
		total.Duplicates += cr.Duplicates
		total.hist.Merge(cr.hist)
		res.Classes = append(res.Classes, cr)
	}
	total.finish(res.Elapsed)
	res.Total = total

	err = errors.Join(sendErr, sinkErr)
	if err == nil && res.Interrupted {
		err = ctx.Err()
	}
	return res, err
}

func pct(a int64, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// timeLeft estimates the time until the sender stops.
func (o *Options) timeLeft(el time.Duration, sent uint64) string {
	left := time.Duration(-1)
	if o.Duration > 0 {
		left = o.Duration - el
	}
	if o.Count > 0 && sent > 0 {
		rate := o.Rate
		if rate == 0 {
			rate = float64(sent) / el.Seconds()
		}
		l := time.Duration(float64(o.Count-min(sent, o.Count)) / rate * 1e9)
		if left < 0 || l < left {
			left = l
		}
	}
	if left < 0 {
		return "?"
	}
	return max(left, 0).Round(100 * time.Millisecond).String()
}
