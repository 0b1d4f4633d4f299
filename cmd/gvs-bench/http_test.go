package main

import (
	"os"
	"strings"
	"testing"
)

func TestHTTPArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "usage: gvs-bench http"},
		{[]string{"--bogus"}, 2, "unknown flag"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--only", "direct,ipvs"}, 2, `unknown contender "ipvs"`},
		{[]string{"--duration", "1500ms"}, 2, "whole number of seconds"},
		{[]string{"--threads", "8", "--connections", "4"}, 2, "connections 4"},
	} {
		var out, errw strings.Builder
		code := runHTTP(tc.args, &out, &errw)
		if code != tc.code || !strings.Contains(errw.String(), tc.want) {
			t.Errorf("runHTTP(%q) = %d, stderr:\n%s\nwant %d and %q", tc.args, code, errw.String(), tc.code, tc.want)
		}
	}
	if os.Geteuid() != 0 {
		var out, errw strings.Builder
		if code := runHTTP(nil, &out, &errw); code != 1 || !strings.Contains(errw.String(), "needs root") {
			t.Errorf("runHTTP as non-root = %d, %s", code, errw.String())
		}
	}
}
