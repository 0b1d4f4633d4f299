//go:build dpdk

package dpdk

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"gvs/driver/dpdk/internal/rte"
)

// Memory modes of EAL.
const (
	MemoryNoHuge    = "no-huge"   // --no-huge -m N: ordinary pages, no setup (laptops, CI)
	MemoryHugepages = "hugepages" // hugetlbfs as EAL finds it (production)
	MemoryInMemory  = "in-memory" // --in-memory: hugepages, no files in hugetlbfs or /var/run
)

// EALConfig holds the process-wide EAL options.
type EALConfig struct {
	// Lcores is EAL's -l list ("0", "0-1"); empty: the first CPU the
	// process may run on. gvs's workers are not EAL lcores (see the
	// package doc), so one lcore is enough.
	Lcores string
	// Memory is MemoryNoHuge (default), MemoryHugepages or MemoryInMemory.
	Memory string
	// MemoryMB is -m: megabytes to reserve (default 256 with no-huge,
	// EAL's own default otherwise).
	MemoryMB int
	// FilePrefix is --file-prefix (default "gvs-<pid>", so that several
	// gvs processes never share EAL's runtime files).
	FilePrefix string
	// Allow lists PCI devices EAL may probe (-a). Empty: --no-pci (the
	// VM's or laptop's own NIC is a PCI device EAL must leave alone).
	Allow []string
	// Vdevs are virtual devices to create at start (--vdev), such as
	// "net_tap0,iface=gvs0". Ports may also name vdevs of their own,
	// created when they are opened.
	Vdevs []string
	// LogLevel is --log-level (default "*:notice" … EAL's default).
	LogLevel string
	// Args are passed to EAL verbatim, after the others.
	Args []string
	// Mbufs is the size of each NUMA socket's mbuf pool (default 16383).
	Mbufs int
	// MbufCache is the per-lcore cache of the pools (default 256).
	MbufCache int
}

// EALArgs returns EAL's command line (without the program name).
func (c EALConfig) EALArgs() []string {
	var a []string
	lc := c.Lcores
	if lc == "" {
		lc = "0"
		var set unix.CPUSet
		if unix.SchedGetaffinity(0, &set) == nil {
			for cpu := 0; cpu < 1024; cpu++ {
				if set.IsSet(cpu) {
					lc = strconv.Itoa(cpu)
					break
				}
			}
		}
	}
	a = append(a, "-l", lc)
	switch c.Memory {
	case "", MemoryNoHuge:
		mb := c.MemoryMB
		if mb == 0 {
			mb = 256
		}
		a = append(a, "--no-huge", "-m", strconv.Itoa(mb))
	case MemoryInMemory:
		a = append(a, "--in-memory")
		if c.MemoryMB > 0 {
			a = append(a, "-m", strconv.Itoa(c.MemoryMB))
		}
	case MemoryHugepages:
		if c.MemoryMB > 0 {
			a = append(a, "-m", strconv.Itoa(c.MemoryMB))
		}
	}
	if c.Memory != MemoryInMemory {
		a = append(a, "--file-prefix", c.prefix())
	}
	if len(c.Allow) == 0 {
		a = append(a, "--no-pci")
	}
	for _, d := range c.Allow {
		a = append(a, "-a", d)
	}
	for _, v := range c.Vdevs {
		a = append(a, "--vdev", v)
	}
	if c.LogLevel != "" {
		a = append(a, "--log-level", c.LogLevel)
	}
	return append(a, c.Args...)
}

var (
	ealMu  sync.Mutex
	ealCfg *EALConfig
	pools  = map[int]*rte.Pool{}
)

// Init starts EAL with c. EAL can be initialised once per process: a second
// call with the same configuration is a no-op, with another one an error.
func Init(c EALConfig) error {
	ealMu.Lock()
	defer ealMu.Unlock()
	if c.Mbufs == 0 {
		c.Mbufs = 16383
	}
	if c.MbufCache == 0 {
		c.MbufCache = 256
	}
	if ealCfg != nil {
		if fmt.Sprint(*ealCfg) == fmt.Sprint(c) {
			return nil
		}
		return fmt.Errorf("dpdk: EAL already initialised with other options (%v): EAL starts once per process", ealCfg.EALArgs())
	}
	if rte.BurstSize != 32 {
		return fmt.Errorf("dpdk: binding burst size %d", rte.BurstSize)
	}
	sweepStale()
	if err := rte.Init(c.EALArgs()); err != nil {
		return fmt.Errorf("dpdk: %w", err)
	}
	ealCfg = &c
	return nil
}

// Initialized reports whether EAL runs in this process.
func Initialized() bool {
	ealMu.Lock()
	defer ealMu.Unlock()
	return ealCfg != nil
}

// Cleanup stops EAL (rte_eal_cleanup) once every port is closed. DPDK cannot
// be used again in this process.
func Cleanup() error {
	ealMu.Lock()
	defer ealMu.Unlock()
	for s, p := range pools {
		p.Free()
		delete(pools, s)
	}
	err := rte.Cleanup()
	if ealCfg != nil && ealCfg.Memory != MemoryInMemory {
		// EAL leaves its runtime directory behind.
		_ = os.RemoveAll(filepath.Join(runtimeDir(), ealCfg.prefix()))
	}
	return err
}

func (c EALConfig) prefix() string {
	if c.FilePrefix != "" {
		return c.FilePrefix
	}
	return fmt.Sprintf("gvs-%d", os.Getpid())
}

// sweepStale removes the runtime directories of gvs processes that died
// without Cleanup: default prefixes gvs-<pid>[-...] whose pid is gone.
func sweepStale() {
	ents, err := os.ReadDir(runtimeDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "gvs-")
		if !ok {
			continue
		}
		rest = strings.TrimPrefix(rest, "e2e-")
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			_ = os.RemoveAll(filepath.Join(runtimeDir(), e.Name()))
		}
	}
}

// runtimeDir is where EAL keeps its files (eal_get_runtime_dir).
func runtimeDir() string {
	if os.Geteuid() == 0 {
		return "/var/run/dpdk"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "dpdk")
	}
	return "/tmp/dpdk"
}

// Version is the DPDK version gvs runs on.
func Version() string { return rte.Version() }

// pool returns the mbuf pool of a NUMA socket (-1: any), creating it.
func pool(socket int) (*rte.Pool, error) {
	ealMu.Lock()
	defer ealMu.Unlock()
	if ealCfg == nil {
		return nil, fmt.Errorf("dpdk: EAL not initialised (call dpdk.Init first)")
	}
	if socket < 0 {
		socket = 0
	}
	if p := pools[socket]; p != nil {
		return p, nil
	}
	p, err := rte.NewPool(fmt.Sprintf("gvs_mbuf_s%d", socket), ealCfg.Mbufs, ealCfg.MbufCache, 0, socket)
	if err != nil && socket != 0 {
		// --no-huge memory is on socket 0 only.
		p, err = rte.NewPool(fmt.Sprintf("gvs_mbuf_s%d", socket), ealCfg.Mbufs, ealCfg.MbufCache, 0, rte.SocketAny)
	}
	if err != nil {
		return nil, fmt.Errorf("dpdk: %w", err)
	}
	pools[socket] = p
	return p, nil
}

// PoolStats are the counters of one socket's mbuf pool.
type PoolStats struct {
	Socket      int
	Avail, Used int
}

// Pools returns the state of the mbuf pools.
func Pools() []PoolStats {
	ealMu.Lock()
	defer ealMu.Unlock()
	var out []PoolStats
	for s, p := range pools {
		out = append(out, PoolStats{Socket: s, Avail: p.Avail(), Used: p.InUse()})
	}
	return out
}
