package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gvs/ctl/api"
	"gvs/lb"
)

// This file lists the workers' sessions for the sessions operation. Session
// tables belong to their workers: the listing asks each worker for a page
// through pmd's dump requests, which a worker serves between bursts, so a
// listing never stalls forwarding nor races with it. A page spans workers;
// its cursor is "WORKER:SLOT". Persistence templates and reverse (reply)
// entries are not listed; a session is shown once, by its forward entry.

// DefaultSessionLimit is the page size when a filter gives none.
const DefaultSessionLimit = api.MaxSessions

// sessionMatch is a parsed api.SessionFilter.
type sessionMatch struct {
	svc      *lb.ServiceKey
	realAddr netip.Addr
	realPort int // -1: any
	client   netip.Addr
	cliPort  int // -1: any
}

func parseSessionFilter(f api.SessionFilter) (m sessionMatch, err error) {
	m.realPort, m.cliPort = -1, -1
	if f.Service != nil {
		k, err := ParseServiceID(*f.Service)
		if err != nil {
			return m, err
		}
		m.svc = &k
	}
	if f.Real != "" {
		if m.realAddr, m.realPort, err = addrMaybePort(f.Real); err != nil {
			return m, api.Errorf(api.CodeBadRequest, "sessions: real %q: %v", f.Real, err)
		}
	}
	if f.Client != "" {
		if m.client, m.cliPort, err = addrMaybePort(f.Client); err != nil {
			return m, api.Errorf(api.CodeBadRequest, "sessions: client %q: %v", f.Client, err)
		}
	}
	return m, nil
}

// addrMaybePort reads ADDR, ADDR:PORT or [ADDR]:PORT; port -1 when absent.
func addrMaybePort(s string) (netip.Addr, int, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), int(ap.Port()), nil
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.Addr{}, 0, errors.New("want ADDR or ADDR:PORT")
	}
	return a.Unmap(), -1, nil
}

func parseCursor(c string, workers int) (w, slot int, err error) {
	if c == "" {
		return 0, 0, nil
	}
	ws, ss, ok := strings.Cut(c, ":")
	w, err1 := strconv.Atoi(ws)
	slot, err2 := strconv.Atoi(ss)
	if !ok || err1 != nil || err2 != nil || w < 0 || w >= workers || slot < 0 {
		return 0, 0, api.Errorf(api.CodeBadRequest, "sessions: bad cursor %q (use the next of the previous page)", c)
	}
	return w, slot, nil
}

func entryAddr(b *[16]byte, family uint8) netip.Addr {
	if family == lb.FamilyV4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(*b)
}

// matcher returns the test a worker applies to its entries. It runs on the
// worker's goroutine: it reads only snap (immutable) and m.
func matcher(m sessionMatch, snap *lb.Snapshot, now uint32) func(*lb.Entry) bool {
	return func(e *lb.Entry) bool {
		if e.Flags&lb.EntryPersist != 0 || e.Expire < now {
			return false // templates; dead entries not yet collected
		}
		if m.client.IsValid() {
			if entryAddr(&e.Key.Src, e.Key.Family) != m.client || (m.cliPort >= 0 && int(e.Key.SPort) != m.cliPort) {
				return false
			}
		}
		if m.svc == nil && !m.realAddr.IsValid() {
			return true
		}
		r := snap.Real(e.RealID)
		if r == nil {
			return false
		}
		if m.svc != nil && r.Key.Service != *m.svc {
			return false
		}
		if m.realAddr.IsValid() {
			port := int(r.Port)
			if port == 0 {
				port = int(e.Key.DPort)
			}
			if r.Key.Addr != m.realAddr || (m.realPort >= 0 && port != m.realPort) {
				return false
			}
		}
		return true
	}
}

var stateNames = [...]string{
	lb.StateNone:        "NONE",
	lb.StateSynSent:     "SYN_SENT",
	lb.StateSynRecv:     "SYN_RECV",
	lb.StateEstablished: "ESTABLISHED",
	lb.StateFinWait:     "FIN_WAIT",
	lb.StateClose:       "CLOSE",
	lb.StateUDP:         "UDP",
	lb.StateICMP:        "ICMP",
}

// StateName names a session state as ipvsadm -Lc does.
func StateName(s uint8) string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("STATE(%d)", s)
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	}
	return strconv.Itoa(int(p))
}

// toSession converts a worker's entry for the API; the real (and the
// fullnat local address) come from snap.
func toSession(worker int, e *lb.Entry, snap *lb.Snapshot, now uint32) api.Session {
	fam := e.Key.Family
	s := api.Session{
		Worker: worker,
		Proto:  protoName(e.Key.Proto),
		Client: netip.AddrPortFrom(entryAddr(&e.Key.Src, fam), e.Key.SPort).String(),
		VIP:    netip.AddrPortFrom(entryAddr(&e.Key.Dst, fam), e.Key.DPort).String(),
		State:  StateName(e.State),
	}
	if e.Expire > now {
		s.Expires = int(e.Expire - now)
	}
	if r := snap.Real(e.RealID); r != nil {
		port := r.Port
		if port == 0 {
			port = e.Key.DPort
		}
		s.Real = netip.AddrPortFrom(r.Key.Addr, port).String()
		if r.Method == lb.MethodFullNAT && int(r.Svc) < len(snap.Services) {
			if las := snap.Services[r.Svc].LocalAddrs; int(e.LAddr) < len(las) {
				s.Local = netip.AddrPortFrom(entryAddr(&las[e.LAddr], fam), e.LPort).String()
			}
		}
	}
	return s
}

// Sessions returns a page of the workers' sessions that match f: at most
// f.Limit (default and bound api.MaxSessions), from f.Cursor on; the page's
// Next continues it, and is empty on the last page. While workers run the
// listing is not a snapshot: sessions created or removed meanwhile may be
// missed or, across pages, seen twice.
func (d *Daemon) Sessions(ctx context.Context, f api.SessionFilter) (api.SessionPage, error) {
	page := api.SessionPage{Sessions: []api.Session{}}
	if f.Limit < 0 {
		return page, api.Errorf(api.CodeBadRequest, "sessions: negative limit %d", f.Limit)
	}
	limit := min(f.Limit, api.MaxSessions)
	if limit == 0 {
		limit = DefaultSessionLimit
	}
	m, err := parseSessionFilter(f)
	if err != nil {
		return page, err
	}
	if m.svc != nil {
		if _, err := d.filterKey(f.Service); err != nil {
			return page, err
		}
	}
	workers := d.engine.Workers()
	wi, slot, err := parseCursor(f.Cursor, len(workers))
	if err != nil {
		return page, err
	}
	snap := d.bal.Load()
	now := uint32(time.Now().Unix())
	match := matcher(m, snap, now)
	for wi < len(workers) && len(page.Sessions) < limit {
		ents, next, err := workers[wi].DumpSessions(ctx, slot, limit-len(page.Sessions), match)
		if err != nil {
			return api.SessionPage{}, api.Errorf(api.CodeInternal, "sessions: worker %d: %v", wi, err)
		}
		for i := range ents {
			page.Sessions = append(page.Sessions, toSession(wi, &ents[i], snap, now))
		}
		if next < 0 {
			wi, slot = wi+1, 0
		} else {
			slot = next
		}
	}
	if wi < len(workers) {
		page.Next = fmt.Sprintf("%d:%d", wi, slot)
	}
	return page, nil
}
