package suite

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine is what the report says about the machine it ran on.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model,omitempty"`
	MemoryKB string `json:"memory_kb,omitempty"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	LoadAvg  string `json:"loadavg_before,omitempty"`
}

// Describe reads the machine's facts from /proc and uname.
func Describe() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	m.MemoryKB = strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB")
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc
// file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// peerVersions are the commands whose first output line names the version
// of a peer the report compares with.
var peerVersions = []struct {
	name string
	args []string
}{
	{"nftables", []string{"nft", "--version"}},
	{"haproxy", []string{"haproxy", "-v"}},
	{"nginx", []string{"nginx", "-v"}},
	{"wrk", []string{"wrk", "-v"}},
	{"libdpdk", []string{"pkg-config", "--modversion", "libdpdk"}},
}

// PeerVersions returns the first line each peer prints about its version
// ("not installed" when the command is missing).
func PeerVersions() map[string]string {
	out := map[string]string{}
	for _, p := range peerVersions {
		if _, err := exec.LookPath(p.args[0]); err != nil {
			out[p.name] = "not installed"
			continue
		}
		// wrk -v exits 1 after printing; nginx -v prints on stderr.
		b, _ := exec.Command(p.args[0], p.args[1:]...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		out[p.name] = strings.TrimSpace(line)
	}
	return out
}
