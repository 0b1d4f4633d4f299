package main

import (
	"log/slog"
	"path/filepath"

	"gvs/ctl/config"
	"gvs/ctl/daemon"
	"gvs/driver"
	"gvs/driver/afpacket"
	"gvs/driver/afxdp"
)

// opener returns how gvsd opens the configuration's ports and resolves the
// next hops of its reals: DPDK ports (driver = "dpdk", all of them or none,
// as config checks) have no kernel behind them and resolve their own
// (open_dpdk.go); the others use the kernel's tables through netlink
// (nil resolver: the daemon's default).
func opener(cfg *config.Config) (daemon.Opener, daemon.HopResolver) {
	if usesDPDK(cfg) {
		return newDPDKOpener(cfg)
	}
	return openPort, nil
}

func usesDPDK(cfg *config.Config) bool {
	for _, p := range cfg.Ports {
		if p.Driver == "dpdk" {
			return true
		}
	}
	return false
}

// openPort opens a [[port]] with the driver it names; "auto" tries AF_XDP
// and falls back to AF_PACKET, saying why.
func openPort(p config.Port, queues int, log *slog.Logger) (driver.Port, error) {
	switch p.Driver {
	case "afpacket":
		return openAFPacket(p, queues, log)
	case "afxdp":
		return openAFXDP(p, queues, log)
	}
	port, err := openAFXDP(p, queues, log)
	if err == nil {
		return port, nil
	}
	log.Warn("AF_XDP unavailable, falling back to AF_PACKET", "interface", p.Name, "reason", err)
	return openAFPacket(p, queues, log)
}

func openAFXDP(p config.Port, queues int, log *slog.Logger) (driver.Port, error) {
	// Packets of gvs's flows may arrive on any receive queue of the device
	// (RSS): bind a socket to each; the workers share them out.
	if n := rxQueues(p.Name); n > queues {
		queues = n
	}
	c := afxdp.Config{Interface: p.Name, Queues: queues, FrameSize: p.FrameSz, Frames: p.Frames, Logger: log}
	if p.RingSize != 0 {
		c.RxSize, c.TxSize, c.FillSize, c.CompSize = p.RingSize, p.RingSize, p.RingSize, p.RingSize
	}
	switch p.Mode {
	case "native":
		c.Mode = afxdp.ModeNative
	case "generic":
		c.Mode = afxdp.ModeGeneric
	}
	switch p.ZeroCopy {
	case "on":
		c.ZeroCopy = afxdp.ZeroCopyOn
	case "off":
		c.ZeroCopy = afxdp.ZeroCopyOff
	}
	port, err := afxdp.Open(c)
	if err != nil {
		return nil, err
	}
	log.Info("port open", "interface", p.Name, "driver", "afxdp", "mode", port.Mode(), "queues", queues)
	return port, nil
}

func openAFPacket(p config.Port, queues int, log *slog.Logger) (driver.Port, error) {
	c := afpacket.Config{Interface: p.Name, Queues: queues, FrameSize: p.FrameSz, PoolFrames: p.Frames}
	if p.RingSize != 0 {
		c.TxFrames = p.RingSize
	}
	port, err := afpacket.Open(c)
	if err != nil {
		return nil, err
	}
	log.Info("port open", "interface", p.Name, "driver", "afpacket", "queues", queues)
	return port, nil
}

// rxQueues is the number of receive queues the device uses now (its real
// number, as sysfs lists them; 0 if unknown).
func rxQueues(ifname string) int {
	m, _ := filepath.Glob(filepath.Join("/sys/class/net", ifname, "queues", "rx-*"))
	return len(m)
}
