package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"gvs/driver"
)

// Offsets into the kernel's ring structures (<linux/if_packet.h>).
const (
	// struct tpacket_block_desc: version, offset_to_priv, then
	// struct tpacket_hdr_v1.
	bdStatus   = 8  // block_status
	bdNumPkts  = 12 // num_pkts
	bdFirstPkt = 16 // offset_to_first_pkt

	// struct tpacket3_hdr.
	hdrStatus = 20 // tp_status
	// txDataOff is where frame data starts in a TX slot without
	// PACKET_TX_HAS_OFF: tp_hdrlen - sizeof(struct sockaddr_ll), i.e.
	// TPACKET_ALIGN(sizeof(struct tpacket3_hdr)).
	txDataOff = unix.SizeofTpacket3Hdr

	txBusy = unix.TP_STATUS_SEND_REQUEST | unix.TP_STATUS_SENDING | unix.TP_STATUS_WRONG_FORMAT
)

// Queue is one queue pair of a Port: one AF_PACKET socket with its RX and
// TX rings. It implements driver.Queue; use it from one goroutine at a time.
type Queue struct {
	port *Port
	idx  int
	fd   int
	mem  []byte // the mmap: RX ring, then TX ring

	// RX: TPACKET_V3 blocks.
	rx         []byte
	blockSize  int
	blockCount int
	blk        int  // current block
	held       bool // blk belongs to us and is partly consumed
	pktOff     int  // offset of the next packet in blk
	left       int  // packets of blk not consumed yet
	bufCap     int  // bytes a pool buffer holds behind the headroom

	// TX: fixed-size slots.
	txSlots  []int // offset in mem of each slot's tpacket3_hdr
	txHead   int   // next slot to fill
	txMax    int   // longest frame accepted (MTU+14, or +4 when tagged)
	txMaxTag int
	needKick bool // SEND_REQUEST slots may be waiting for a sendto

	cache []uint32 // free pool buffers owned by this queue

	busy atomic.Int32 // > 0 while Receive or Transmit runs (Close waits)
	ctr  queueCounters
}

var _ driver.Queue = (*Queue)(nil)

type queueCounters struct {
	rxPkts, rxBytes, txPkts, txBytes               atomic.Uint64
	rxOversize, rxPoolEmpty                        atomic.Uint64
	csumFixed, csumUnfixable, vlanRestored         atomic.Uint64
	txRingFull, txBadLength, txKicks, txKickErrors atomic.Uint64
	badHandles                                     atomic.Uint64
}

// txGeometry returns the TX slot size, slots per block and block size for a
// port: slots hold a tpacket3_hdr and the longest frame the kernel accepts.
func txGeometry(frameSize, mtu, pageSize int) (slot, perBlock, block int) {
	payload := mtu + 14 + 4
	if payload > frameSize {
		payload = frameSize
	}
	slot = (txDataOff + payload + 15) &^ 15
	pow := pageSize
	for pow < slot {
		pow <<= 1
	}
	block = pow * 8
	return slot, block / slot, block
}

func openQueue(p *Port, idx int) (_ *Queue, err error) {
	cfg := &p.cfg
	fd, err := newPacketSocket()
	if err != nil {
		return nil, err
	}
	q := &Queue{port: p, idx: idx, fd: fd, blockSize: cfg.BlockSize, blockCount: cfg.BlockCount,
		bufCap: cfg.FrameSize - driver.MinHeadroom, cache: make([]uint32, 0, cacheMax)}
	defer func() {
		if err != nil {
			_ = q.release()
		}
	}()

	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("PACKET_VERSION TPACKET_V3: %w", err)
	}
	// Skip (do not wedge on) a TX frame the kernel refuses; must precede
	// the rings.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1); err != nil {
		return nil, fmt.Errorf("PACKET_LOSS: %w", err)
	}

	tov := cfg.BlockTimeout.Milliseconds()
	if time.Duration(tov)*time.Millisecond < cfg.BlockTimeout {
		tov++
	}
	if tov < 1 {
		tov = 1
	}
	rxReq := unix.TpacketReq3{
		Block_size:     uint32(cfg.BlockSize),
		Block_nr:       uint32(cfg.BlockCount),
		Frame_size:     uint32(cfg.FrameSize),
		Frame_nr:       uint32(cfg.BlockSize / cfg.FrameSize * cfg.BlockCount),
		Retire_blk_tov: uint32(tov),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &rxReq); err != nil {
		return nil, fmt.Errorf("PACKET_RX_RING (TPACKET_V3, %d blocks of %d bytes, frame size %d, retire timeout %d ms): %w",
			rxReq.Block_nr, rxReq.Block_size, rxReq.Frame_size, rxReq.Retire_blk_tov, err)
	}

	pageSize := unix.Getpagesize()
	slot, perBlock, txBlock := txGeometry(cfg.FrameSize, p.mtu, pageSize)
	txBlocks := (cfg.TxFrames + perBlock - 1) / perBlock
	txReq := unix.TpacketReq3{
		Block_size: uint32(txBlock),
		Block_nr:   uint32(txBlocks),
		Frame_size: uint32(slot),
		Frame_nr:   uint32(perBlock * txBlocks),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &txReq); err != nil {
		return nil, fmt.Errorf("PACKET_TX_RING (TPACKET_V3, %d blocks of %d bytes, frame size %d, %d frames): %w",
			txReq.Block_nr, txReq.Block_size, txReq.Frame_size, txReq.Frame_nr, err)
	}

	rxSize := cfg.BlockSize * cfg.BlockCount
	txSize := txBlock * txBlocks
	q.mem, err = unix.Mmap(fd, 0, rxSize+txSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		q.mem = nil
		return nil, fmt.Errorf("mmap of %d bytes of rings: %w", rxSize+txSize, err)
	}
	q.rx = q.mem[:rxSize]
	q.txSlots = make([]int, 0, perBlock*txBlocks)
	for b := 0; b < txBlocks; b++ {
		for j := 0; j < perBlock; j++ {
			q.txSlots = append(q.txSlots, rxSize+b*txBlock+j*slot)
		}
	}
	q.txMax = p.mtu + 14
	q.txMaxTag = p.mtu + 14 + 4
	if lim := slot - txDataOff; q.txMaxTag > lim {
		q.txMaxTag = lim
		if q.txMax > lim {
			q.txMax = lim
		}
	}

	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		return nil, fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return nil, fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
	}
	sa := unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: p.ifindex}
	if err := unix.Bind(fd, &sa); err != nil {
		return nil, fmt.Errorf("bind to ifindex %d: %w", p.ifindex, err)
	}
	return q, nil
}

// joinFanout adds the socket to fanout group id with the given
// PACKET_FANOUT_FLAG_* flags (unique: let the kernel choose the id) and
// returns the group's id.
func (q *Queue) joinFanout(id uint16, unique bool, flags int) (uint16, error) {
	typ := unix.PACKET_FANOUT_HASH | flags
	if unique {
		typ |= unix.PACKET_FANOUT_FLAG_UNIQUEID
		id = 0
	}
	if err := unix.SetsockoptInt(q.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, int(id)|typ<<16); err != nil {
		what := fmt.Sprintf("group %d", id)
		if unique {
			what = "new unique group"
		}
		hint := ""
		if !unique && errors.Is(err, unix.EINVAL) {
			hint = " (the group exists with other settings or on another interface)"
		}
		return 0, fmt.Errorf("PACKET_FANOUT (hash, %s, flags %#x): %w%s", what, flags, err, hint)
	}
	if unique {
		v, err := unix.GetsockoptInt(q.fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
		if err != nil {
			return 0, fmt.Errorf("reading PACKET_FANOUT group id: %w", err)
		}
		id = uint16(v)
	}
	return id, nil
}

// release unmaps the rings and closes the socket.
func (q *Queue) release() error {
	var errs []error
	if q.mem != nil {
		if err := unix.Munmap(q.mem); err != nil {
			errs = append(errs, fmt.Errorf("queue %d: munmap: %w", q.idx, err))
		}
		q.mem, q.rx, q.txSlots = nil, nil, nil
	}
	if q.fd >= 0 {
		if err := unix.Close(q.fd); err != nil {
			errs = append(errs, fmt.Errorf("queue %d: close: %w", q.idx, err))
		}
		q.fd = -1
	}
	return errors.Join(errs...)
}

func (q *Queue) blockStatus(b int) *uint32 {
	return (*uint32)(unsafe.Pointer(&q.rx[b*q.blockSize+bdStatus]))
}

// releaseBlock hands the current block back to the kernel.
func (q *Queue) releaseBlock() {
	atomic.StoreUint32(q.blockStatus(q.blk), unix.TP_STATUS_KERNEL)
	q.held = false
	q.left = 0
	q.blk++
	if q.blk == q.blockCount {
		q.blk = 0
	}
}

// discardRx gives every block the kernel has handed over back unread.
func (q *Queue) discardRx() {
	if q.held {
		q.releaseBlock()
	}
	for i := 0; i < q.blockCount; i++ {
		if atomic.LoadUint32(q.blockStatus(q.blk))&unix.TP_STATUS_USER == 0 {
			return
		}
		q.releaseBlock()
	}
}

// Receive implements driver.Queue. It copies up to len(frames) packets out
// of the RX ring into pool buffers; it makes no system call.
func (q *Queue) Receive(frames []driver.Frame) (int, error) {
	q.busy.Add(1)
	if q.port.closed.Load() {
		q.busy.Add(-1)
		return 0, driver.ErrClosed
	}
	n, bytes := 0, 0
	var ev rxEvents
	for n < len(frames) {
		if !q.held {
			if atomic.LoadUint32(q.blockStatus(q.blk))&unix.TP_STATUS_USER == 0 {
				break
			}
			bd := q.rx[q.blk*q.blockSize:]
			q.left = int(binary.NativeEndian.Uint32(bd[bdNumPkts:]))
			q.pktOff = int(binary.NativeEndian.Uint32(bd[bdFirstPkt:]))
			q.held = true
		}
		if q.left == 0 {
			q.releaseBlock()
			continue
		}
		block := q.rx[q.blk*q.blockSize : (q.blk+1)*q.blockSize]
		if q.pktOff+txDataOff > len(block) {
			// Never produced by the kernel; do not trust the rest of it.
			q.ctr.rxOversize.Add(uint64(q.left))
			q.releaseBlock()
			continue
		}
		hdr := (*unix.Tpacket3Hdr)(unsafe.Pointer(&block[q.pktOff]))
		idx, ok := q.getBuf()
		if !ok {
			q.ctr.rxPoolEmpty.Add(1)
			break
		}
		if l := q.copyPacket(hdr, block, q.pktOff, idx, &frames[n], &ev); l > 0 {
			n++
			bytes += l
		} else {
			q.cache = append(q.cache, idx)
		}
		q.pktOff += int(hdr.Next_offset)
		q.left--
		if q.left == 0 {
			q.releaseBlock()
		}
	}
	q.busy.Add(-1)
	if n > 0 {
		q.ctr.rxPkts.Add(uint64(n))
		q.ctr.rxBytes.Add(uint64(bytes))
	}
	if ev != (rxEvents{}) {
		q.ctr.rxOversize.Add(uint64(ev.oversize))
		q.ctr.vlanRestored.Add(uint64(ev.vlan))
		q.ctr.csumFixed.Add(uint64(ev.csumFixed))
		q.ctr.csumUnfixable.Add(uint64(ev.csumBad))
	}
	return n, nil
}

// rxEvents counts what happened to the packets of one Receive call, added
// to the queue's counters once per call.
type rxEvents struct {
	oversize, vlan, csumFixed, csumBad uint32
}

// copyPacket copies the packet described by hdr into pool buffer idx,
// re-inserting a stripped VLAN tag and completing a partial checksum, and
// stores the frame in *f. It returns the frame length, or 0 if the packet
// was dropped.
func (q *Queue) copyPacket(hdr *unix.Tpacket3Hdr, block []byte, off int, idx uint32, f *driver.Frame, ev *rxEvents) int {
	st := hdr.Status
	snap := int(hdr.Snaplen)
	mac := off + int(hdr.Mac)
	tag := st&unix.TP_STATUS_VLAN_VALID != 0
	extra := 0
	if tag {
		extra = 4
	}
	if snap < int(hdr.Len) || snap < 14 || snap+extra > q.bufCap || mac+snap > len(block) {
		ev.oversize++
		return 0
	}
	*f = q.port.pool.frame(idx)
	dst := f.Buf[f.Off:]
	src := block[mac : mac+snap]
	if tag {
		tpid := uint16(0x8100)
		if st&unix.TP_STATUS_VLAN_TPID_VALID != 0 && hdr.Hv1.Vlan_tpid != 0 {
			tpid = hdr.Hv1.Vlan_tpid
		}
		copy(dst[:12], src[:12])
		binary.BigEndian.PutUint16(dst[12:], tpid)
		binary.BigEndian.PutUint16(dst[14:], uint16(hdr.Hv1.Vlan_tci))
		copy(dst[16:], src[12:])
		ev.vlan++
	} else {
		copy(dst, src)
	}
	f.Len = snap + extra
	if st&unix.TP_STATUS_CSUMNOTREADY != 0 {
		if completeChecksum(dst[:f.Len]) {
			ev.csumFixed++
		} else {
			ev.csumBad++
		}
	}
	return f.Len
}

// Transmit implements driver.Queue. It copies frames into free TX ring
// slots, kicks the kernel once and gives the buffers back to the pool. It
// stops at the first frame that finds the ring full; frames too long for the
// interface are taken and dropped (Counters.TxBadLength).
func (q *Queue) Transmit(frames []driver.Frame) (int, error) {
	q.busy.Add(1)
	if q.port.closed.Load() {
		q.busy.Add(-1)
		return 0, driver.ErrClosed
	}
	n, sent, bytes := 0, 0, 0
	for n < len(frames) {
		slot := q.mem[q.txSlots[q.txHead]:]
		stp := (*uint32)(unsafe.Pointer(&slot[hdrStatus]))
		// Free unless the kernel still owns it (timestamp bits may come
		// with TP_STATUS_AVAILABLE; WRONG_FORMAT cannot happen with
		// PACKET_LOSS and would need a retry, so it counts as busy).
		if st := atomic.LoadUint32(stp); st&txBusy != 0 {
			if st&unix.TP_STATUS_SEND_REQUEST != 0 {
				q.needKick = true // queued by an earlier kick that failed
			}
			break
		}
		f := &frames[n]
		n++
		data := f.Data()
		if !q.fits(data) {
			q.ctr.txBadLength.Add(1)
			continue
		}
		copy(slot[txDataOff:], data)
		hdr := (*unix.Tpacket3Hdr)(unsafe.Pointer(&slot[0]))
		hdr.Next_offset = 0
		hdr.Len = uint32(len(data))
		hdr.Snaplen = uint32(len(data))
		atomic.StoreUint32(stp, unix.TP_STATUS_SEND_REQUEST)
		q.txHead++
		if q.txHead == len(q.txSlots) {
			q.txHead = 0
		}
		sent++
		bytes += len(data)
	}
	if sent > 0 || q.needKick {
		q.ctr.txKicks.Add(1)
		if err := unix.Sendto(q.fd, nil, unix.MSG_DONTWAIT, nil); err != nil {
			// EAGAIN/ENOBUFS (device busy), ENETDOWN (link down): the
			// frames stay in the ring and leave with the next kick.
			q.ctr.txKickErrors.Add(1)
			q.needKick = true
		} else {
			q.needKick = false
		}
	}
	q.busy.Add(-1)
	q.putBufs(frames[:n])
	if r := len(frames) - n; r > 0 {
		q.ctr.txRingFull.Add(uint64(r))
	}
	if sent > 0 {
		q.ctr.txPkts.Add(uint64(sent))
		q.ctr.txBytes.Add(uint64(bytes))
	}
	return n, nil
}

// fits reports whether the kernel accepts frame data for transmission: an
// Ethernet header, at most MTU bytes behind it, four more for a VLAN tag.
func (q *Queue) fits(data []byte) bool {
	switch {
	case len(data) < 14:
		return false
	case len(data) <= q.txMax:
		return true
	case len(data) <= q.txMaxTag:
		et := binary.BigEndian.Uint16(data[12:])
		return et == 0x8100 || et == 0x88a8
	}
	return false
}

// Free implements driver.Queue.
func (q *Queue) Free(frames []driver.Frame) { q.putBufs(frames) }

// Alloc implements driver.Queue: empty pool buffers with MinHeadroom of
// headroom. It returns 0 after Close.
func (q *Queue) Alloc(frames []driver.Frame) int {
	if q.port.closed.Load() {
		return 0
	}
	n := 0
	for n < len(frames) {
		idx, ok := q.getBuf()
		if !ok {
			break
		}
		frames[n] = q.port.pool.frame(idx)
		n++
	}
	return n
}

// TxSlots is the number of TX ring slots of the queue.
func (q *Queue) TxSlots() int { return len(q.txSlots) }
