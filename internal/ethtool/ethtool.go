// Package ethtool sets the few interface offloads gvs's test lab and
// benchmarks change — TX checksumming and GRO — through the SIOCETHTOOL
// ioctl of the calling thread's network namespace, as `ethtool -K` does,
// so no ethtool binary is needed. (The netlink ethtool libraries do not
// cover feature flags; these two ioctls are all that is needed.)
package ethtool

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ETHTOOL_* commands with a struct ethtool_value argument.
const (
	cmdGTXCSUM = 0x16
	cmdSTXCSUM = 0x17
	cmdGGRO    = 0x2b
	cmdSGRO    = 0x2c
)

type value struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with the ifr_data union member.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// valueIoctl runs an ETHTOOL_[GS]* command with a struct ethtool_value on
// ifname and returns the value the kernel wrote back.
func valueIoctl(ifname string, cmd, data uint32) (uint32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	v := &value{cmd: cmd, data: data}
	var ifr ifreqData
	if len(ifname) >= len(ifr.name) {
		return 0, fmt.Errorf("interface name %q too long", ifname)
	}
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(v)
	if errno != 0 {
		return 0, errno
	}
	return v.data, nil
}

// TxChecksum reports whether TX checksum offload is on for ifname.
func TxChecksum(ifname string) (bool, error) {
	on, err := valueIoctl(ifname, cmdGTXCSUM, 0)
	if err != nil {
		return false, fmt.Errorf("ETHTOOL_GTXCSUM on %s: %w", ifname, err)
	}
	return on != 0, nil
}

// TxChecksumOff turns off TX checksum offload on ifname — and with it TSO
// and the other offloads that depend on it — as `ethtool -K ifname
// tx-checksumming off` does (ETHTOOL_STXCSUM, which the kernel maps onto
// the netdev features), and checks that it is off. Packets the stack sends
// then carry complete checksums: veth otherwise hands over partial ones
// that a userspace dataplane sees as wrong.
func TxChecksumOff(ifname string) error {
	if _, err := valueIoctl(ifname, cmdSTXCSUM, 0); err != nil {
		return fmt.Errorf("ETHTOOL_STXCSUM on %s: %w", ifname, err)
	}
	on, err := TxChecksum(ifname)
	if err != nil {
		return err
	}
	if on {
		return errors.New("tx checksumming still on on " + ifname)
	}
	return nil
}

// SetGRO turns GRO on ifname on or off and returns its previous state.
func SetGRO(ifname string, on bool) (was bool, err error) {
	v, err := valueIoctl(ifname, cmdGGRO, 0)
	if err != nil {
		return false, fmt.Errorf("ETHTOOL_GGRO on %s: %w", ifname, err)
	}
	var d uint32
	if on {
		d = 1
	}
	if _, err := valueIoctl(ifname, cmdSGRO, d); err != nil {
		return v != 0, fmt.Errorf("ETHTOOL_SGRO on %s: %w", ifname, err)
	}
	return v != 0, nil
}
