package trafficgen

import (
	"encoding/binary"
	"testing"

	"gvs/driver"
)

// BenchmarkStamp is the sender's per-packet work: copy a 64-byte template,
// write the flow's address and port and the stamp, update both checksums.
func BenchmarkStamp(b *testing.B) {
	o := testOptions()
	o.Flows = 1024
	ps, err := newPacketSource(&o, testSrcMAC, testDstMAC)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, ps.maxFrameLen())
	b.ReportAllocs()
	for b.Loop() {
		ps.fill(buf, 123456789)
	}
}

// BenchmarkReceive is a sink's per-packet work: find the stamp, count,
// latency histogram, sequence window. 32 frames of 32 flows in turn, each
// with its sequence number advanced (a store the real path does not have),
// so the in-order path is measured, not the duplicate one.
func BenchmarkReceive(b *testing.B) {
	o := testOptions()
	o.Flows = 1024
	ps, _ := newPacketSource(&o, testSrcMAC, testDstMAC)
	var frames [driver.BurstSize]driver.Frame
	for i := range frames {
		buf := make([]byte, ps.maxFrameLen())
		n, _, _ := ps.fill(buf, 1000)
		frames[i] = driver.Frame{Buf: buf, Len: n}
	}
	r := NewReceiver(o.Flows)
	b.ReportAllocs()
	now := uint64(50000)
	var seq uint32
	for b.Loop() {
		d := frames[now%driver.BurstSize].Data()
		if now%driver.BurstSize == 0 {
			seq++
		}
		binary.BigEndian.PutUint32(d[len(d)-StampLen+6:], seq)
		r.Packet(d, now)
		now++
	}
}
