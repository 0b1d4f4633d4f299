package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	gapi "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"gvs/ctl/api"
	"gvs/ctl/config"
)

// bgpRouter is an in-process gobgp standing for the router.
func bgpRouter(t *testing.T) (*server.BgpServer, int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelError)
	r := server.NewBgpServer(server.LoggerOption(slog.New(slog.DiscardHandler), lvl))
	go r.Serve()
	t.Cleanup(r.Stop)
	if err := r.StartBgp(context.Background(), &gapi.StartBgpRequest{Global: &gapi.Global{
		Asn: 65000, RouterId: "127.0.0.2", ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddPeer(context.Background(), &gapi.AddPeerRequest{Peer: &gapi.Peer{
		Conf: &gapi.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 65010}, Transport: &gapi.Transport{PassiveMode: true},
	}}); err != nil {
		t.Fatal(err)
	}
	return r, port
}

func routerPrefixes(t *testing.T, r *server.BgpServer) []string {
	var out []string
	if err := r.ListPath(apiutil.ListPathRequest{TableType: gapi.TableType_TABLE_TYPE_GLOBAL, Family: bgppkt.RF_IPv4_UC},
		func(p bgppkt.NLRI, _ []*apiutil.Path) { out = append(out, p.String()) }); err != nil {
		t.Fatal(err)
	}
	return out
}

func eventually(t *testing.T, what string, cond func() error) {
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

// The daemon announces the VIP while its service has min_healthy reals,
// withdraws it when it has fewer, and on Close.
func TestBGPAnnouncement(t *testing.T) {
	r, port := bgpRouter(t)
	doc := strings.Replace(baseConfig, `method = "nat"`, "method = \"nat\"\nannounce = true\nmin_healthy = 2", 1) +
		fmt.Sprintf("\n[bgp]\nlocal_as = 65010\nrouter_id = \"127.0.0.1\"\nwithdraw_delay = \"0s\"\n  [[bgp.neighbor]]\n  address = \"127.0.0.1\"\n  as = 65000\n  port = %d\n", port)
	d, _ := startDaemon(t, doc)
	has := func(want bool) func() error {
		return func() error {
			ps := routerPrefixes(t, r)
			if got := len(ps) == 1 && ps[0] == "198.18.250.1/32"; got != want {
				return fmt.Errorf("router has %v; speaker %+v", ps, d.BGP())
			}
			return nil
		}
	}
	eventually(t, "announced", has(true))
	if st := d.BGP(); !st.Enabled || st.Sessions[0].State != "established" || !st.Prefixes[0].Announced {
		t.Fatalf("status %+v", st)
	}
	down := "down"
	if err := d.EditReal(api.RealArgs{Service: api.ServiceID{Proto: "tcp", VIP: "198.18.250.1", Port: 80},
		Real: config.Real{Addr: "198.18.1.11", Port: 8080, State: down}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "withdrawn below min_healthy", has(false))
	if p := d.BGP().Prefixes[0]; p.Announced || !strings.Contains(p.Reason, "1 healthy reals, fewer than min_healthy 2") {
		t.Fatalf("prefix %+v", p)
	}
	if err := d.EditReal(api.RealArgs{Service: api.ServiceID{Proto: "tcp", VIP: "198.18.250.1", Port: 80},
		Real: config.Real{Addr: "198.18.1.11", Port: 8080, State: "up"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "announced again", has(true))
	if err := d.BGPDrain(true); err != nil || !d.BGP().Drained {
		t.Fatalf("drain: %v %+v", err, d.BGP())
	}
	d.StopBGP()
	eventually(t, "withdrawn on stop", has(false))
	if p := d.BGP().Prefixes[0]; p.Announced || p.Reason != "gvsd is stopping" {
		t.Fatalf("prefix after stop %+v", p)
	}
}
