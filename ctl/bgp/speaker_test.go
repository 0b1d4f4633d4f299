package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// router is a plain gobgp server standing for the router: it accepts the
// speaker's session on 127.0.0.1 at a free port.
func router(t *testing.T) (*server.BgpServer, int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelError)
	r := server.NewBgpServer(server.LoggerOption(slog.Default(), lvl))
	go r.Serve()
	t.Cleanup(r.Stop)
	ctx := context.Background()
	if err := r.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: 65000, RouterId: "127.0.0.2", ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 65010},
		Transport: &api.Transport{PassiveMode: true},
	}}); err != nil {
		t.Fatal(err)
	}
	return r, port
}

// routes returns the router's paths: prefix → AS path.
func routes(t *testing.T, r *server.BgpServer) map[string]string {
	out := map[string]string{}
	err := r.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgppkt.RF_IPv4_UC},
		func(p bgppkt.NLRI, paths []*apiutil.Path) {
			for _, pa := range paths {
				as := ""
				for _, a := range pa.Attrs {
					if a.GetType() == bgppkt.BGP_ATTR_TYPE_AS_PATH {
						as = a.String()
					}
				}
				out[p.String()] = as
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSpeakerAnnounceWithdrawDrain(t *testing.T) {
	r, port := router(t)
	s := New(Config{
		LocalAS: 65010, RouterID: netip.MustParseAddr("127.0.0.1"),
		Neighbors: []Neighbor{{Addr: netip.MustParseAddr("127.0.0.1"), AS: 65000, Port: port, Hold: 3 * time.Second}},
		Drain:     Attrs{Prepend: 2},
	}, slog.Default())
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	waitFor(t, "session", func() error {
		if st := s.Status(); st.Sessions[0].State != "established" {
			return fmt.Errorf("state %s", st.Sessions[0].State)
		}
		return nil
	})
	p := netip.MustParsePrefix("198.18.2.10/32")
	q := netip.MustParsePrefix("198.18.2.11/32")
	s.Apply([]Decision{{Prefix: p, Announce: true, Reason: "healthy"}, {Prefix: q, Reason: "no healthy real"}})
	waitFor(t, "announcement", func() error {
		rs := routes(t, r)
		if _, ok := rs[p.String()]; !ok || len(rs) != 1 {
			return fmt.Errorf("router has %v", rs)
		}
		return nil
	})
	st := s.Status()
	if len(st.Prefixes) != 2 || !st.Prefixes[0].Announced || st.Prefixes[1].Announced || st.Prefixes[1].Reason != "no healthy real" {
		t.Fatalf("status %+v", st.Prefixes)
	}
	if err := s.SetDrain(true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "drain prepends", func() error {
		if as := routes(t, r)[p.String()]; strings.Count(as, "65010") != 3 {
			return fmt.Errorf("AS path %q", as)
		}
		return nil
	})
	s.Apply([]Decision{{Prefix: p, Reason: "dataplane not polling"}, {Prefix: q, Reason: "no healthy real"}})
	waitFor(t, "withdrawal", func() error {
		if rs := routes(t, r); len(rs) != 0 {
			return fmt.Errorf("router has %v", rs)
		}
		return nil
	})
	if st := s.Status(); st.Prefixes[0].Transitions != 2 || st.Prefixes[0].Reason != "dataplane not polling" {
		t.Fatalf("status %+v", st.Prefixes[0])
	}
	s.Apply([]Decision{{Prefix: p, Announce: true, Reason: "healthy"}})
	waitFor(t, "announcement again", func() error {
		if rs := routes(t, r); len(rs) != 1 {
			return fmt.Errorf("router has %v", rs)
		}
		return nil
	})
	if n := s.WithdrawAll("gvsd is stopping"); n != 1 {
		t.Fatalf("WithdrawAll withdrew %d", n)
	}
	waitFor(t, "withdrawal on stop", func() error {
		if rs := routes(t, r); len(rs) != 0 {
			return fmt.Errorf("router has %v", rs)
		}
		return nil
	})
	s.Apply([]Decision{{Prefix: p, Announce: true}}) // stopped: ignored
	if st := s.Status(); st.Prefixes[0].Announced {
		t.Fatal("announced after WithdrawAll")
	}
}
