package main

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gvs/ctl/config"
	"gvs/ctl/daemon"
	"gvs/ctl/nexthop"
	"gvs/ctl/server"
	"gvs/driver"
	"gvs/driver/mem"
	"gvs/lb"
)

// This file runs gvsctl against the real gvsd core (ctl/daemon on the mem
// driver) behind the real control socket (ctl/server).

type staticHops struct{}

func (staticHops) Resolve(addrs []netip.Addr) (map[netip.Addr]lb.NextHop, []nexthop.Problem) {
	m := map[netip.Addr]lb.NextHop{}
	for _, a := range addrs {
		b := a.As16()
		m[a] = lb.NextHop{MAC: [6]byte{2, 0, 0, 0, b[14], b[15]}, OK: true}
	}
	return m, nil
}

const e2eConfig = `
[global]
workers = 1
sessions = 4096

[[port]]
name = "mem0"

[[service]]
proto = "tcp"
vip = "198.18.0.99"
port = 80
  [[service.real]]
  addr = "198.18.1.99"
`

// startDaemon runs a daemon with e2eConfig and its control socket, and
// returns the socket's path.
func startDaemon(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gvsctl-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "gvsd.toml")
	if err := os.WriteFile(path, []byte(e2eConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func(p config.Port, queues int, _ *slog.Logger) (driver.Port, error) {
		return mem.New(mem.Config{Name: p.Name, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xaa}, Queues: queues, RingSize: 256})
	}
	d, err := daemon.New(daemon.Options{Config: cfg, Open: open, Hops: staticHops{}, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(func() { d.Close() })
	s, err := server.Listen(filepath.Join(dir, "gvsd.sock"), "", d, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Path()
}

func TestAgainstDaemon(t *testing.T) {
	sock := startDaemon(t)
	gvsctl := func(stdin, args string) (int, string, string) {
		var out, errb strings.Builder
		code := run(append([]string{"--socket", sock}, strings.Fields(args)...), strings.NewReader(stdin), &out, &errb)
		return code, out.String(), errb.String()
	}
	must := func(args string) string {
		t.Helper()
		code, out, errs := gvsctl("", args)
		if code != 0 {
			t.Fatalf("gvsctl %s: exit %d: %s", args, code, errs)
		}
		return out
	}

	// Build a table the ipvsadm way, with gvs's methods.
	must("-D -t 198.18.0.99:80")
	must("-A -t 198.18.0.10:80 -s wrr -p 300")
	must("-a -t 198.18.0.10:80 -r 198.18.1.11:8080 -m -w 3")
	must("-a -t 198.18.0.10:80 -r 198.18.1.12:8080 -m -w 2")
	must("-a -t 198.18.0.10:80 -r 198.18.1.13 -w 1")
	must("-A -u [2001:db8::53]:53 -s sh -b sh-port")
	code, _, errs := gvsctl("", "-a -u [2001:db8::53]:53 -r [2001:db8:1::11] -i")
	if code != 1 || !strings.HasPrefix(errs, "gvsctl: ") || !strings.Contains(errs, "local address") {
		t.Errorf("tunnel real without a local address: exit %d, %q", code, errs)
	}
	must("-E -u [2001:db8::53]:53 -s sh -b sh-port --laddr 2001:db8::9")
	must("-a -u [2001:db8::53]:53 -r [2001:db8:1::11] -i")
	must("-A --any 198.18.0.20:0 -s mh --fullnat --laddr 198.18.9.1 --maglev-size 251")
	must("-a --any 198.18.0.20:0 -r 198.18.1.21 -w 5")
	must("-a --any 198.18.0.20:0 -r 198.18.1.22 --l3dsr 12")
	must("-e -t 198.18.0.10:80 -r 198.18.1.12:8080 --state drain")
	must("-e -t 198.18.0.10:80 -r 198.18.1.12:8080 -w 4")

	code, _, errs = gvsctl("", "-A -t 198.18.0.10:80")
	if code != 1 || !strings.Contains(errs, "already exists") {
		t.Errorf("duplicate service: exit %d, %q", code, errs)
	}

	list := must("-Ln")
	golden(t, "e2e_list.golden", []byte(list))
	save := must("-S")
	golden(t, "e2e_save.golden", []byte(save))
	toml := must("-S --format toml")

	// -C then -R of the saved rules reproduces the services.
	must("-C")
	if out := must("-Ln"); strings.Count(out, "\n") != 3 {
		t.Errorf("after -C:\n%s", out)
	}
	code, _, errs = gvsctl(save, "-R")
	if code != 0 {
		t.Fatalf("-R: exit %d: %s", code, errs)
	}
	if out := must("-Ln"); out != list {
		t.Errorf("-R did not reproduce the table:\n%s\nwant\n%s", out, list)
	}
	if out := must("-S"); out != save {
		t.Errorf("-S after -R:\n%s\nwant\n%s", out, save)
	}
	if out := must("-S --format toml"); out != toml {
		t.Errorf("the configuration after -R differs:\n%s\nwant\n%s", out, toml)
	}

	// Reads.
	if out := must("-Ln --stats -t 198.18.0.10:80"); !strings.HasPrefix(out, "Prot LocalAddress:Port               Conns") {
		t.Errorf("--stats of one service:\n%s", out)
	}
	must("-Z")
	if out := must("-Lnc"); !strings.HasPrefix(out, "IPVS connection entries\n") {
		t.Errorf("-Lnc:\n%s", out)
	}
	if out := must("stats"); !strings.Contains(out, "tcp 198.18.0.10:80") || !strings.Contains(out, "mem0") {
		t.Errorf("stats:\n%s", out)
	}
	if out := must("version"); !strings.HasPrefix(out, "gvsd ") {
		t.Errorf("version: %q", out)
	}

	// reload discards the runtime changes: the file's service is back.
	must("reload")
	if out := must("-Ln"); !strings.Contains(out, "TCP  198.18.0.99:80 wlc") || strings.Contains(out, "198.18.0.10") {
		t.Errorf("after reload:\n%s", out)
	}
}
