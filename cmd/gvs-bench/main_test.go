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
		{nil, 2, "usage: gvs-bench veth"},
		{[]string{"help"}, 0, "Subcommands"},
		{[]string{"nope"}, 2, `unknown subcommand "nope"`},
		{[]string{"veth", "--help"}, 0, "--duration"},
		{[]string{"veth", "--only", "bogus"}, 2, `unknown DUT "bogus"`},
		{[]string{"veth", "--no-such-flag"}, 2, "unknown flag"},
		{[]string{"veth", "extra"}, 2, `unexpected argument "extra"`},
	} {
		var out, errb bytes.Buffer
		if rc := run(c.args, &out, &errb); rc != c.rc || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", c.args, rc, errb.String(), c.rc, c.msg)
		}
	}
}
