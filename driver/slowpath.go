package driver

// SlowPather is implemented by ports that have no kernel behind them
// (DPDK): the frames the pipeline does not handle (ARP, neighbour
// discovery, ICMP echo, the host's own traffic) are theirs to answer or to
// carry to an exception path. The worker that received the frames calls
// SlowPath on its own goroutine with its queue of the port; the port owns
// the frames from then on (it transmits or frees them, now or later, from
// any goroutine of its own). Ports beside a kernel (AF_PACKET, AF_XDP)
// do not implement it: the kernel sees those packets itself.
type SlowPather interface {
	SlowPath(worker int, q Queue, frames []Frame)
}
