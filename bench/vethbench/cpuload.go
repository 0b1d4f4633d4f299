package vethbench

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuSnap is a reading of the CPUs' time counters (/proc/stat) and of the
// CPU time used so far by other user-space processes, so a result can say
// how busy each CPU was and how much other work disturbed it.
type cpuSnap struct {
	at     time.Time
	busy   map[int]uint64 // per CPU: non-idle ticks
	total  map[int]uint64 // per CPU: all ticks
	steal  map[int]uint64
	others uint64 // utime+stime ticks of other user-space processes
}

const clockTicks = 100 // USER_HZ on Linux

func takeCPUSnap() cpuSnap {
	s := cpuSnap{at: time.Now(), busy: map[int]uint64{}, total: map[int]uint64{}, steal: map[int]uint64{}}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
				continue
			}
			cpu, err := strconv.Atoi(f[0][3:])
			if err != nil {
				continue
			}
			var v [8]uint64 // user nice system idle iowait irq softirq steal
			for i := range v {
				v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
			}
			var tot uint64
			for _, x := range v {
				tot += x
			}
			s.total[cpu] = tot
			s.busy[cpu] = tot - v[3] - v[4]
			s.steal[cpu] = v[7]
		}
	}
	s.others = othersTicks()
	return s
}

// othersTicks sums utime+stime of every user-space process but this one
// (kernel threads such as ksoftirqd may be doing the bench's own work).
func othersTicks() uint64 {
	self := strconv.Itoa(os.Getpid())
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var sum uint64
	for _, e := range ents {
		name := e.Name()
		if name == self || name[0] < '0' || name[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command (which may contain spaces) start
		// with the state: state ppid pgrp session tty tpgid flags
		// minflt cminflt majflt cmajflt utime stime.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		if flags, _ := strconv.ParseUint(f[6], 10, 64); flags&0x00200000 != 0 { // PF_KTHREAD
			continue
		}
		ut, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		sum += ut + st
	}
	return sum
}

// CPULoad is how busy the machine was during a measured window.
type CPULoad struct {
	// BusyPercent is, per CPU, the share of the window it was not idle
	// (anything: the bench, softirqs, other processes).
	BusyPercent map[int]float64 `json:"busy_percent"`
	// StealPercent is, per CPU, time the hypervisor gave to others.
	StealPercent map[int]float64 `json:"steal_percent,omitempty"`
	// OthersPercent is the CPU time other user-space processes used, in
	// percent of one CPU (100 = a whole CPU taken from the bench).
	OthersPercent float64 `json:"other_processes_percent"`
}

func cpuLoadBetween(a, b cpuSnap) CPULoad {
	l := CPULoad{BusyPercent: map[int]float64{}, StealPercent: map[int]float64{}}
	for cpu, tb := range b.total {
		ta, ok := a.total[cpu]
		if !ok || tb <= ta {
			continue
		}
		d := float64(tb - ta)
		l.BusyPercent[cpu] = 100 * float64(b.busy[cpu]-a.busy[cpu]) / d
		if st := b.steal[cpu] - a.steal[cpu]; st > 0 {
			l.StealPercent[cpu] = 100 * float64(st) / d
		}
	}
	if el := b.at.Sub(a.at).Seconds(); el > 0 && b.others >= a.others {
		l.OthersPercent = 100 * float64(b.others-a.others) / clockTicks / el
	}
	return l
}
