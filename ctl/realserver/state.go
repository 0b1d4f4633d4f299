package realserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// stateUser is one recorded Setup.
type stateUser struct {
	Method    string   `json:"method"`
	Interface string   `json:"interface"`
	RealAddr  string   `json:"real_addr,omitempty"`
	VIPs      []string `json:"vips"`
}

func (u stateUser) sameSetup(o stateUser) bool {
	return u.Method == o.Method && u.Interface == o.Interface && u.RealAddr == o.RealAddr
}

// state is what Setup changed in one network namespace, persisted as JSON.
type state struct {
	Users   []stateUser       `json:"users"`
	Sysctls map[string]string `json:"sysctls,omitempty"` // key → value before the first Setup
	Addrs   []string          `json:"addrs,omitempty"`   // VIPs Setup added to lo
	Qdiscs  []string          `json:"qdiscs,omitempty"`  // interfaces Setup created a clsact qdisc on
	Links   []string          `json:"links,omitempty"`   // tunnel devices Setup created

	path   string
	lock   *os.File
	exists bool // a state file was found
}

// netnsID identifies the current thread's network namespace for the
// lifetime of the system: its cookie (SO_NETNS_COOKIE, never reused), or on
// kernels before 5.14 its inode number.
func netnsID() (string, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	if c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE); err == nil {
		return "cookie-" + strconv.FormatUint(c, 10), nil
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return "", err
	}
	return "ino-" + strconv.FormatUint(st.Ino, 10), nil
}

// openState locks and loads the state of the current network namespace.
func openState(dir string) (*state, error) {
	id, err := netnsID()
	if err != nil {
		return nil, fmt.Errorf("identify network namespace: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	// One lock for the directory (flock on the directory itself): it
	// serialises concurrent setups without lock files to clean up.
	lock, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("state lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("state lock: %w", err)
	}
	st := &state{path: filepath.Join(dir, "netns-"+id+".json"), lock: lock}
	b, err := os.ReadFile(st.path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, st); err != nil {
			st.unlock()
			return nil, fmt.Errorf("state file %s: %w", st.path, err)
		}
		st.exists = true
	case !errors.Is(err, os.ErrNotExist):
		st.unlock()
		return nil, fmt.Errorf("state file: %w", err)
	}
	if st.Sysctls == nil {
		st.Sysctls = map[string]string{}
	}
	return st, nil
}

func (st *state) empty() bool {
	return len(st.Users) == 0 && len(st.Sysctls) == 0 && len(st.Addrs) == 0 &&
		len(st.Qdiscs) == 0 && len(st.Links) == 0
}

// save writes the state (atomically), or removes the file when nothing is
// recorded any more.
func (st *state) save() error {
	if st.empty() {
		if err := os.Remove(st.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := st.path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, st.path); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

func (st *state) unlock() {
	if st.lock != nil {
		st.lock.Close() // releases the flock
		st.lock = nil
	}
}

func (st *state) addUser(u stateUser) {
	st.removeUser(u)
	st.Users = append(st.Users, u)
}

func (st *state) removeUser(u stateUser) {
	st.Users = slices.DeleteFunc(st.Users, u.sameSetup)
}

// familyInUse reports whether a remaining setup of method has a real
// address of the given family.
func (st *state) familyInUse(method string, is4 bool) bool {
	return slices.ContainsFunc(st.Users, func(u stateUser) bool {
		if u.Method != method {
			return false
		}
		a, err := netip.ParseAddr(u.RealAddr)
		return err == nil && a.Is4() == is4
	})
}

// addrInUse reports whether a remaining setup lists the VIP a.
func (st *state) addrInUse(a string) bool {
	return slices.ContainsFunc(st.Users, func(u stateUser) bool { return slices.Contains(u.VIPs, a) })
}

func (st *state) recordAddr(a string) {
	if !slices.Contains(st.Addrs, a) {
		st.Addrs = append(st.Addrs, a)
	}
}

func (st *state) addedAddr(a string) bool { return slices.Contains(st.Addrs, a) }

func (st *state) forgetAddr(a string) {
	st.Addrs = slices.DeleteFunc(st.Addrs, func(s string) bool { return s == a })
}

func (st *state) recordString(list *[]string, s string) {
	if !slices.Contains(*list, s) {
		*list = append(*list, s)
	}
}

func (st *state) forgetString(list *[]string, s string) {
	*list = slices.DeleteFunc(*list, func(x string) bool { return x == s })
}

// setSysctl sets key, recording its former value the first time. It
// reports whether the value changed.
func (st *state) setSysctl(key, value string) (bool, error) {
	cur, err := readSysctl(key)
	if err != nil {
		return false, err
	}
	if _, ok := st.Sysctls[key]; !ok {
		st.Sysctls[key] = cur
	}
	if cur == value {
		return false, nil
	}
	return true, writeSysctl(key, value)
}

var errNoSysctl = errors.New("no such sysctl")

// readSysctl reads /proc/sys/<key> ("net/ipv4/conf/all/arp_ignore") in the
// current thread's network namespace.
func readSysctl(key string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", key))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("sysctl %s: %w", key, errNoSysctl)
	}
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysctl(key, value string) error {
	err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sysctl %s: %w", key, errNoSysctl)
	}
	if err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}
