//go:build !dpdk

package vethbench

import "log/slog"

// dpdkDUT: no gvs-dpdk DUT in a build without the dpdk tag.
func dpdkDUT() func(flows int, log *slog.Logger) DUT { return nil }
