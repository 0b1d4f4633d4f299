package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ifreq is struct ifreq of <net/if.h> on 64-bit Linux.
type ifreq struct {
	name [unix.IFNAMSIZ]byte
	data [24]byte
}

type ifaceInfo struct {
	index int
	mac   net.HardwareAddr
	mtu   int
}

func ioctlIfreq(fd int, req uintptr, ifr *ifreq) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(ifr)))
	if e != 0 {
		return e
	}
	return nil
}

// newPacketSocket opens an AF_PACKET SOCK_RAW socket that receives nothing
// until it is bound with a protocol.
func newPacketSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return -1, fmt.Errorf("socket(AF_PACKET, SOCK_RAW): %w (gvs needs root or CAP_NET_RAW)", err)
		}
		return -1, fmt.Errorf("socket(AF_PACKET, SOCK_RAW): %w", err)
	}
	return fd, nil
}

// lookupInterface reads index, MAC and MTU of an interface in the
// calling thread's network namespace.
func lookupInterface(name string) (ifaceInfo, error) {
	var info ifaceInfo
	if len(name) >= unix.IFNAMSIZ {
		return info, fmt.Errorf("interface name %q is longer than %d bytes", name, unix.IFNAMSIZ-1)
	}
	fd, err := newPacketSocket()
	if err != nil {
		return info, err
	}
	defer unix.Close(fd)

	var ifr ifreq
	copy(ifr.name[:], name)
	if err := ioctlIfreq(fd, unix.SIOCGIFINDEX, &ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return info, fmt.Errorf("no such interface in this network namespace: %w", err)
		}
		return info, fmt.Errorf("SIOCGIFINDEX: %w", err)
	}
	info.index = int(int32(binary.NativeEndian.Uint32(ifr.data[:4])))

	ifr.data = [24]byte{}
	if err := ioctlIfreq(fd, unix.SIOCGIFHWADDR, &ifr); err != nil {
		return info, fmt.Errorf("SIOCGIFHWADDR: %w", err)
	}
	// ifr_hwaddr is a struct sockaddr: sa_family, then the address.
	if fam := binary.NativeEndian.Uint16(ifr.data[:2]); fam != unix.ARPHRD_ETHER {
		return info, fmt.Errorf("not an Ethernet interface (ARPHRD type %d)", fam)
	}
	info.mac = net.HardwareAddr(append([]byte(nil), ifr.data[2:8]...))

	ifr.data = [24]byte{}
	if err := ioctlIfreq(fd, unix.SIOCGIFMTU, &ifr); err != nil {
		return info, fmt.Errorf("SIOCGIFMTU: %w", err)
	}
	info.mtu = int(int32(binary.NativeEndian.Uint32(ifr.data[:4])))

	return info, nil
}

// htons converts v to network byte order as the kernel reads a __be16.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
