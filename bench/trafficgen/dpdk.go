//go:build dpdk

package trafficgen

import (
	"gvs/driver"
	"gvs/driver/dpdk"
)

// With the dpdk build tag the sender may use a DPDK port: Iface is the
// device spec ("net_af_packet0,iface=veth0", a PCI address in EAL's allow
// list, ...). EAL starts with its defaults (--no-huge, --no-pci, one
// lcore) unless the calling program started it already. Sinks stay
// afpacket or afxdp.
func init() {
	openers[DriverDPDK] = func(iface string, _ bool) (driver.Port, error) {
		if !dpdk.Initialized() {
			if err := dpdk.Init(dpdk.EALConfig{}); err != nil {
				return nil, err
			}
		}
		return dpdk.Open(dpdk.Config{Name: "trafficgen", Device: iface, Queues: 1})
	}
}
