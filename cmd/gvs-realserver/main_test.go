package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"gvs/tests/lab"
)

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"setup"},
		{"frobnicate", "--method", "dr", "--vip", "198.18.100.1", "--dev", "eth0"},
		{"setup", "teardown", "--method", "dr", "--vip", "198.18.100.1", "--dev", "eth0"},
		{"setup", "--method", "nat", "--vip", "198.18.100.1", "--dev", "eth0"},
		{"setup", "--method", "dr", "--vip", "198.18.100.300", "--dev", "eth0"},
		{"setup", "--method", "dr", "--dev", "eth0"},
		{"setup", "--method", "dr", "--vip", "198.18.100.1"},
		{"setup", "--method", "l3dsr", "--vip", "198.18.100.1", "--dev", "eth0", "--addr", "198.18.0.2"},
		{"setup", "--method", "l3dsr", "--dscp", "64=198.18.100.1", "--dev", "eth0", "--addr", "198.18.0.2"},
		{"setup", "--method", "l3dsr", "--dscp", "10", "--dev", "eth0", "--addr", "198.18.0.2"},
		{"setup", "--method", "tunnel", "--vip", "198.18.100.1", "--dev", "eth0"},
		{"setup", "--method", "dr", "--vip", "198.18.100.1", "--dev", "eth0", "--dscp", "10=198.18.100.1"},
		{"setup", "--method", "dr", "--vip", "198.18.100.1", "--dev", "eth0", "--bogus"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("run(%q) = %d, want 2; stderr:\n%s", args, code, errb.String())
		}
		if !strings.Contains(errb.String(), "usage: gvs-realserver") {
			t.Errorf("run(%q): no usage message on stderr:\n%s", args, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "--dscp") {
		t.Errorf("--help: %d\n%s", code, errb.String())
	}
}

// TestSetupTeardownInNamespace runs the command's code inside a lab
// namespace: dr setup and teardown succeed, a tunnel setup on a missing
// interface fails with status 1 and a clear message.
func TestSetupTeardownInNamespace(t *testing.T) {
	l := lab.New(t)
	a, b := l.NS("a"), l.NS("real")
	l.Veth(a, "eth0", b, "eth0")
	state := t.TempDir()
	runIn := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		var code int
		b.Do(func() error { code = run(append(args, "--state-dir", state), &out, &errb); return nil })
		return code, out.String(), errb.String()
	}
	code, out, errs := runIn("setup", "--method", "dr", "--vip", "198.18.100.1,2001:db8:100::1", "--dev", "eth0")
	if code != 0 {
		t.Fatalf("setup: %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "added 198.18.100.1 to lo") || b.SysctlValue("net.ipv4.conf.eth0.arp_ignore") != "1" {
		t.Fatalf("setup did not do its work:\n%s", out)
	}
	if lo, _ := b.Run("ip", "-o", "addr", "show", "dev", "lo"); !strings.Contains(lo, "2001:db8:100::1/128") {
		t.Fatalf("VIP not on lo:\n%s", lo)
	}
	code, out, errs = runIn("teardown", "--method", "dr", "--vip", "198.18.100.1", "--vip", "2001:db8:100::1", "--dev", "eth0")
	if code != 0 {
		t.Fatalf("teardown: %d\n%s%s", code, out, errs)
	}
	if lo, _ := b.Run("ip", "-o", "addr", "show", "dev", "lo"); strings.Contains(lo, "198.18.100.1") || strings.Contains(lo, "2001:db8:100::1") {
		t.Fatalf("VIP left on lo:\n%s", lo)
	}
	if v := b.SysctlValue("net.ipv4.conf.eth0.arp_ignore"); v != "0" {
		t.Fatalf("arp_ignore not restored: %s", v)
	}
	code, _, errs = runIn("setup", "--method", "tunnel", "--vip", "198.18.100.1", "--dev", "nosuch0", "--addr", "198.18.0.2", "--decap", "bpf", "-q")
	if code != 1 || !strings.Contains(errs, "interface nosuch0") {
		t.Fatalf("setup on a missing interface: %d\n%s", code, errs)
	}
	if v := b.SysctlValue("net.ipv4.conf.all.arp_ignore"); v != "0" {
		t.Fatalf("failed setup changed arp_ignore: %s", v)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Fatalf("state left: %v", ents)
	}
}
