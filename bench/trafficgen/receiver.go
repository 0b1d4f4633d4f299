package trafficgen

import (
	"sync/atomic"

	"gvs/driver"
)

// seqWindow is how far back (in sequence numbers) a duplicate is told from
// a late packet: like IPsec's anti-replay window, one bit per number below
// the highest seen. A packet older than that counts as reordered only.
const seqWindow = 64

// flowSeq is a receiver's view of one flow.
type flowSeq struct {
	max uint32 // highest sequence number seen
	win uint64 // bit d: max-d was seen; 0 until the first packet
}

// ClassCounters are a receiver's counts for one class.
type ClassCounters struct {
	Received   uint64 // stamped packets, duplicates included
	Bytes      uint64 // L2 bytes including the FCS
	Reordered  uint64 // sequence number below the flow's highest, not a duplicate
	Duplicates uint64 // sequence number seen before (within seqWindow)
	Latency    Histogram
}

// Receiver accounts received frames: it finds each frame's stamp and keeps
// per class counts and latency, and per flow the sequence state that tells
// reordering and duplicates. One goroutine feeds it (a sink's poll loop);
// others may read Total while it runs and everything after it stopped.
type Receiver struct {
	flows        []flowSeq
	Class        [NumClasses]ClassCounters
	Foreign      uint64 // frames without a (valid) stamp
	ForeignBytes uint64
	total        atomic.Uint64 // stamped packets, published per burst
}

// NewReceiver makes a receiver for flows flows (stamps with a higher flow
// id are foreign).
func NewReceiver(flows int) *Receiver {
	return &Receiver{flows: make([]flowSeq, flows)}
}

// Total is the number of stamped packets received so far; safe to call
// while the receiver runs.
func (r *Receiver) Total() uint64 { return r.total.Load() }

// Process accounts a burst of frames received at now (Nanotime).
func (r *Receiver) Process(frames []driver.Frame, now uint64) {
	var n uint64
	for i := range frames {
		if r.Packet(frames[i].Data(), now) {
			n++
		}
	}
	if n > 0 {
		r.total.Add(n)
	}
}

// Packet accounts one frame received at now and reports whether it was
// stamped. It does not publish Total (Process does, once per burst).
func (r *Receiver) Packet(frame []byte, now uint64) bool {
	s, ok := FindStamp(frame)
	if !ok || int(s.Flow) >= len(r.flows) {
		r.Foreign++
		r.ForeignBytes += uint64(len(frame)) + 4
		return false
	}
	c := &r.Class[s.Class]
	c.Received++
	c.Bytes += uint64(max(len(frame), 60)) + 4
	var lat uint64
	if now > s.TxNanos {
		lat = now - s.TxNanos
	}
	c.Latency.Record(lat)

	f := &r.flows[s.Flow]
	switch {
	case f.win == 0:
		f.max, f.win = s.Seq, 1
	case s.Seq > f.max:
		if d := s.Seq - f.max; d >= seqWindow {
			f.win = 1
		} else {
			f.win = f.win<<d | 1
		}
		f.max = s.Seq
	default:
		d := f.max - s.Seq
		switch {
		case d >= seqWindow:
			c.Reordered++
		case f.win&(1<<d) != 0:
			c.Duplicates++
		default:
			f.win |= 1 << d
			c.Reordered++
		}
	}
	return true
}

// Merge adds o's class counts and foreign frames to r (per-flow sequence
// state stays per receiver: reordering is judged per sink).
func (r *Receiver) Merge(o *Receiver) {
	for i := range r.Class {
		a, b := &r.Class[i], &o.Class[i]
		a.Received += b.Received
		a.Bytes += b.Bytes
		a.Reordered += b.Reordered
		a.Duplicates += b.Duplicates
		a.Latency.Merge(&b.Latency)
	}
	r.Foreign += o.Foreign
	r.ForeignBytes += o.ForeignBytes
	r.total.Add(o.total.Load())
}
