#!/usr/bin/env bash
# DPDK benchmark note (not a test; make bench-dpdk): one core, net_null,
# 64-byte frames, rx burst -> tx burst on one port, in one run:
#   - dpdk-testpmd io forwarding (port topology loop),
#   - the bare poll loop through gvs's binding, in Go: through driver.Queue
#     (frame views) and on the raw binding; and the same loop in C,
#   - gvs's pipeline (pmd worker, dr service, 1024 flows) on the same port
#     (always copy=0, which hands out mbufs as they are: the benchmark
#     prefills every mbuf of the pool with valid frames).
# NULL_ARGS=size=64,copy=1 makes the device write every packet (closer to a
# NIC's cost per packet) for testpmd and the bare loops.
# Prints Mpps per core and the ratios. Needs root, libdpdk-dev and dpdk-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
NULL_ARGS=${NULL_ARGS:-size=64,copy=0}
BENCHTIME=${BENCHTIME:-3s}
TESTPMD_SECONDS=${TESTPMD_SECONDS:-10}

echo "== gvs (go test -tags dpdk -bench BenchmarkNull, net_null $NULL_ARGS)"
out=$(GVS_BENCH_NULL=$NULL_ARGS go test -tags dpdk -count=1 -run '^$' -bench '^BenchmarkNull' -benchtime "$BENCHTIME" ./driver/dpdk/ 2>/dev/null)
echo "$out" | grep -E '^Benchmark' || { echo "$out"; exit 1; }
mpps() { echo "$out" | awk -v n="$1" '$1 ~ "^"n"(-[0-9]+)?$" { for (i = 1; i <= NF; i++) if ($(i+1) == "Mpps") print $i }'; }
go_loop=$(mpps BenchmarkNullBareLoop)
rte_loop=$(mpps BenchmarkNullBareLoopRte)
c_loop=$(mpps BenchmarkNullBareLoopC)
desc_loop=$(mpps BenchmarkNullBareLoopDescC)
pipe=$(mpps BenchmarkNullPipeline)

echo "== dpdk-testpmd io forwarding (${TESTPMD_SECONDS}s)"
prefix="gvs-bench-testpmd-$$"
tp=$( (timeout -s INT "$TESTPMD_SECONDS" dpdk-testpmd -l 0,1 --no-huge -m 512 --no-pci --file-prefix "$prefix" --no-telemetry \
	--vdev "net_null0,$NULL_ARGS" -- --forward-mode=io --port-topology=loop --nb-cores=1 --burst=32 \
	--total-num-mbufs=16384 --stats-period 2 </dev/null 2>&1 || true) | awk '/Tx-pps:/ { print $2 }' | sort -n | tail -1)
rm -rf "/var/run/dpdk/$prefix"
testpmd=$(awk -v p="$tp" 'BEGIN { printf "%.2f", p / 1e6 }')

echo "== Mpps per core (64-byte frames, net_null $NULL_ARGS)"
printf '%-44s %8s\n' "dpdk-testpmd io fwd" "$testpmd"
printf '%-44s %8s\n' "bare loop, C (one cgo call in all)" "$c_loop"
printf '%-44s %8s\n' "bare loop, C through gvs's burst descriptors" "$desc_loop"
printf '%-44s %8s\n' "bare loop, Go, raw binding" "$rte_loop"
printf '%-44s %8s\n' "bare loop, Go, driver.Queue (frame views)" "$go_loop"
printf '%-44s %8s\n' "gvs pipeline (pmd worker, dr, 1024 flows)" "$pipe"
echo "== ratios"
awk -v t="$testpmd" -v c="$c_loop" -v r="$rte_loop" -v g="$go_loop" -v p="$pipe" 'BEGIN {
	printf "bare Go loop (driver.Queue) / testpmd: %.2f   (raw binding: %.2f, C loop: %.2f)\n", g / t, r / t, c / t
	printf "gvs pipeline / bare Go loop:           %.2f\n", p / g
}'
