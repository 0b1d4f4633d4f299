package ipvsadm

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gvs/ctl/api"
	"gvs/ctl/config"
	"gvs/ctl/rules"
)

// meaning is what a rule does, in a form both readers can be reduced to.
type meaning struct {
	Cmd  byte
	Svc  config.Service
	Real config.Real
	DSCP int
}

func normFlags(fs []string) []string {
	var out []string
	for _, f := range fs {
		switch f {
		case "sh-port", "mh-port", "hash-port", "flag-2":
			f = "hash-port"
		case "sh-fallback", "mh-fallback", "fallback", "flag-1":
			f = "fallback"
		case "ops", "one-packet":
			f = "one-packet"
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

func (m meaning) norm() meaning {
	m.Svc.Reals = nil
	m.Svc.Flags = normFlags(m.Svc.Flags)
	if m.Cmd == 'A' && m.Svc.Method == "" {
		m.Svc.Method = DefaultMethod
	}
	if m.Svc.Method != "" {
		m.Svc.Method = rules.CanonMethod(m.Svc.Method)
	}
	if m.Real.Method != "" {
		m.Real.Method = rules.CanonMethod(m.Real.Method)
	}
	if m.Cmd == 'a' && m.Real.Weight == nil {
		m.Real.Weight = ptr(DefaultWeight)
	}
	return m
}

func fromRule(r rules.Rule) meaning {
	m := meaning{Cmd: byte(r.Cmd), Svc: r.Service, Real: r.Real, DSCP: r.DSCP}
	switch r.Cmd {
	case rules.AddService, rules.EditService:
	default:
		m.Svc = config.Service{Proto: r.Service.Proto, VIP: r.Service.VIP, Port: r.Service.Port}
	}
	if r.Cmd == rules.Clear {
		m.Svc = config.Service{}
	}
	return m.norm()
}

func fromCommand(t *testing.T, c Command) meaning {
	t.Helper()
	if c.Op == api.OpRestore && c.Action != ActRestore {
		rs, err := rules.Parse(c.Args.(api.RestoreArgs).Text)
		if err != nil || len(rs) != 1 {
			t.Fatalf("the rule gvsctl sends does not parse as one rule: %v %+v", err, rs)
		}
		return fromRule(rs[0])
	}
	idSvc := func(id api.ServiceID) config.Service {
		return config.Service{Proto: id.Proto, VIP: id.VIP, Port: id.Port}
	}
	var m meaning
	switch c.Action {
	case ActAddService, ActEditService:
		m.Cmd = map[Action]byte{ActAddService: 'A', ActEditService: 'E'}[c.Action]
		m.Svc = c.Args.(config.Service)
	case ActDeleteService:
		m.Cmd, m.Svc = 'D', idSvc(c.Args.(api.ServiceID))
	case ActAddReal, ActEditReal, ActDeleteReal:
		ra := c.Args.(api.RealArgs)
		m.Cmd = map[Action]byte{ActAddReal: 'a', ActEditReal: 'e', ActDeleteReal: 'd'}[c.Action]
		m.Svc, m.Real = idSvc(ra.Service), ra.Real
	case ActClear:
		m.Cmd = 'C'
	default:
		t.Fatalf("action %v is not a rule", c.Action)
	}
	return m.norm()
}

// TestSameLanguageAsRules: what -S prints (ctl/rules.Format) and what -R
// reads (rules.ParseArgs) means the same typed at gvsctl, so operators can
// paste a saved rule, and `gvsctl LINE` does what `echo LINE | gvsctl -R`
// does.
func TestSameLanguageAsRules(t *testing.T) {
	d := func(s int) config.Duration { return config.Duration{Duration: time.Duration(s) * time.Second} }
	svcs := []config.Service{
		{Proto: "tcp", VIP: "198.18.0.10", Port: 80, Scheduler: "wrr", Method: "nat", Persistence: d(300), PersistMask: 24,
			Reals: []config.Real{
				{Addr: "198.18.1.11", Port: 8080, Weight: ptr(3)},
				{Addr: "198.18.1.12", Port: 8080, Weight: ptr(2), State: "drain"},
				{Addr: "198.18.1.13", Port: 80, Method: "dr"},
			}},
		{Proto: "udp", VIP: "2001:db8::53", Port: 53, Scheduler: "sh", Method: "tunnel",
			Flags: []string{"fallback", "hash-port", "one-packet"}, LocalAddrs: []string{"2001:db8::9"},
			Persistence: d(60), PersistMask: 64,
			Reals: []config.Real{{Addr: "2001:db8:1::11"}, {Addr: "2001:db8:1::12", Port: 53, Weight: ptr(0), State: "down"}}},
		{Proto: "any", VIP: "198.18.0.20", Port: 0, Scheduler: "mh", Method: "fullnat", DSCP: 12,
			LocalAddrs: []string{"198.18.9.1", "198.18.9.2"}, SlowStart: d(10), OnRemove: "drop", MaglevSize: 251, ClientPort: "eth1",
			Reals: []config.Real{{Addr: "198.18.1.21", Weight: ptr(100)}, {Addr: "198.18.1.22", Method: "l3dsr"}}},
		{Proto: "tcp", VIP: "198.18.0.30", Port: 443, Method: "l3dsr", DSCP: 10,
			Reals: []config.Real{{Addr: "198.18.1.31"}, {Addr: "198.18.1.32", Port: 443, Method: "nat"}}},
	}
	lines := strings.Split(strings.TrimSpace(rules.Format(svcs)), "\n")
	if len(lines) < 12 {
		t.Fatalf("rules.Format wrote %d lines:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	lines = append(lines,
		"-A -t 198.18.0.40:80",
		"-A -u 198.18.0.40:53 -s rr -p -o",
		"-E -t 198.18.0.10:80 -s rr -p 60",
		"-E -t 198.18.0.10:80 -M 255.255.0.0",
		"-E --any 198.18.0.20:0 --fullnat --laddr 198.18.9.3",
		"-E -t 198.18.0.30:443 --l3dsr 11",
		"-D -u [2001:db8::53]:53",
		"-a -t 198.18.0.10:80 -r 198.18.1.14",
		"-a -t 198.18.0.10:80 -r 198.18.1.15 --l3dsr 10",
		"-e -t 198.18.0.10:80 -r 198.18.1.11:8080 -w 5 --state drain",
		"-e -t 198.18.0.10:80 -r 198.18.1.11:8080 -m",
		"-e -t 198.18.0.10:80 -r 198.18.1.13:80 --l3dsr 10 -w 4",
		"-d -t 198.18.0.10:80 -r 198.18.1.11:8080",
		"-d -u [2001:db8::53]:53 -r [2001:db8:1::11]",
		"-C",
	)
	for _, line := range lines {
		t.Run(line, func(t *testing.T) {
			args := strings.Fields(line)
			c, err := Parse(args)
			if err != nil {
				t.Fatalf("gvsctl: %v", err)
			}
			r, err := rules.ParseArgs(args)
			if err != nil {
				t.Fatalf("rules: %v", err)
			}
			got, want := fromCommand(t, c), fromRule(r)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("gvsctl reads\n %#v\nrules reads\n %#v", got, want)
			}
		})
	}
}
