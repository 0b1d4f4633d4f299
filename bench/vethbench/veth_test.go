package vethbench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRunVeth runs every DUT briefly, twice alternated (about 12 s in all),
// and checks that each returned traffic in every round, that the summary
// has a median per DUT, and that the namespaces are gone afterwards. It needs
// root: skipped without, failed under CI=true.
func TestRunVeth(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("vethbench needs root (namespaces, XDP, AF_XDP); CI=true, so this is a failure, not a skip")
		}
		t.Skip("vethbench needs root (namespaces, XDP, AF_XDP): skipped")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	nsFDs := netnsFDs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{Warmup: 200 * time.Millisecond, Duration: 500 * time.Millisecond, Flows: 64, Rounds: 2, GenCPU: -1, DUTCPU: -1})
	if err != nil {
		t.Fatal(err)
	}
	var b testWriter
	rep.WriteTable(&b)
	t.Logf("\n%s", b)
	if len(rep.Results) != 2*len(DUTNames) {
		t.Fatalf("%d results, want %d", len(rep.Results), 2*len(DUTNames))
	}
	for i, r := range rep.Results {
		if want := DUTNames[i%len(DUTNames)]; r.Name != want || r.Round != 1+i/len(DUTNames) {
			t.Errorf("result %d: %s round %d, want %s round %d (alternated)", i, r.Name, r.Round, want, 1+i/len(DUTNames))
		}
		if !r.OK() || r.RxMpps <= 0 {
			t.Errorf("%s round %d: rx %.3f Mpps, error %q", r.Name, r.Round, r.RxMpps, r.Error)
		}
	}
	if len(rep.Summary) != len(DUTNames) {
		t.Fatalf("summary of %d DUTs, want %d", len(rep.Summary), len(DUTNames))
	}
	for _, sm := range rep.Summary {
		if len(sm.Samples) != 2 || sm.MedianMpps <= 0 || sm.RatioXDPTX == nil {
			t.Errorf("summary %+v: want 2 samples, a median and a ratio", sm)
		}
	}
	if left := ListNetns(); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
	// An open fd on a namespace (netns handle, socket, netlink handle)
	// would keep it alive after its name is gone.
	if n := netnsFDs(t); n != nsFDs {
		t.Errorf("%d fds refer to network namespaces after Run, %d before", n, nsFDs)
	}
}

// netnsFDs counts this process's fds that are network namespaces.
func netnsFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "net:[") {
			n++
		}
	}
	return n
}

type testWriter []byte

func (w *testWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }
func (w testWriter) String() string               { return string(w) }
