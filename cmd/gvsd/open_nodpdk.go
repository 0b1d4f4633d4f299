//go:build !dpdk

package main

import (
	"errors"
	"fmt"
	"log/slog"

	"gvs/ctl/config"
	"gvs/ctl/daemon"
	"gvs/driver"
)

// errNoDPDK is the answer of a gvsd built without the dpdk build tag to a
// port with driver = "dpdk".
var errNoDPDK = errors.New(`driver = "dpdk": this gvsd was built without DPDK support; build it with ` +
	"`go build -tags dpdk ./cmd/gvsd` (needs libdpdk-dev and pkg-config)")

// checkBuild refuses configurations this build cannot run.
func checkBuild(cfg *config.Config) error {
	if usesDPDK(cfg) {
		return errNoDPDK
	}
	return nil
}

func newDPDKOpener(*config.Config) (daemon.Opener, daemon.HopResolver) {
	return func(p config.Port, _ int, _ *slog.Logger) (driver.Port, error) {
		return nil, fmt.Errorf("port %s: %w", p.Name, errNoDPDK)
	}, nil
}

// shutdownDrivers releases process-wide driver state (none without DPDK).
func shutdownDrivers() {}
