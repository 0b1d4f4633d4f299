package pmd

import (
	"context"
	"errors"
	"time"

	"gvs/lb"
)

// This file lets the control plane list a worker's sessions. A session table
// belongs to its worker's goroutine: nobody else may read it while the worker
// runs. So a reader posts a request (an atomic pointer the worker loads once
// per loop iteration, not per packet) and the worker serves it between
// bursts, scanning at most DumpBudget slots per visit (DumpBudgetIdle when
// the iteration received nothing) and resuming at a cursor on the next one,
// so that a dump never stalls forwarding. Before the
// engine starts and after its workers have stopped, the table is read
// directly on the caller's goroutine.
//
// A dump taken while the worker runs is not a snapshot: sessions inserted or
// removed between visits may be missed or, across pages, listed twice (as
// with /proc/net/ip_vs_conn).

// DumpBudget is how many session table slots a busy worker scans for a
// pending dump request per loop iteration: 16 KiB of entries, about the
// cost of a burst. DumpBudgetIdle is the budget of an iteration that
// received nothing (the worker would back off anyway).
const (
	DumpBudget     = 256
	DumpBudgetIdle = 4096
)

// dumpReq is one pending request for a page of a worker's sessions.
type dumpReq struct {
	start, max int
	match      func(*lb.Entry) bool
	cursor     int // next slot to scan
	out        []lb.Entry
	next       int // after completion: where the next page starts, -1 at the end
	done       chan struct{}
}

// serve scans at most budget slots (budget < 0: all) of the worker's table
// for r and reports whether r is complete. It runs on the worker's goroutine
// (or on the caller's when the worker is not running).
func (w *Worker) serve(r *dumpReq, budget int) bool {
	t := w.pipe.Sessions()
	n := t.Cap()
	i := r.cursor
	for end := i + budget; i < n && (budget < 0 || i < end); i++ {
		e := t.Entry(int32(i))
		// Removed slots are zeroed: family 0 means empty. Reverse entries
		// (nat and fullnat replies) are listed through their forward entry.
		if e.Key.Family == 0 || e.Flags&lb.EntryReverse != 0 {
			continue
		}
		if r.match != nil && !r.match(e) {
			continue
		}
		r.out = append(r.out, *e)
		if len(r.out) == r.max {
			i++
			if i == n {
				i = -1
			}
			r.next = i
			return true
		}
	}
	r.cursor = i
	if i >= n {
		r.next = -1
		return true
	}
	return false
}

// serveDump gives a pending request one visit; called once per loop
// iteration by the worker when its request pointer is set.
func (w *Worker) serveDump(r *dumpReq, budget int) {
	if w.serve(r, budget) {
		w.dump.CompareAndSwap(r, nil)
		close(r.done)
	}
}

// ErrBadDump is returned by DumpSessions for a negative start or a
// non-positive max.
var ErrBadDump = errors.New("pmd: session dump needs start >= 0 and max > 0")

// DumpSessions returns up to max of the worker's sessions (forward entries:
// connections and persistence templates; reverse entries are left out) for
// which match reports true, scanning the table from slot start. next is the
// slot the following page starts at, or -1 when the table has been scanned
// to its end. match runs on the worker's goroutine between bursts: it must
// be quick, must not block and must not keep the pointer it is given.
//
// While the worker runs, the request is served in slices of DumpBudget
// (DumpBudgetIdle) slots per loop iteration; ctx bounds the wait. Before Start and after Stop the
// table is read directly (the caller must not be polling the worker with Poll
// at the same time). Requests to one worker are served one at a time.
func (w *Worker) DumpSessions(ctx context.Context, start, max int, match func(*lb.Entry) bool) (ents []lb.Entry, next int, err error) {
	if start < 0 || max <= 0 {
		return nil, -1, ErrBadDump
	}
	r := &dumpReq{start: start, max: max, match: match, cursor: start, out: make([]lb.Entry, 0, min(max, 1024)), done: make(chan struct{})}
	if start >= w.pipe.Sessions().Cap() {
		return nil, -1, nil
	}
	w.dumpMu.Lock()
	defer w.dumpMu.Unlock()

	w.e.runMu.Lock()
	if !w.e.started {
		// Not started: Start waits for runMu, so the table is ours.
		w.serve(r, -1)
		w.e.runMu.Unlock()
		return r.out, r.next, nil
	}
	w.e.runMu.Unlock()
	if w.exited.Load() {
		w.serve(r, -1)
		return r.out, r.next, nil
	}
	w.dump.Store(r)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.done:
			return r.out, r.next, nil
		case <-ctx.Done():
			// Withdraw the request; if the worker is in the middle of a
			// visit it finishes writing into r, which nobody reads.
			w.dump.CompareAndSwap(r, nil)
			return nil, -1, ctx.Err()
		case <-tick.C:
			// The worker serves a pending request before it exits; one
			// posted after its last look is withdrawn and served here.
			if w.exited.Load() && w.dump.CompareAndSwap(r, nil) {
				w.serve(r, -1)
				return r.out, r.next, nil
			}
		}
	}
}
