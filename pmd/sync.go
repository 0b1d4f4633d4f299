package pmd

import (
	"sync/atomic"

	"gvs/lb"
)

// This file is the workers' side of session sync. A worker owns its
// session table, so the sessions a backup learns from its master reach
// the table the way a dump request leaves it: through the worker itself.
// The sync receiver (one producer) queues records in the worker's import
// ring; the worker (the consumer) installs at most ImportBudget of them per
// loop iteration (ImportBudgetIdle when it received nothing), between
// bursts. In the other direction the pipeline pushes the master's new,
// changed and removed sessions into the worker's export ring, which the
// sync sender drains. No locks; a full ring drops the record and counts it.

// ImportBudget is how many sync records a busy worker installs per loop
// iteration; ImportBudgetIdle is the budget of an iteration that received
// nothing.
const (
	ImportBudget     = 64
	ImportBudgetIdle = 1024
)

// syncCounters are a worker's import counters (written by the worker).
type syncCounters struct {
	imported, updated, closed, skipped, full atomic.Uint64
}

// SyncStats are a worker's session sync counters.
type SyncStats struct {
	// Imported, Updated, Closed: records installed, applied to a session
	// already there, or removing one. Skipped: records naming a service,
	// real or local address this node does not have, or colliding with
	// one of its sessions. TableFull: no room left.
	Imported, Updated, Closed, Skipped, TableFull uint64
	// ExportOverflows and ImportOverflows count records lost to a full
	// ring; ExportQueued and ImportQueued what waits in them.
	ExportOverflows, ImportOverflows uint64
	ExportQueued, ImportQueued       int
}

// SyncRings returns the worker's session sync rings: export (the worker
// produces, the sync sender consumes) and import (the sync receiver
// produces, the worker consumes). Both are nil unless Config.SyncRing is
// set.
func (w *Worker) SyncRings() (export, imp *lb.SyncRing) { return w.exp, w.imp }

// SyncStats returns the worker's session sync counters.
func (w *Worker) SyncStats() SyncStats {
	s := SyncStats{
		Imported: w.syncSt.imported.Load(), Updated: w.syncSt.updated.Load(), Closed: w.syncSt.closed.Load(),
		Skipped: w.syncSt.skipped.Load(), TableFull: w.syncSt.full.Load(),
	}
	if w.exp != nil {
		s.ExportOverflows, s.ExportQueued = w.exp.Overflows(), w.exp.Len()
		s.ImportOverflows, s.ImportQueued = w.imp.Overflows(), w.imp.Len()
	}
	return s
}

// importSync installs queued records (on the worker's goroutine).
func (w *Worker) importSync(now int64, idle bool) {
	budget := ImportBudget
	if idle {
		budget = ImportBudgetIdle
	}
	n := w.imp.Pop(w.impBuf[:budget])
	if n == 0 {
		return
	}
	st := w.pipe.Import(now, w.impBuf[:n])
	w.syncSt.imported.Add(st.New)
	w.syncSt.updated.Add(st.Updated)
	w.syncSt.closed.Add(st.Closed)
	w.syncSt.skipped.Add(st.Skipped)
	w.syncSt.full.Add(st.Full)
}
