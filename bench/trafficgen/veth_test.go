package trafficgen

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"gvs/internal/namedns"
)

// TestVeth sends over a veth pair between two namespaces and receives at
// the far end, with each kernel driver. Root only: skipped without, a
// failure under CI=true.
func TestVeth(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("TestVeth needs root (namespaces, AF_PACKET, AF_XDP); CI=true, so this is a failure, not a skip")
		}
		t.Skip("TestVeth needs root (namespaces, AF_PACKET, AF_XDP): skipped")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	nsA, nsB := fmt.Sprintf("tgtest-%d-a", os.Getpid()), fmt.Sprintf("tgtest-%d-b", os.Getpid())
	macA, macB := net.HardwareAddr{0x02, 0, 0xc6, 0x12, 0x7e, 1}, net.HardwareAddr{0x02, 0, 0xc6, 0x12, 0x7e, 2}
	var hs []netns.NsHandle
	for _, n := range []string{nsA, nsB} {
		h, err := namedns.Create(n)
		if err != nil {
			t.Fatalf("create netns %s: %v", n, err)
		}
		t.Cleanup(func() {
			h.Close()
			if err := namedns.Delete(n); err != nil {
				t.Errorf("delete netns %s: %v", n, err)
			}
		})
		hs = append(hs, h)
	}
	ha, err := netlink.NewHandleAt(hs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	hb, err := netlink.NewHandleAt(hs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: "tga0", MTU: 1500, HardwareAddr: macA, NumTxQueues: 1, NumRxQueues: 1},
		PeerName:         "tgb0",
		PeerHardwareAddr: macB,
		PeerMTU:          1500,
		PeerNumTxQueues:  1,
		PeerNumRxQueues:  1,
		PeerNamespace:    netlink.NsFd(int(hs[1])),
	}
	if err := ha.LinkAdd(veth); err != nil {
		t.Fatalf("create veth: %v", err)
	}
	for _, x := range []struct {
		h        *netlink.Handle
		ns, name string
		cidr     string
	}{{ha, nsA, "tga0", "198.18.0.1/24"}, {hb, nsB, "tgb0", "198.18.0.2/24"}} {
		l, err := x.h.LinkByName(x.name)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(x.cidr)
		if err := x.h.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		if err := x.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		// The kernel's own packets (ARP replies, ICMP) would otherwise
		// leave with partial checksums; ours are complete anyway.
		if err := inNetns(x.ns, func() error { return txChecksumOff(x.name) }); err != nil {
			t.Fatalf("tx-checksumming off on %s: %v", x.name, err)
		}
		// No IPv6 noise (ND, MLD): foreign frames stay at zero.
		if err := inNetns(x.ns, func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/all/disable_ipv6", []byte("1"), 0o644)
		}); err != nil {
			t.Fatal(err)
		}
	}

	for _, drv := range []string{DriverAFPacket, DriverAFXDP} {
		t.Run(drv, func(t *testing.T) {
			o := Options{Driver: drv, Netns: nsA, Iface: "tga0", DstMAC: MAC(macB),
				Src: []netip.Addr{netip.MustParseAddr("198.18.0.1")}, Dst: []netip.Addr{netip.MustParseAddr("198.18.1.10")},
				Flows: 64, Proto: "mix", Count: 20000, Rate: 40000, Duration: 10 * time.Second, CPU: -1,
				Sinks: []Sink{{Netns: nsB, Iface: "tgb0", Driver: drv}}}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := Run(ctx, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			res.WriteTable(&b)
			t.Logf("%s → %s over veth:\n%s", drv, drv, b.String())
			if res.Total.Sent != o.Count {
				t.Fatalf("sent %d of %d", res.Total.Sent, o.Count)
			}
			// veth does not drop at this rate; allow 0.5 % for a loaded
			// machine (a ring overrun while the sink is descheduled).
			if res.Total.Lost > int64(o.Count)/200 || res.Total.Lost < 0 || res.Total.Duplicates != 0 {
				t.Fatalf("lost %d duplicates %d of %d", res.Total.Lost, res.Total.Duplicates, o.Count)
			}
			if res.Total.Latency.P50Ns == 0 {
				t.Fatal("no latency measured")
			}
		})
	}
}

// txChecksumOff is `ethtool -K name tx-checksumming off` (ETHTOOL_STXCSUM)
// in the calling thread's namespace.
func txChecksumOff(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	v := &struct{ cmd, data uint32 }{cmd: 0x17} // ETHTOOL_STXCSUM, off
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [24 - unsafe.Sizeof(uintptr(0))]byte
	}
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(v)
	if errno != 0 {
		return errno
	}
	return nil
}
