package trafficgen

import (
	"runtime"
	"sync/atomic"
	"time"

	"gvs/driver"
)

// sinkRunner polls every queue of one receiving port from its own
// goroutine and feeds a Receiver. It spins (yielding to other goroutines)
// while traffic flows, so a received frame is timestamped within one poll
// of its arrival; after sinkIdleAfter without a frame it naps between
// polls, which adds up to sinkNap to the latency of the first frame after
// a pause.
type sinkRunner struct {
	name string
	port driver.Port
	rcv  *Receiver
	stop atomic.Bool
	done chan error
}

const (
	sinkIdleAfter = 20 * time.Millisecond
	sinkNap       = 100 * time.Microsecond
)

func newSinkRunner(name string, port driver.Port, flows int) *sinkRunner {
	return &sinkRunner{name: name, port: port, rcv: NewReceiver(flows), done: make(chan error, 1)}
}

func (k *sinkRunner) start() { go func() { k.done <- k.run() }() }

func (k *sinkRunner) run() error {
	var frames [driver.BurstSize]driver.Frame
	qs := make([]driver.Queue, k.port.NumQueues())
	for i := range qs {
		qs[i] = k.port.Queue(i)
	}
	last := time.Now()
	for !k.stop.Load() {
		got := false
		for _, q := range qs {
			n, err := q.Receive(frames[:])
			if n > 0 {
				k.rcv.Process(frames[:n], Nanotime())
				q.Free(frames[:n])
				got = true
			}
			if err != nil {
				return err
			}
		}
		switch {
		case got:
			last = time.Now()
		case time.Since(last) > sinkIdleAfter:
			time.Sleep(sinkNap)
		default:
			runtime.Gosched()
		}
	}
	return nil
}
