package daemon

import (
	"context"

	"gvs/ctl/config"
	"gvs/ctl/sessync"
	"gvs/lb"
	"gvs/pipeline"
)

// This file ties session sync (ctl/sessync, [session_sync]) to the
// workers and to VRRP: the Syncer sends while the named instance is master
// (the owner callback, vrrp.go) and installs the peer's sessions
// otherwise. The workers' rings come from pmd (Config.SyncRing); a full
// resync reads their tables through the budgeted dump path.

// newSessionSync creates the Syncer of cfg (after the engine).
func (d *Daemon) newSessionSync(cfg *config.Config) error {
	s := cfg.SessionSync
	if s == nil {
		return nil
	}
	sy, err := sessync.New(sessync.Config{Listen: s.Listen, Peer: s.Peer, Interval: s.Interval, Refresh: s.Refresh, Log: d.log},
		syncDataplane{d})
	if err != nil {
		return err
	}
	d.syncer, d.syncVRRP = sy, s.VRRP
	return nil
}

// syncRing is the workers' sync ring size (0: no session sync).
func syncRing(cfg *config.Config) int {
	if cfg.SessionSync == nil {
		return 0
	}
	return cfg.SessionSync.Ring
}

// syncRole tells the Syncer whether this node is master (from the owner
// callback; called with d.mu held, never blocks).
func (d *Daemon) syncRole(instance string, master bool) {
	if d.syncer != nil && instance == d.syncVRRP {
		d.syncer.SetMaster(master)
	}
}

// syncStats adds the session sync counters to the workers' (api.Stats).
func (d *Daemon) syncStats() map[string]uint64 {
	if d.syncer == nil {
		return nil
	}
	st := d.syncer.Stats()
	m := map[string]uint64{
		"records_sent": st.RecordsSent, "records_received": st.RecordsReceived,
		"datagrams_sent": st.DatagramsSent, "datagrams_received": st.DatagramsRcvd,
		"lost_datagrams": st.Lost, "resyncs_requested": st.ResyncsRequested, "resyncs_sent": st.ResyncsSent,
		"resync_records": st.ResyncRecords, "ignored_as_master": st.Ignored, "import_ring_drops": st.ImportDrops,
		"export_dropped_as_backup": st.DroppedAsBackup, "send_errors": st.SendErrors, "bad_datagrams": st.BadDatagrams,
	}
	if st.Master {
		m["master"] = 1
	} else {
		m["master"] = 0
	}
	if d.engine != nil {
		for _, w := range d.engine.Workers() {
			ws := w.SyncStats()
			m["imported"] += ws.Imported
			m["import_updates"] += ws.Updated
			m["import_closed"] += ws.Closed
			m["import_skipped"] += ws.Skipped
			m["import_table_full"] += ws.TableFull
			m["export_ring_overflows"] += ws.ExportOverflows
			m["import_ring_overflows"] += ws.ImportOverflows
		}
	}
	return m
}

// syncDataplane is the Syncer's view of the workers.
type syncDataplane struct{ d *Daemon }

// Workers implements sessync.Dataplane.
func (s syncDataplane) Workers() int { return len(s.d.engine.Workers()) }

// Rings implements sessync.Dataplane: the worker's pmd rings.
func (s syncDataplane) Rings(i int) (*lb.SyncRing, *lb.SyncRing) {
	return s.d.engine.Workers()[i].SyncRings()
}

// Dump implements sessync.Dataplane through the worker's budgeted dump
// (persistence templates left out).
func (s syncDataplane) Dump(ctx context.Context, i, start, max int) ([]lb.SyncRecord, int, error) {
	ents, next, err := s.d.engine.Workers()[i].DumpSessions(ctx, start, max, func(e *lb.Entry) bool {
		return e.Flags&lb.EntryPersist == 0
	})
	if err != nil {
		return nil, -1, err
	}
	snap := s.d.bal.Load()
	out := make([]lb.SyncRecord, 0, len(ents))
	for k := range ents {
		if r, ok := pipeline.RecordOf(snap, &ents[k]); ok {
			out = append(out, r)
		}
	}
	return out, next, nil
}

// Owner implements sessync.Dataplane with the pipeline's ownership rule.
func (s syncDataplane) Owner(rec *lb.SyncRecord) int {
	return pipeline.SyncOwner(s.d.bal.Load(), rec, len(s.d.engine.Workers()))
}
