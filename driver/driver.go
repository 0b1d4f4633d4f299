// Package driver defines the batch-oriented port interface every NIC driver of
// gvs implements (mem, afpacket, afxdp, dpdk), and the Frame view the pipeline
// works on.
//
// The contract follows wireguard-go's tun.Device: a burst is received into
// caller-owned slots, transmitted as a burst, and frames are returned to the
// driver in bulk. Frame memory belongs to the driver (preallocated arena,
// UMEM, mmap ring, mbuf); a Frame is only a view into it. Nothing outside
// driver/ knows which driver runs.
//
// Imports: standard library only. Every other package of gvs may import
// driver.
package driver

import (
	"errors"
	"net"
)

// BurstSize is the number of frames a worker asks for per Receive call and
// the size of every burst array in gvs. It never changes at run time.
const BurstSize = 32

// MinHeadroom is the number of bytes every driver leaves in front of a
// received frame's data so the pipeline can prepend encapsulation headers
// (IPIP: 20 bytes, IPv6-in-IPv6: 40 bytes) without copying.
const MinHeadroom = 128

// ErrClosed is returned by queue operations after the port was closed.
var ErrClosed = errors.New("driver: port closed")

// Frame is a view of one packet in driver memory. The packet's bytes are
// Buf[Off : Off+Len]; Buf[:Off] is headroom the pipeline may use to grow the
// packet at the front. A Frame is a plain value: copying it copies the view,
// not the bytes, and the frame is owned by exactly one party at a time.
type Frame struct {
	Buf []byte // whole buffer: headroom, data, tailroom
	Off int    // start of packet data within Buf
	Len int    // length of packet data
	// Handle is private to the driver that produced the frame (a buffer
	// index, a UMEM address, an mbuf pointer); callers must not change it.
	Handle uint64
	// Port is the index of the port the frame was received on, as set by
	// the caller that owns the queue (pmd); drivers leave it untouched.
	Port uint16
	// Hops is scratch for the pipeline (how many workers a frame has been
	// handed to while looking for its flow); drivers ignore it.
	Hops uint8
}

// Data returns the packet bytes.
func (f *Frame) Data() []byte { return f.Buf[f.Off : f.Off+f.Len] }

// Prepend grows the packet at the front by n bytes, taken from the headroom,
// and returns the new first n bytes. It returns nil if the headroom is short.
func (f *Frame) Prepend(n int) []byte {
	if n > f.Off {
		return nil
	}
	f.Off -= n
	f.Len += n
	return f.Buf[f.Off : f.Off+n]
}

// TrimFront removes n bytes from the front of the packet (they become
// headroom). It reports false if the packet is shorter than n.
func (f *Frame) TrimFront(n int) bool {
	if n > f.Len {
		return false
	}
	f.Off += n
	f.Len -= n
	return true
}

// Queue is one receive/transmit queue pair of a port. A queue is used by one
// goroutine at a time (its pmd worker); drivers need no locking on it.
type Queue interface {
	// Receive fills frames[0:n] with received packets and returns n, which
	// may be 0. It never blocks. The frames belong to the caller until it
	// passes them to Transmit or Free of a queue of the same port.
	Receive(frames []Frame) (n int, err error)

	// Transmit queues frames for sending and returns how many it took,
	// always a prefix of frames. Frames taken belong to the driver again;
	// frames not taken (ring full) stay the caller's, who usually frees them.
	// Frames may come from any queue of the same port.
	Transmit(frames []Frame) (n int, err error)

	// Free gives frames back to the driver without sending them.
	Free(frames []Frame)

	// Alloc fills frames[0:n] with empty buffers (Len 0, Off at headroom)
	// for packets the caller builds itself (replies, generated traffic) and
	// returns n. Allocated frames are owned by the caller.
	Alloc(frames []Frame) int
}

// Port is one network interface driven by gvs.
type Port interface {
	// Name is the interface or device name, for logs and metrics.
	Name() string
	// MAC is the port's own Ethernet address.
	MAC() net.HardwareAddr
	// MTU is the largest L3 packet the port sends.
	MTU() int
	// NumQueues is the number of queue pairs; it never changes.
	NumQueues() int
	// Queue returns queue pair i, 0 <= i < NumQueues().
	Queue(i int) Queue
	// Stats returns the driver's counters for the port.
	Stats() PortStats
	// Close stops the port and releases its memory. Frames still held by
	// callers become invalid.
	Close() error
}

// PortStats are cumulative driver-level counters of a port.
type PortStats struct {
	RxPackets, RxBytes uint64
	TxPackets, TxBytes uint64
	RxDropped          uint64 // lost by the driver or the ring before gvs saw them
	TxDropped          uint64 // refused by a full ring or the device
}
