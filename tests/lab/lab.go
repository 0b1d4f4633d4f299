// Package lab is the network-namespace test harness of gvs: every end-to-end
// test builds its topology with it — namespaces joined by veth pairs and
// bridges, addresses from 198.18.0.0/15 and 2001:db8::/32, routes, static
// neighbours, sysctls — and runs peers inside them: Go listeners and HTTP/UDP
// backends, clients, and external programs (keepalived, nginx, ...).
//
// A Lab belongs to one test. Everything it creates carries a per-run prefix
// ("gvs-<pid>-<random>-"), so parallel test processes never collide, and is
// removed by t.Cleanup — also when the test fails or panics: listeners and
// backends are closed, processes are stopped (SIGTERM, then SIGKILL), and the
// namespaces are deleted, which deletes the links inside them. Namespaces
// left behind by a test process that was killed outright are swept by the
// next New.
//
// Namespaces are created the way `ip netns add` does it (a bind mount under
// /run/netns), so `ip netns exec <ns.Name()>` and the like work on them while
// the test runs. The lab adds no link, address or route to the initial
// namespace: both ends of every link live in lab namespaces. (Like `ip
// netns add`, it makes /run/netns a shared mount point on first use.)
//
// Lab needs root: New skips the test when not run as root, and fails it when
// the environment variable CI is "true". Methods that take no error return
// fail the test (t.Fatal) on error and must be called from the test
// goroutine; the rest (Do, Listen, Dial, ...) return errors and may be called
// from any goroutine.
//
// lab imports nothing of gvs.
package lab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"gvs/internal/namedns"
	"io"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces are bind-mounted, as by
// iproute2.
const NetnsDir = namedns.Dir

// Lab is a set of network namespaces, links and processes owned by one test.
type Lab struct {
	t      testing.TB
	prefix string

	mu      sync.Mutex
	nss     []*NS
	procs   []*Proc
	closers []io.Closer
	closed  bool
}

// New returns an empty lab for t, with a unique prefix, and registers its
// removal with t.Cleanup. It skips t when not running as root (fails it if
// CI=true).
func New(t testing.TB) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		msg := "lab: network-namespace tests need root (CAP_NET_ADMIN and CAP_SYS_ADMIN); run them with sudo"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " — CI=true, so this is a failure, not a skip")
		}
		t.Skip(msg)
	}
	sweepOnce.Do(sweepStale)
	var rnd [2]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("lab: random prefix: %v", err)
	}
	l := &Lab{t: t, prefix: fmt.Sprintf("gvs-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))}
	t.Cleanup(l.cleanup)
	return l
}

// Prefix is the per-run prefix of every namespace name of the lab.
func (l *Lab) Prefix() string { return l.prefix }

// NS creates the network namespace "<prefix>-<name>" with its loopback up.
func (l *Lab) NS(name string) *NS {
	l.t.Helper()
	full := l.prefix + "-" + name
	h, err := namedns.Create(full)
	if err != nil {
		l.t.Fatalf("lab: create namespace %s: %v", full, err)
	}
	ns := &NS{lab: l, name: full, short: name, handle: h}
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	nl, err := ns.netlink()
	if err == nil {
		var lo netlink.Link
		if lo, err = nl.LinkByName("lo"); err == nil {
			err = nl.LinkSetUp(lo)
		}
	}
	if err != nil {
		l.t.Fatalf("lab: %s: bring up lo: %v", full, err)
	}
	return ns
}

// track registers c to be closed at cleanup (before processes are stopped
// and namespaces deleted).
func (l *Lab) track(c io.Closer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return
	}
	l.closers = append(l.closers, c)
}

func (l *Lab) cleanup() {
	l.mu.Lock()
	l.closed = true
	closers, procs, nss := l.closers, l.procs, l.nss
	l.closers, l.procs, l.nss = nil, nil, nil
	l.mu.Unlock()

	for i := len(closers) - 1; i >= 0; i-- {
		closers[i].Close()
	}
	for _, p := range procs {
		if err := p.Stop(); err != nil && !errors.Is(err, errExited) {
			l.t.Logf("lab: stop %s: %v", p, err)
		}
		if l.t.Failed() {
			l.t.Logf("lab: output of %s:\n%s", p, tail(p.Output(), 16<<10))
		}
	}
	for i := len(nss) - 1; i >= 0; i-- {
		ns := nss[i]
		ns.closeNetlink()
		if err := namedns.Delete(ns.name); err != nil {
			l.t.Errorf("lab: delete namespace %s: %v", ns.name, err)
		}
		ns.handle.Close()
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "[...]\n" + s[len(s)-n:]
}

var (
	sweepOnce  sync.Once
	staleNetns = regexp.MustCompile(`^gvs-([0-9]+)-[0-9a-f]{4}-`)
)

// sweepStale deletes lab namespaces whose creating process is gone (a test
// binary killed by its timeout or SIGKILL runs no cleanup).
func sweepStale() {
	ents, err := os.ReadDir(NetnsDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		m := staleNetns.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); err == unix.ESRCH {
			namedns.Delete(e.Name())
		}
	}
}
