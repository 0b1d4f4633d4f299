package main

import (
	"bytes"
	"strings"
	"testing"
)

// Argument errors are reported before anything needs root.
func TestArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		rc   int
		msg  string
	}{
		{nil, 2, "usage: gvs-bench all|veth|http"},
		{[]string{"help"}, 0, "Subcommands"},
		{[]string{"nope"}, 2, `unknown subcommand "nope"`},
		{[]string{"veth", "--help"}, 0, "--duration"},
		{[]string{"veth", "--only", "bogus"}, 2, `unknown DUT "bogus"`},
		{[]string{"veth", "--no-such-flag"}, 2, "unknown flag"},
		{[]string{"veth", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"veth", "--rounds", "0"}, 2, "rounds 0"},
		{[]string{"all", "--help"}, 0, "--phases"},
		{[]string{"all", "--phases", "rate,bogus"}, 2, `unknown phase "bogus"`},
		{[]string{"all", "--phases", ","}, 2, "no phase named"},
		{[]string{"all", "--only", "bogus"}, 2, `unknown DUT "bogus"`},
		{[]string{"all", "--rounds", "0"}, 2, "--rounds 0: want 1..20"},
		{[]string{"all", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"http", "--help"}, 0, "--connections"},
	} {
		var out, errb bytes.Buffer
		if rc := run(c.args, &out, &errb); rc != c.rc || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", c.args, rc, errb.String(), c.rc, c.msg)
		}
	}
}
