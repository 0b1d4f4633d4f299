//go:build dpdk

package dpdk

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"gvs/driver"
	"gvs/driver/dpdk/internal/rte"
)

func frameN(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i + j)
	}
	return b
}

// Frames injected into a net_ring port come out of Receive as views of the
// mbuf buffers, with the mbuf headroom in front; transmitted as they are,
// they arrive byte for byte on the tx ring.
func TestRingRoundTrip(t *testing.T) {
	before := inUse(t)
	rp := newRingPort(t, 1, Config{})
	if rp.NumQueues() != 1 || len(rp.tx) != 2 {
		t.Fatalf("queues %d", rp.NumQueues())
	}
	var in [][]byte
	for i := 0; i < 40; i++ {
		in = append(in, frameN(i, 60+i))
	}
	rp.inject(t, 0, in...)
	q := rp.Queue(0)
	var frames [driver.BurstSize]driver.Frame
	var got []driver.Frame
	for len(got) < len(in) {
		n, err := q.Receive(frames[:])
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("received %d of %d", len(got), len(in))
		}
		if n > driver.BurstSize {
			t.Fatalf("burst of %d", n)
		}
		got = append(got, frames[:n]...)
	}
	for i, f := range got {
		if f.Off < driver.MinHeadroom || f.Off != rte.Headroom {
			t.Errorf("frame %d: headroom %d", i, f.Off)
		}
		if !bytes.Equal(f.Data(), in[i]) {
			t.Errorf("frame %d: data differs", i)
		}
		if len(f.Buf) < f.Off+f.Len+64 || f.Handle == 0 {
			t.Errorf("frame %d: buf %d off %d len %d handle %x", i, len(f.Buf), f.Off, f.Len, f.Handle)
		}
	}
	n, err := q.Transmit(got)
	if err != nil || n != len(got) {
		t.Fatalf("transmit: %d, %v", n, err)
	}
	out := rp.waitSent(t, len(in))
	for i, s := range out {
		if !bytes.Equal(s.data, in[i]) || s.headroom != rte.Headroom {
			t.Errorf("sent %d: differs (headroom %d)", i, s.headroom)
		}
	}
	st := rp.Stats()
	if st.RxPackets != 40 || st.TxPackets != 40 {
		t.Errorf("stats %+v", st)
	}
	if d := inUse(t) - before; d != 0 {
		t.Errorf("%d mbufs leaked", d)
	}
}

// The pipeline grows packets into the headroom (encapsulation) and trims
// them; the mbuf carries the new offset and length to the wire.
func TestRingHeadroomPrependTrim(t *testing.T) {
	rp := newRingPort(t, 1, Config{})
	rp.inject(t, 0, frameN(1, 100), frameN(2, 100))
	q := rp.Queue(0)
	var fr [4]driver.Frame
	n, _ := q.Receive(fr[:])
	if n != 2 {
		t.Fatalf("received %d", n)
	}
	// Frame 0: IPIP-style: 20 bytes in front.
	h := fr[0].Prepend(20)
	if h == nil {
		t.Fatal("no headroom for 20 bytes")
	}
	for i := range h {
		h[i] = 0xee
	}
	if fr[0].Prepend(rte.Headroom) != nil {
		t.Error("prepend past the buffer start succeeded")
	}
	// Frame 1: 14 bytes off the front (decapsulation).
	if !fr[1].TrimFront(14) {
		t.Fatal("trim")
	}
	if m, _ := q.Transmit(fr[:2]); m != 2 {
		t.Fatalf("transmit %d", m)
	}
	out := rp.waitSent(t, 2)
	want0 := append(bytes.Repeat([]byte{0xee}, 20), frameN(1, 100)...)
	if !bytes.Equal(out[0].data, want0) || out[0].headroom != rte.Headroom-20 {
		t.Errorf("prepended frame: headroom %d, data %x", out[0].headroom, out[0].data[:24])
	}
	if !bytes.Equal(out[1].data, frameN(2, 100)[14:]) || out[1].headroom != rte.Headroom+14 {
		t.Errorf("trimmed frame: headroom %d", out[1].headroom)
	}
}

// Alloc hands out empty mbufs at the headroom; Free gives bursts back in
// bulk; nothing leaks.
func TestAllocFreeBulk(t *testing.T) {
	rp := newRingPort(t, 2, Config{})
	before := inUse(t)
	q := rp.Queue(1)
	var fr [100]driver.Frame
	got := 0
	for got < len(fr) {
		n := q.Alloc(fr[got:])
		if n == 0 {
			t.Fatal("alloc failed")
		}
		got += n
	}
	if d := inUse(t) - before; d != 100 {
		t.Errorf("in use +%d, want +100", d)
	}
	for i := range fr {
		f := &fr[i]
		if f.Len != 0 || f.Off != rte.Headroom || len(f.Buf) != rte.DefaultBufSize {
			t.Fatalf("alloc frame %d: off %d len %d buf %d", i, f.Off, f.Len, len(f.Buf))
		}
	}
	// Build a packet in one, send it from queue 0 (frames may come from
	// any queue of the port), free the rest in one call.
	f := &fr[0]
	f.Len = copy(f.Buf[f.Off:], frameN(7, 64))
	if n, _ := rp.Queue(0).Transmit(fr[:1]); n != 1 {
		t.Fatal("transmit")
	}
	q.Free(fr[1:])
	out := rp.waitSent(t, 1)
	if !bytes.Equal(out[0].data, frameN(7, 64)) {
		t.Error("built frame differs")
	}
	if d := inUse(t) - before; d != 0 {
		t.Errorf("%d mbufs leaked after bulk free", d)
	}
}

// A full device ring refuses the rest of a burst: Transmit returns the
// prefix it took, the caller keeps (and frees) the others, and Stats counts
// them.
func TestTransmitRingFull(t *testing.T) {
	rp := newRingPort(t, 1, Config{})
	before := inUse(t)
	q := rp.Queue(0)
	total, refused := 0, 0
	var fr [driver.BurstSize]driver.Frame
	for i := 0; i < 200 && refused == 0; i++ {
		n := q.Alloc(fr[:])
		for j := 0; j < n; j++ {
			fr[j].Len = 60
		}
		m, _ := q.Transmit(fr[:n])
		total += m
		if m < n {
			refused = n - m
			q.Free(fr[m:n])
		}
	}
	if refused == 0 || total != 4095 {
		t.Fatalf("sent %d, refused %d (ring of 4095)", total, refused)
	}
	if st := rp.Stats(); st.TxDropped != uint64(refused) {
		t.Errorf("tx dropped %d, want %d", st.TxDropped, refused)
	}
	rp.drain(0)
	if d := inUse(t) - before; d != 0 {
		t.Errorf("%d mbufs leaked", d)
	}
}

// net_null: a device that always has packets; the port reports its
// counters and takes everything it is given.
func TestNullPort(t *testing.T) {
	p, err := Open(Config{Name: "null", Device: "net_null_t0,size=64,copy=0", Queues: 2})
	if err != nil {
		t.Fatal(err)
	}
	before := inUse(t)
	var fr [driver.BurstSize]driver.Frame
	rx, tx := 0, 0
	for i := 0; i < 100; i++ {
		for qi := 0; qi < p.NumQueues(); qi++ {
			q := p.Queue(qi)
			n, _ := q.Receive(fr[:])
			rx += n
			for j := 0; j < n; j++ {
				if fr[j].Len != 64 || fr[j].Off != rte.Headroom {
					t.Fatalf("null frame len %d off %d", fr[j].Len, fr[j].Off)
				}
			}
			m, _ := q.Transmit(fr[:n])
			tx += m
			q.Free(fr[m:n])
		}
	}
	if rx != 100*2*driver.BurstSize || tx != rx {
		t.Errorf("rx %d tx %d", rx, tx)
	}
	st := p.Stats()
	if st.RxPackets != uint64(rx) || st.TxPackets != uint64(tx) {
		t.Errorf("stats %+v", st)
	}
	if d := inUse(t) - before; d != 0 {
		t.Errorf("%d mbufs leaked", d)
	}
	// Two queues on a device with RSS: gvs's symmetric key is in use.
	if key, hf := p.RSS(); len(key) == 0 || hf == 0 || !bytes.Equal(key, SymmetricRSSKey[:len(key)]) {
		t.Errorf("RSS key %x hash types %x", key, hf)
	}
	if up, _ := p.Link(); !up {
		t.Error("net_null link down")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Queue(0).Receive(fr[:]); err != driver.ErrClosed {
		t.Errorf("receive after close: %v", err)
	}
	// The vdev is gone with the port: the name can be used again.
	p2, err := Open(Config{Name: "null", Device: "net_null_t0,size=64,copy=0"})
	if err != nil {
		t.Fatal(err)
	}
	p2.Close()
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(Config{Name: "x", Device: "0000:99:00.0"}); err == nil {
		t.Error("a PCI device EAL did not probe opened")
	}
	if _, err := Open(Config{Name: "x", Device: "net_nosuchdriver0"}); err == nil {
		t.Error("an unknown vdev opened")
	}
	// A second EAL with other options is refused.
	if err := Init(EALConfig{Memory: MemoryInMemory}); err == nil {
		t.Error("second EAL init accepted")
	}
}

// The port takes the MAC and MTU it is given.
func TestMACAndMTU(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	rp := newRingPort(t, 1, Config{MAC: mac})
	if rp.MAC().String() != mac.String() {
		t.Errorf("MAC %s, want %s", rp.MAC(), mac)
	}
	if rp.MTU() < 1500 {
		t.Errorf("MTU %d", rp.MTU())
	}
	if key, _ := rp.RSS(); key != nil {
		t.Errorf("RSS on a one-queue port: %x", key)
	}
}

func TestEALArgs(t *testing.T) {
	got := fmt.Sprint(EALConfig{Lcores: "1", FilePrefix: "x"}.EALArgs())
	if got != "[-l 1 --no-huge -m 256 --file-prefix x --no-pci]" {
		t.Errorf("default args %s", got)
	}
	got = fmt.Sprint(EALConfig{Lcores: "0-1", Memory: MemoryInMemory, Allow: []string{"0000:01:00.0"}, Vdevs: []string{"net_tap0,iface=t"}}.EALArgs())
	if got != "[-l 0-1 --in-memory -a 0000:01:00.0 --vdev net_tap0,iface=t]" {
		t.Errorf("in-memory args %s", got)
	}
}
