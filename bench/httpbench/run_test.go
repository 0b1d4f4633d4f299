package httpbench

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireRoot skips (or, with CI=true, fails) when the test cannot run.
func requireRoot(t *testing.T, progs ...string) {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("needs root (network namespaces, XDP, nftables); CI=true, so this is a failure")
		}
		t.Skip("needs root (network namespaces, XDP, nftables)")
	}
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			msg := p + " is not installed (apt-get install " + aptPackage[p] + "; make deps-system installs it)"
			if ci {
				t.Fatal(msg + "; CI=true, so this is a failure")
			}
			t.Skip(msg)
		}
	}
}

func TestRunShort(t *testing.T) {
	requireRoot(t, "ip", "wrk", "nginx", "nft")
	contenders := []string{Direct, Nftables, Gvs}
	if testing.Short() {
		contenders = contenders[:2]
	}
	var progress strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{
		Rounds: 1, Duration: time.Second, Warmup: 0,
		Contenders: contenders, Progress: &progress,
	})
	t.Logf("progress:\n%s", progress.String())
	if rep != nil {
		var b strings.Builder
		rep.WriteTable(&b)
		t.Logf("report:\n%s", b.String())
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(rep.Results) != 2*len(contenders) {
		t.Fatalf("%d results, want %d", len(rep.Results), 2*len(contenders))
	}
	for _, res := range rep.Results {
		if res.Error != "" || res.MedianRPS <= 0 || len(res.Samples) != 1 {
			t.Errorf("%s/%s: error %q, median %.0f req/s, %d samples", res.Contender, res.Mode, res.Error, res.MedianRPS, len(res.Samples))
		}
	}
	if left := ListNetns(); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), NamePrefix) {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}

// The rendered configurations are accepted by the programs themselves
// (check modes only: nothing is applied).
func TestConfigsAcceptedByPrograms(t *testing.T) {
	requireRoot(t, "nft", "haproxy", "nginx")
	dir := t.TempDir()
	be := []string{BackendAddr(0), BackendAddr(1)}
	files := map[string]string{
		"nft.rules":   nftRuleset(VIP, VIPPort, be),
		"haproxy.cfg": haproxyConfig(VIP, VIPPort, be, 1),
		"nginx.conf":  nginxConfig(dir),
	}
	for name, text := range files {
		if err := os.WriteFile(dir+"/"+name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range [][]string{
		{"nft", "-c", "-f", dir + "/nft.rules"},
		{"haproxy", "-c", "-f", dir + "/haproxy.cfg"},
		{"nginx", "-t", "-e", "stderr", "-p", dir, "-c", dir + "/nginx.conf"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
}

// TestFullRun is the default benchmark (about 3 minutes), only with
// GVSHTTP_FULL=1: go test -run TestFullRun -v -timeout 10m ./bench/httpbench
func TestFullRun(t *testing.T) {
	if os.Getenv("GVSHTTP_FULL") != "1" {
		t.Skip("set GVSHTTP_FULL=1 to run the full default benchmark")
	}
	requireRoot(t, "ip", "wrk", "nginx", "nft", "haproxy")
	o := DefaultOptions()
	if c := os.Getenv("GVSHTTP_CONTENDERS"); c != "" {
		cs, err := ParseContenders(c)
		if err != nil {
			t.Fatal(err)
		}
		o.Contenders = cs
	}
	o.Progress = os.Stderr
	if os.Getenv("GVSHTTP_VERBOSE") == "1" {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if r, err := strconv.Atoi(os.Getenv("GVSHTTP_ROUNDS")); err == nil {
		o.Rounds = r
	}
	rep, err := Run(t.Context(), o)
	if rep != nil {
		var b strings.Builder
		rep.WriteTable(&b)
		t.Logf("report:\n%s", b.String())
		if f := os.Getenv("GVSHTTP_JSON"); f != "" {
			fh, ferr := os.Create(f)
			if ferr == nil {
				rep.WriteJSON(fh)
				fh.Close()
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if left := ListNetns(); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}
