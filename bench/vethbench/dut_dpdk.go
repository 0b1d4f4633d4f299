//go:build dpdk

package vethbench

import (
	"log/slog"
	"runtime"

	"gvs/driver"
	"gvs/driver/dpdk"
)

// The gvs-dpdk DUT: the same balancer and worker as gvs-afxdp over gvs's
// DPDK driver, with net_af_packet on the DUT veth (the only DPDK device
// that can sit on a veth here). EAL starts once per process, on the first
// round; every round opens (and closes) its own net_af_packet device
// inside the DUT namespace, where the device's sockets must be made.
func dpdkDUT() func(flows int, log *slog.Logger) DUT {
	return func(flows int, log *slog.Logger) DUT {
		return &gvsDUT{name: DUTGvsDPDK, flows: flows, log: log, open: openDPDK}
	}
}

func openDPDK(t *Topology) (driver.Port, error) {
	// EAL pins the thread that starts it to its lcore: start it on a
	// thread of its own that is discarded afterwards (never unlocked), so
	// no pinned thread goes back to the Go scheduler.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- dpdk.Init(dpdk.EALConfig{LogLevel: "*:warning", Args: []string{"--no-telemetry"}})
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	var p *dpdk.Port
	err := t.DUT.Do(func() (err error) {
		p, err = dpdk.Open(dpdk.Config{Name: t.DUTIf, Device: "net_af_packet0,iface=" + t.DUTIf, Queues: 1})
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}
