package ethtool_test

import (
	"testing"

	"gvs/internal/ethtool"
	"gvs/tests/lab"
)

// TestOffloads turns TX checksumming off and GRO on and off again on one
// end of a veth pair, and checks each change took and the other end kept
// its settings. lab.New skips without root (fails under CI=true).
func TestOffloads(t *testing.T) {
	l := lab.New(t)
	a, b := l.NS("a"), l.NS("b")
	l.Veth(a, "eth0", b, "eth0")
	if err := a.Do(func() error { return ethtool.TxChecksumOff("eth0") }); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ns   *lab.NS
		want bool
	}{{a, false}, {b, true}} {
		var on bool
		if err := c.ns.Do(func() (err error) { on, err = ethtool.TxChecksum("eth0"); return }); err != nil || on != c.want {
			t.Fatalf("tx checksumming in %s: %t, %v; want %t", c.ns, on, err, c.want)
		}
	}
	var first, second, third bool
	err := a.Do(func() (err error) {
		if first, err = ethtool.SetGRO("eth0", true); err != nil {
			return err
		}
		if second, err = ethtool.SetGRO("eth0", false); err != nil {
			return err
		}
		third, err = ethtool.SetGRO("eth0", first)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("GRO before %t, after on %t, after off %t", first, second, third)
	if !second || third {
		t.Fatalf("GRO: was %t, after on %t, after off %t; want on then off", first, second, third)
	}
	if err := a.Do(func() error { _, err := ethtool.SetGRO("nosuchif0", true); return err }); err == nil {
		t.Fatal("SetGRO on a missing interface: no error")
	}
}
