// Package sessync is gvs's session sync: the master of a VRRP pair streams
// its new, changed and removed sessions to the backup, which installs them
// in its workers' tables, so that after a failover the established nat and
// fullnat flows (and dr flows on their real) continue on the new master —
// what IPVS's sync daemon does, and DPVS, Katran and Seesaw do not.
//
// The workers own their tables: records leave them through each worker's
// export ring and enter them through its import ring (pmd, lock-free SPSC
// rings; see pipeline/sync.go for what a record holds). A Syncer drains
// the export rings every Interval while its node is master and sends the
// records in batches over UDP to the peer, numbering the datagrams; the
// peer's Syncer, as backup, queues each record in the import ring of the
// worker that owns the flow. A backup that finds a datagram missing (or
// starts, or becomes backup) asks for a full resync: the master then dumps
// every worker's table (the budgeted dump of pmd) into the stream, ending
// with a dump datagram even when the table is empty. The backup repeats
// its request every RetryInterval until dump datagrams arrive, so a request
// lost on a link that was down is not lost for good; and a master that
// has sent nothing for a HeartbeatInterval sends an empty datagram, so a
// backup notices within that time that it missed some (its link was down
// while the master's table did not change since). A master also resyncs
// every Refresh, which renews the backup's copies of long-lived sessions
// (sessions expire on the backup by the same timeouts).
//
// The sync link is trusted (no authentication): use an address on a link
// between the two nodes, or one only they can reach.
//
// Imports: gvs/lb.
package sessync

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvs/lb"
)

// RetryInterval is how often a backup repeats an unanswered resync
// request; HeartbeatInterval is the longest a master stays silent. Both
// bound how long a node whose link comes back runs without its peer's
// table: well under the time it needs to re-resolve its next hops and
// preempt (a second or more), at a cost of five tiny datagrams a second.
const (
	RetryInterval     = 200 * time.Millisecond
	HeartbeatInterval = 200 * time.Millisecond
)

// Dataplane is what a Syncer needs of the daemon's workers.
type Dataplane interface {
	// Workers is the number of workers.
	Workers() int
	// Rings returns worker i's export and import rings.
	Rings(i int) (export, imp *lb.SyncRing)
	// Dump returns up to max of worker i's sessions as records from slot
	// start, and the slot of the next page (-1 at the end).
	Dump(ctx context.Context, i, start, max int) ([]lb.SyncRecord, int, error)
	// Owner returns the worker that must hold rec.
	Owner(rec *lb.SyncRecord) int
}

// Config configures a Syncer.
type Config struct {
	Listen netip.AddrPort // this node's sync address (UDP)
	Peer   netip.AddrPort // the other node's
	// Interval is how often the export rings are drained and sent
	// (default 10 ms): the delay a session may wait before it is synced.
	Interval time.Duration
	// Refresh is the period of the master's full resyncs (default 60 s;
	// negative: none).
	Refresh time.Duration
	Log     *slog.Logger
}

// Stats are a Syncer's counters.
type Stats struct {
	Master                         bool
	RecordsSent, RecordsReceived   uint64
	DatagramsSent, DatagramsRcvd   uint64
	Lost                           uint64 // datagrams missing in a sequence
	ResyncsRequested, ResyncsSent  uint64 // asked for, and dumps streamed
	Ignored                        uint64 // records received while master
	ImportDrops                    uint64 // records lost to a full import ring
	SendErrors, BadDatagrams       uint64
	ResyncRecords, DroppedAsBackup uint64 // records of dumps; exported records discarded while backup
}

// Syncer is one node's end of session sync.
type Syncer struct {
	cfg  Config
	dp   Dataplane
	log  *slog.Logger
	boot uint64

	conn   *net.UDPConn
	master atomic.Bool
	resync chan struct{} // a dump is wanted (master)
	ask    chan struct{} // ask the peer for a dump (backup)
	stop   chan struct{}
	wg     sync.WaitGroup

	sendMu   sync.Mutex // guards seq, the send buffer, lastSent and the conn's writes
	seq      uint64
	buf      [maxPayload]byte
	lastSent time.Time // of the last records or dump datagram

	wantDump atomic.Bool // a backup's resync request is not answered yet

	// receiver state (receive goroutine only)
	peerBoot uint64
	nextSeq  uint64
	lastAsk  time.Time

	st struct {
		recSent, recRcvd, dgSent, dgRcvd, lost, asked, dumps, ignored, importDrops,
		sendErr, bad, dumpRecs, droppedBackup atomic.Uint64
	}
	startOnce, stopOnce sync.Once
}

// New returns a Syncer (not started).
func New(cfg Config, dp Dataplane) (*Syncer, error) {
	if !cfg.Listen.IsValid() || !cfg.Peer.IsValid() {
		return nil, errors.New("session sync: listen and peer addresses needed")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Millisecond
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	s := &Syncer{cfg: cfg, dp: dp, log: cfg.Log.With("sync", cfg.Listen.String()), boot: binary.BigEndian.Uint64(b[:]),
		resync: make(chan struct{}, 1), ask: make(chan struct{}, 1), stop: make(chan struct{})}
	return s, nil
}

// Start opens the socket and starts sending (as master) and receiving (as
// backup). A Syncer starts as backup and asks its peer for a resync.
func (s *Syncer) Start() error {
	var err error
	s.startOnce.Do(func() {
		s.conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(s.cfg.Listen))
		if err != nil {
			err = fmt.Errorf("session sync: listen on %v: %w", s.cfg.Listen, err)
			return
		}
		_ = s.conn.SetReadBuffer(4 << 20)
		_ = s.conn.SetWriteBuffer(4 << 20)
		s.wg.Add(2)
		go s.send()
		go s.receive()
		s.askResync()
		s.log.Info("session sync started", "peer", s.cfg.Peer, "interval", s.cfg.Interval, "refresh", s.cfg.Refresh)
	})
	return err
}

// Stop stops the Syncer and waits for its goroutines.
func (s *Syncer) Stop() {
	s.stopOnce.Do(func() {
		close(s.stop)
		if s.conn != nil {
			s.conn.Close()
		}
		s.wg.Wait()
	})
}

// SetMaster switches the role: a master sends its sessions, a backup
// installs its peer's. It never blocks.
func (s *Syncer) SetMaster(master bool) {
	if s.master.Swap(master) == master {
		return
	}
	s.log.Info("session sync role", "master", master)
	if master {
		// A new master has nothing to catch up on; its backup will ask.
		return
	}
	s.askResync()
}

// askResync makes the receiver ask the peer for a full resync (at most one
// pending); the request is repeated until a dump arrives.
func (s *Syncer) askResync() {
	s.wantDump.Store(true)
	select {
	case s.ask <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (s *Syncer) Stats() Stats {
	return Stats{
		Master: s.master.Load(), RecordsSent: s.st.recSent.Load(), RecordsReceived: s.st.recRcvd.Load(),
		DatagramsSent: s.st.dgSent.Load(), DatagramsRcvd: s.st.dgRcvd.Load(), Lost: s.st.lost.Load(),
		ResyncsRequested: s.st.asked.Load(), ResyncsSent: s.st.dumps.Load(), Ignored: s.st.ignored.Load(),
		ImportDrops: s.st.importDrops.Load(), SendErrors: s.st.sendErr.Load(), BadDatagrams: s.st.bad.Load(),
		ResyncRecords: s.st.dumpRecs.Load(), DroppedAsBackup: s.st.droppedBackup.Load(),
	}
}

// send is the sender goroutine: drain, batch, send; dumps on request and
// every Refresh while master; resync requests to the peer while backup.
func (s *Syncer) send() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	retry := time.NewTicker(RetryInterval)
	defer retry.Stop()
	var refresh <-chan time.Time
	if s.cfg.Refresh > 0 {
		t := time.NewTicker(s.cfg.Refresh)
		defer t.Stop()
		refresh = t.C
	}
	recs := make([]lb.SyncRecord, 0, MaxRecords)
	pop := make([]lb.SyncRecord, 512)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var dumping sync.WaitGroup
	defer dumping.Wait()
	dumpBusy := atomic.Bool{}
	startDump := func() {
		if !s.master.Load() || !dumpBusy.CompareAndSwap(false, true) {
			return
		}
		dumping.Add(1)
		go func() {
			defer dumping.Done()
			defer dumpBusy.Store(false)
			s.dump(ctx)
		}()
	}
	for {
		select {
		case <-s.stop:
			cancel()
			return
		case <-tick.C:
			master := s.master.Load()
			for i := 0; i < s.dp.Workers(); i++ {
				exp, _ := s.dp.Rings(i)
				if exp == nil {
					continue
				}
				for {
					n := exp.Pop(pop)
					if n == 0 {
						break
					}
					if !master {
						s.st.droppedBackup.Add(uint64(n))
						continue
					}
					for j := 0; j < n; j++ {
						recs = append(recs, pop[j])
						if len(recs) == MaxRecords {
							s.sendRecords(typeRecords, recs)
							recs = recs[:0]
						}
					}
				}
			}
			if len(recs) > 0 {
				s.sendRecords(typeRecords, recs)
				recs = recs[:0]
			} else if master && s.silentFor() >= HeartbeatInterval {
				s.sendRecords(typeRecords, nil) // a heartbeat: its sequence number shows gaps
			}
		case <-retry.C:
			if !s.master.Load() && s.wantDump.Load() {
				s.sendResyncRequest()
			}
		case <-s.resync:
			startDump()
		case <-refresh:
			startDump()
		case <-s.ask:
			if !s.master.Load() {
				s.sendResyncRequest()
			}
		}
	}
}

// dump streams every worker's sessions to the peer (a full resync).
func (s *Syncer) dump(ctx context.Context) {
	s.st.dumps.Add(1)
	total := 0
	recs := make([]lb.SyncRecord, 0, MaxRecords)
	for i := 0; i < s.dp.Workers(); i++ {
		for start := 0; start >= 0; {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			page, next, err := s.dp.Dump(pctx, i, start, 1024)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("session sync: resync dump", "worker", i, "error", err)
				}
				return
			}
			for _, r := range page {
				recs = append(recs, r)
				if len(recs) == MaxRecords {
					s.sendRecords(typeDump, recs)
					recs = recs[:0]
				}
			}
			total += len(page)
			start = next
			if !s.master.Load() {
				return
			}
		}
	}
	// The last dump datagram goes out even when empty: it answers the
	// backup's request.
	s.sendRecords(typeDump, recs)
	s.st.dumpRecs.Add(uint64(total))
	s.log.Debug("session sync: full resync sent", "sessions", total)
}

// sendRecords sends one datagram of records (typeRecords or typeDump).
func (s *Syncer) sendRecords(typ uint8, recs []lb.SyncRecord) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.seq++
	putHeader(s.buf[:], header{typ: typ, count: len(recs), boot: s.boot, seq: s.seq})
	for i := range recs {
		putRecord(s.buf[headerLen+i*recordLen:], &recs[i])
	}
	n := headerLen + len(recs)*recordLen
	s.lastSent = time.Now()
	if _, err := s.conn.WriteToUDPAddrPort(s.buf[:n], s.cfg.Peer); err != nil {
		if s.st.sendErr.Add(1) == 1 {
			s.log.Warn("session sync: send", "peer", s.cfg.Peer, "error", err)
		}
		return
	}
	s.st.dgSent.Add(1)
	s.st.recSent.Add(uint64(len(recs)))
}

// silentFor is the time since the last records or dump datagram.
func (s *Syncer) silentFor() time.Duration {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return time.Since(s.lastSent)
}

func (s *Syncer) sendResyncRequest() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	putHeader(s.buf[:], header{typ: typeResync, boot: s.boot})
	if _, err := s.conn.WriteToUDPAddrPort(s.buf[:headerLen], s.cfg.Peer); err != nil {
		s.st.sendErr.Add(1)
		return
	}
	s.st.asked.Add(1)
}

// receive is the receiver goroutine.
func (s *Syncer) receive() {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	var rec lb.SyncRecord
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-s.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if from.Addr().Unmap() != s.cfg.Peer.Addr().Unmap() {
			s.st.bad.Add(1) // only the configured peer speaks to us
			continue
		}
		h, err := parseHeader(buf[:n])
		if err != nil {
			s.st.bad.Add(1)
			continue
		}
		switch h.typ {
		case typeResync:
			if s.master.Load() {
				select {
				case s.resync <- struct{}{}:
				default:
				}
			}
			continue
		case typeRecords, typeDump:
		default:
			s.st.bad.Add(1)
			continue
		}
		s.st.dgRcvd.Add(1)
		if s.master.Load() {
			s.st.ignored.Add(uint64(h.count))
			continue
		}
		s.sequence(h)
		if h.typ == typeDump {
			s.wantDump.Store(false)
		}
		for i := 0; i < h.count; i++ {
			if !parseRecord(buf[headerLen+i*recordLen:], &rec) {
				s.st.bad.Add(1)
				continue
			}
			s.st.recRcvd.Add(1)
			w := s.dp.Owner(&rec)
			if _, imp := s.dp.Rings(w); imp == nil || !imp.Push(&rec) {
				s.st.importDrops.Add(1)
			}
		}
	}
}

// sequence checks a datagram's place in its sender's stream and asks for a
// resync when something was lost or the sender restarted.
func (s *Syncer) sequence(h header) {
	switch {
	case h.boot != s.peerBoot:
		// A peer heard for the first time, or restarted: its stream starts
		// here, and what it sent before is unknown — unless this is a
		// resync already.
		if h.typ != typeDump {
			s.log.Info("session sync: new stream from the peer; asking for a resync", "peer", s.cfg.Peer)
			s.askLimited(true)
		}
		s.peerBoot, s.nextSeq = h.boot, h.seq+1
		return
	case h.seq > s.nextSeq:
		s.st.lost.Add(h.seq - s.nextSeq)
		s.askLimited(false)
	}
	if h.seq >= s.nextSeq {
		s.nextSeq = h.seq + 1
	}
}

// askLimited asks for a resync now, or — within RetryInterval of the last
// ask, unless forced — leaves it to the retry, so that a burst of gaps
// costs one dump and no gap goes unanswered.
func (s *Syncer) askLimited(force bool) {
	if now := time.Now(); force || now.Sub(s.lastAsk) >= RetryInterval {
		s.lastAsk = now
		s.askResync()
		return
	}
	s.wantDump.Store(true)
}
