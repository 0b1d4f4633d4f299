//go:build dpdk

package dpdk

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"gvs/driver"
	"gvs/driver/dpdk/internal/rte"
)

// EAL starts once per process: every test of this package shares it, which
// is why the DPDK tests are a test binary of their own (make test runs
// `go test -tags dpdk ./driver/dpdk/...`).
func TestMain(m *testing.M) {
	cfg := EALConfig{Memory: MemoryNoHuge, MemoryMB: 256, FilePrefix: fmt.Sprintf("gvs-%d", os.Getpid()),
		LogLevel: "*:warning", Args: []string{"--no-telemetry"}, Mbufs: 8191}
	if err := Init(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "EAL: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := Cleanup(); err != nil {
		fmt.Fprintf(os.Stderr, "EAL cleanup: %v\n", err)
	}
	os.Exit(code)
}

var ringSeq atomic.Int64

// ringPort is a net_ring port with its rings: the test enqueues on rx[i]
// what queue i receives and dequeues from tx[i] what queue i sent.
type ringPort struct {
	*Port
	rx, tx []*rte.Ring
	b      *rte.Burst // test side
}

func newRingPort(t testing.TB, queues int, c Config) *ringPort {
	t.Helper()
	seq := ringSeq.Add(1)
	name := fmt.Sprintf("t%d", seq) // the ethdev is net_ring_<name>
	rp := &ringPort{b: rte.NewBurst()}
	mk := func(kind string, i int) *rte.Ring {
		r, err := rte.NewRing(fmt.Sprintf("t%d%s%d", seq, kind, i), 4096, rte.SocketAny)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for i := 0; i < queues; i++ {
		rp.rx = append(rp.rx, mk("rx", i))
	}
	for i := 0; i < queues+1; i++ {
		rp.tx = append(rp.tx, mk("tx", i))
	}
	if _, err := rte.PortFromRings(name, rp.rx, rp.tx, rte.SocketAny); err != nil {
		t.Fatal(err)
	}
	c.Device = "net_ring_" + name
	if c.Name == "" {
		c.Name = name
	}
	c.Queues = queues
	p, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	rp.Port = p
	t.Cleanup(func() {
		rp.drainAll()
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		for _, r := range append(rp.rx, rp.tx...) {
			r.Free()
		}
		rp.b.Free()
	})
	return rp
}

// inject copies frames into fresh mbufs and puts them on receive ring q.
func (rp *ringPort) inject(t testing.TB, q int, frames ...[]byte) {
	t.Helper()
	for len(frames) > 0 {
		n := len(frames)
		if n > driver.BurstSize {
			n = driver.BurstSize
		}
		got := rp.pool.Alloc(rp.b, n)
		if got != n {
			t.Fatalf("alloc %d mbufs: got %d", n, got)
		}
		for i := 0; i < n; i++ {
			buf := rp.b.Buf(i)
			off := rp.b.Off(i)
			copy(buf[off:], frames[i])
			rp.b.Set(i, rp.b.Mbuf(i), off, len(frames[i]))
		}
		if e := rp.rx[q].Enqueue(rp.b, n); e != n {
			t.Fatalf("enqueue %d: %d", n, e)
		}
		frames = frames[n:]
	}
}

// sent is a transmitted frame as the test saw it on a tx ring.
type sent struct {
	data     []byte
	headroom int
}

// drain takes what queue q transmitted (copies) and frees the mbufs.
func (rp *ringPort) drain(q int) []sent {
	var out []sent
	for {
		n := rp.tx[q].Dequeue(rp.b, driver.BurstSize)
		if n == 0 {
			return out
		}
		for i := 0; i < n; i++ {
			buf, off, l := rp.b.Buf(i), rp.b.Off(i), rp.b.Len(i)
			out = append(out, sent{data: append([]byte(nil), buf[off:off+l]...), headroom: off})
		}
		rp.b.FreeBulk(n)
	}
}

func (rp *ringPort) drainAll() []sent {
	var out []sent
	for q := range rp.tx {
		out = append(out, rp.drain(q)...)
	}
	for q := range rp.rx {
		for {
			n := rp.rx[q].Dequeue(rp.b, driver.BurstSize)
			if n == 0 {
				break
			}
			rp.b.FreeBulk(n)
		}
	}
	return out
}

// waitSent collects transmitted frames from every tx ring until want
// arrived (or 5 s passed).
func (rp *ringPort) waitSent(t testing.TB, want int) []sent {
	t.Helper()
	var got []sent
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		n := 0
		for q := range rp.tx {
			s := rp.drain(q)
			n += len(s)
			got = append(got, s...)
		}
		if n == 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	if len(got) != want {
		t.Fatalf("got %d transmitted frames, want %d", len(got), want)
	}
	return got
}

// inUse is the number of mbufs allocated from the pool of socket 0 (every
// test port is there).
func inUse(t testing.TB) int {
	t.Helper()
	p, err := pool(0)
	if err != nil {
		t.Fatal(err)
	}
	return p.InUse()
}
