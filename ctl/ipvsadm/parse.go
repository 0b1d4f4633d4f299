package ipvsadm

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gvs/ctl/api"
	"gvs/ctl/config"
	"gvs/lb"
)

// Action is what a command line asks gvsctl to do.
type Action int

// Actions. Each but ActHelp calls one control-socket operation (Command.Op):
// ActConns and ActSessions page through OpSessions, ActStats repeats OpStats
// with --watch.
const (
	ActHelp          Action = iota // -h, --help, gvsctl help: print Usage
	ActList                        // -L [-n] [--stats|--rate] [-t|-u|--any VIP:PORT]
	ActConns                       // -L -c: ipvsadm's connection listing
	ActAddService                  // -A
	ActEditService                 // -E
	ActDeleteService               // -D
	ActAddReal                     // -a
	ActEditReal                    // -e
	ActDeleteReal                  // -d
	ActClear                       // -C
	ActZero                        // -Z
	ActSave                        // -S
	ActRestore                     // -R (the rules come from stdin)
	ActVersion                     // -v, gvsctl version
	ActReload                      // gvsctl reload
	ActHealth                      // gvsctl health
	ActVRRP                        // gvsctl vrrp
	ActSessions                    // gvsctl conns
	ActStats                       // gvsctl stats [--watch]
	ActBGP                         // gvsctl bgp
	ActBGPDrain                    // gvsctl bgp drain|undrain
)

var actionNames = [...]string{
	ActHelp: "help", ActList: "list", ActConns: "list-connections", ActAddService: "add-service",
	ActEditService: "edit-service", ActDeleteService: "delete-service", ActAddReal: "add-server",
	ActEditReal: "edit-server", ActDeleteReal: "delete-server", ActClear: "clear", ActZero: "zero",
	ActSave: "save", ActRestore: "restore", ActVersion: "version", ActReload: "reload",
	ActHealth: "health", ActVRRP: "vrrp", ActSessions: "conns", ActStats: "stats",
	ActBGP: "bgp", ActBGPDrain: "bgp-drain",
}

// String is the action's name, as ipvsadm's messages and gvsctl's
// subcommands call it.
func (a Action) String() string {
	if int(a) >= 0 && int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Read reports whether the action only reads (and so takes -o json).
func (a Action) Read() bool {
	switch a {
	case ActList, ActConns, ActSave, ActVersion, ActHealth, ActVRRP, ActSessions, ActStats, ActBGP:
		return true
	}
	return false
}

// Command is a parsed command line: the operation to call and its
// arguments, and how to print the result.
type Command struct {
	Action Action
	// Op is the control-socket operation (api.Op*); empty for ActHelp.
	Op string
	// Args are Op's arguments: api.ServiceFilter, config.Service,
	// api.ServiceID, api.RealArgs, api.SaveArgs, api.SessionFilter,
	// api.RestoreArgs, or nil. For ActRestore the caller fills Text from
	// stdin; -a/-e with --l3dsr DSCP (which add_real and edit_real cannot
	// carry) are sent as OpRestore of that one rule, Text filled here.
	Args any
	// Socket is --socket; empty: $GVS_SOCKET, else api.DefaultSocket.
	Socket string
	// JSON is -o json: print the API result as JSON.
	JSON bool
	// List are the table options of -L.
	List ListOptions
	// Limit is how many sessions ActConns and ActSessions list; 0: all.
	Limit int
	// Watch is stats --watch's refresh interval; 0: print once.
	Watch time.Duration
	// Count stops --watch after this many refreshes; 0: until interrupted.
	Count int
}

// Defaults and bounds of the command line, as ipvsadm's where it has them.
const (
	DefaultPersistence = 300             // -p without a value, in seconds
	MaxPersistence     = 31 * 86400      // ipvsadm's MAX_TIMEOUT
	DefaultScheduler   = "wlc"           // -A / -E without -s
	DefaultMethod      = "dr"            // -A without a forwarding method (ipvsadm's -g)
	DefaultWeight      = 1               // -a without -w
	MinWatch           = time.Second / 2 // stats --watch is clamped to this
)

// UsageError is an error in the command line; gvsctl exits 2 on it.
type UsageError struct{ Msg string }

// Error returns the message.
func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Parse parses gvsctl's command line (without the program name). Every
// error it returns is a *UsageError.
func Parse(args []string) (Command, error) {
	if i := subcommandIndex(args); i >= 0 {
		rest := append(append([]string{}, args[:i]...), args[i+1:]...)
		return parseSubcommand(args[i], rest)
	}
	items, err := scan(args)
	if err != nil {
		return Command{}, err
	}
	return build(items)
}

// ---- the ipvsadm grammar ----
//
// ipvsadm's grammar is a command flag plus option flags, in any order,
// where some short options take an optional value in the next argument
// (`-p 300`, `-p -M 255.255.255.0`: popt's POPT_ARGFLAG_OPTIONAL), `-o`
// is ipvsadm's one-packet flag but gvsctl's `-o json`, and the command
// decides which options are legal. pflag cannot take an optional value of
// a short flag from the next argument (only `-p300`), so this small
// scanner reads the options and build checks them against the command.

type argKind uint8

const (
	noArg  argKind = iota
	reqArg         // value glued (-p300, --x=v) or in the next argument
	optArg         // value glued, or the next argument unless it starts with '-'
)

type optID uint8

const (
	optNone optID = iota
	// commands
	cmdAdd
	cmdEdit
	cmdDel
	cmdClear
	cmdRestore
	cmdSave
	cmdAddReal
	cmdEditReal
	cmdDelReal
	cmdList
	cmdZero
	cmdHelp
	cmdVersion
	cmdSet
	cmdStartDaemon
	cmdStopDaemon
	// options
	optTCP
	optUDP
	optAny
	optFwmark
	optIPv6
	optSched
	optPersist
	optNetmask
	optSchedFlags
	optOps
	optPE
	optReal
	optGate
	optMasq
	optIPIP
	optFullNAT
	optL3DSR
	optLaddr
	optSlowStart
	optOnRemove
	optMaglevSize
	optClientPort
	optState
	optWeight
	optUThresh
	optLThresh
	optNumeric
	optConn
	optStats
	optRate
	optExact
	optThresholds
	optPersistConn
	optTimeout
	optDaemon
	optNoSort
	optSort
	optMcast
	optSyncID
	optSocket
	optOutput
	optFormat
	numOpts
)

type optDef struct {
	long  string
	short byte
	arg   argKind
	cmd   bool
	// unsupported, when set, is why gvs has no such command or option.
	unsupported string
}

var defs = [numOpts]optDef{
	cmdAdd:         {long: "add-service", short: 'A', cmd: true},
	cmdEdit:        {long: "edit-service", short: 'E', cmd: true},
	cmdDel:         {long: "delete-service", short: 'D', cmd: true},
	cmdClear:       {long: "clear", short: 'C', cmd: true},
	cmdRestore:     {long: "restore", short: 'R', cmd: true},
	cmdSave:        {long: "save", short: 'S', cmd: true},
	cmdAddReal:     {long: "add-server", short: 'a', cmd: true},
	cmdEditReal:    {long: "edit-server", short: 'e', cmd: true},
	cmdDelReal:     {long: "delete-server", short: 'd', cmd: true},
	cmdList:        {long: "list", short: 'L', cmd: true},
	cmdZero:        {long: "zero", short: 'Z', cmd: true},
	cmdHelp:        {long: "help", short: 'h', cmd: true},
	cmdVersion:     {long: "version", short: 'v', cmd: true},
	cmdSet:         {long: "set", cmd: true, unsupported: "session timeouts are set in the configuration file ([global.timeouts])"},
	cmdStartDaemon: {long: "start-daemon", arg: reqArg, cmd: true, unsupported: "gvs has no connection sync daemon"},
	cmdStopDaemon:  {long: "stop-daemon", arg: reqArg, cmd: true, unsupported: "gvs has no connection sync daemon"},
	optTCP:         {long: "tcp-service", short: 't', arg: reqArg},
	optUDP:         {long: "udp-service", short: 'u', arg: reqArg},
	optAny:         {long: "any", arg: reqArg},
	optFwmark:      {long: "fwmark-service", short: 'f', arg: reqArg, unsupported: "gvs has no firewall-mark services (use --any VIP:0 for every protocol and port)"},
	optIPv6:        {long: "ipv6", short: '6', unsupported: "gvs has no firewall-mark services"},
	optSched:       {long: "scheduler", short: 's', arg: reqArg},
	optPersist:     {long: "persistent", short: 'p', arg: optArg},
	optNetmask:     {long: "netmask", short: 'M', arg: reqArg},
	optSchedFlags:  {long: "sched-flags", short: 'b', arg: reqArg},
	optOps:         {long: "ops", short: 'o'},
	optPE:          {long: "pe", arg: reqArg, unsupported: "gvs has no persistence engines"},
	optReal:        {long: "real-server", short: 'r', arg: reqArg},
	optGate:        {long: "gatewaying", short: 'g'},
	optMasq:        {long: "masquerading", short: 'm'},
	optIPIP:        {long: "ipip", short: 'i'},
	optFullNAT:     {long: "fullnat"},
	optL3DSR:       {long: "l3dsr", arg: optArg},
	optLaddr:       {long: "laddr", arg: reqArg},
	optSlowStart:   {long: "slow-start", arg: reqArg},
	optOnRemove:    {long: "on-remove", arg: reqArg},
	optMaglevSize:  {long: "maglev-size", arg: reqArg},
	optClientPort:  {long: "client-port", arg: reqArg},
	optState:       {long: "state", arg: reqArg},
	optWeight:      {long: "weight", short: 'w', arg: reqArg},
	optUThresh:     {long: "u-threshold", short: 'x', arg: reqArg, unsupported: "gvs has no connection thresholds"},
	optLThresh:     {long: "l-threshold", short: 'y', arg: reqArg, unsupported: "gvs has no connection thresholds"},
	optNumeric:     {long: "numeric", short: 'n'},
	optConn:        {long: "connection", short: 'c'},
	optStats:       {long: "stats"},
	optRate:        {long: "rate"},
	optExact:       {long: "exact", short: 'X'},
	optThresholds:  {long: "thresholds", unsupported: "gvs has no connection thresholds"},
	optPersistConn: {long: "persistent-conn", unsupported: "persistence templates are not counted per real (see gvsctl conns)"},
	optTimeout:     {long: "timeout", unsupported: "session timeouts are in the configuration file ([global.timeouts])"},
	optDaemon:      {long: "daemon", unsupported: "gvs has no connection sync daemon"},
	optNoSort:      {long: "nosort"},
	optSort:        {long: "sort"},
	optMcast:       {long: "mcast-interface", arg: reqArg, unsupported: "gvs has no connection sync daemon"},
	optSyncID:      {long: "syncid", arg: reqArg, unsupported: "gvs has no connection sync daemon"},
	optSocket:      {long: "socket", arg: reqArg},
	optOutput:      {long: "output", arg: reqArg},
	optFormat:      {long: "format", arg: reqArg},
}

// item is one option as scanned: its id, its value and how it was spelled.
type item struct {
	id     optID
	val    string
	hasVal bool
	as     string // "-p", "--persistent"
}

// aliases are other long names ctl/rules accepts.
var aliases = map[string]optID{"any-service": optAny, "tunnel": optIPIP}

func byLong(name string) optID {
	if id, ok := aliases[name]; ok {
		return id
	}
	for id := optID(1); id < numOpts; id++ {
		if defs[id].long == name {
			return id
		}
	}
	return optNone
}

func byShort(c byte) optID {
	if c == 'l' {
		return cmdList
	}
	for id := optID(1); id < numOpts; id++ {
		if defs[id].short == c {
			return id
		}
	}
	return optNone
}

// isOption reports whether a looks like an option rather than a value.
func isOption(a string) bool { return len(a) > 1 && a[0] == '-' }

func isOutputFormat(v string) bool { return v == "json" || v == "text" }

// scan reads args into options. See the comment above argKind for why
// this is not pflag.
func scan(args []string) ([]item, error) {
	var items []item
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i+1 < len(args) {
				return nil, usagef("unexpected argument %q", args[i+1])
			}
		case strings.HasPrefix(a, "--"):
			name, val, eq := strings.Cut(a[2:], "=")
			id := byLong(name)
			if id == optNone {
				return nil, usagef("unknown option --%s", name)
			}
			if u := defs[id].unsupported; u != "" {
				return nil, usagef("--%s is not supported by gvs: %s", name, u)
			}
			it := item{id: id, as: "--" + name, val: val, hasVal: eq}
			switch defs[id].arg {
			case noArg:
				if eq {
					return nil, usagef("option --%s takes no value", name)
				}
			case reqArg:
				if !eq {
					if i+1 >= len(args) {
						return nil, usagef("option --%s needs a value", name)
					}
					i++
					it.val, it.hasVal = args[i], true
				}
			case optArg:
				if !eq && i+1 < len(args) && !isOption(args[i+1]) {
					i++
					it.val, it.hasVal = args[i], true
				}
			}
			items = append(items, it)
		case isOption(a):
			cluster := a[1:]
		cluster:
			for j := 0; j < len(cluster); j++ {
				c := cluster[j]
				id := byShort(c)
				if id == optNone {
					return nil, usagef("unknown option -%c", c)
				}
				if u := defs[id].unsupported; u != "" {
					return nil, usagef("-%c is not supported by gvs: %s", c, u)
				}
				rest := cluster[j+1:]
				it := item{id: id, as: "-" + string(c)}
				if c == 'o' {
					// -o json / -ojson is the output format; a bare -o is
					// ipvsadm's one-packet scheduling (--ops).
					switch {
					case isOutputFormat(rest):
						items = append(items, item{id: optOutput, as: "-o", val: rest, hasVal: true})
						break cluster
					case rest == "" && i+1 < len(args) && !isOption(args[i+1]):
						// ipvsadm takes no arguments: a word after -o can
						// only be meant as the output format.
						i++
						items = append(items, item{id: optOutput, as: "-o", val: args[i], hasVal: true})
						break cluster
					}
					items = append(items, it)
					continue
				}
				switch defs[id].arg {
				case noArg:
					items = append(items, it)
					continue
				case reqArg:
					switch {
					case rest != "":
						it.val = rest
					case i+1 < len(args):
						i++
						it.val = args[i]
					default:
						return nil, usagef("option -%c needs a value", c)
					}
					it.hasVal = true
				case optArg:
					switch {
					case rest != "":
						it.val, it.hasVal = rest, true
					case i+1 < len(args) && !isOption(args[i+1]):
						i++
						it.val, it.hasVal = args[i], true
					}
				}
				items = append(items, it)
				break cluster
			}
		default:
			return nil, usagef("unexpected argument %q", a)
		}
	}
	return items, nil
}

// groups: options that exclude each other count as one (ipvsadm's
// "multiple ... options specified").
func group(id optID) optID {
	switch id {
	case optTCP, optUDP, optAny:
		return optTCP
	case optGate, optMasq, optIPIP, optFullNAT, optL3DSR:
		return optGate
	}
	return id
}

var groupNames = map[optID]string{
	optTCP: "service-address (-t, -u, --any)", optGate: "forwarding-method (-g, -m, -i, --fullnat, --l3dsr)",
}

// per-command rules: required and allowed option groups (socket and output
// are allowed everywhere; output is checked against Action.Read).
type rule struct {
	action   Action
	required []optID
	allowed  []optID
}

var serviceOpts = []optID{optSched, optPersist, optNetmask, optSchedFlags, optOps, optGate, optLaddr,
	optSlowStart, optOnRemove, optMaglevSize, optClientPort}

var cmdRules = map[optID]rule{
	cmdAdd:      {ActAddService, []optID{optTCP}, serviceOpts},
	cmdEdit:     {ActEditService, []optID{optTCP}, serviceOpts},
	cmdDel:      {ActDeleteService, []optID{optTCP}, nil},
	cmdClear:    {ActClear, nil, nil},
	cmdRestore:  {ActRestore, nil, nil},
	cmdSave:     {ActSave, nil, []optID{optNumeric, optFormat}},
	cmdAddReal:  {ActAddReal, []optID{optTCP, optReal}, []optID{optGate, optWeight, optState}},
	cmdEditReal: {ActEditReal, []optID{optTCP, optReal}, []optID{optGate, optWeight, optState}},
	cmdDelReal:  {ActDeleteReal, []optID{optTCP, optReal}, nil},
	cmdList:     {ActList, nil, []optID{optTCP, optNumeric, optConn, optStats, optRate, optExact, optNoSort, optSort}},
	cmdZero:     {ActZero, nil, []optID{optTCP}},
	cmdVersion:  {ActVersion, nil, nil},
}

func optName(id optID) string {
	if n, ok := groupNames[id]; ok {
		return n
	}
	d := defs[id]
	if d.short != 0 {
		return fmt.Sprintf("-%c (--%s)", d.short, d.long)
	}
	return "--" + d.long
}

// build checks the scanned options against the command and makes the
// Command.
func build(items []item) (Command, error) {
	var cmd Command
	var command *item
	opts := map[optID]item{}
	var laddrs []string
	output := ""
	for _, it := range items {
		if it.id == cmdHelp {
			// -h wins over everything else, so "gvsctl -A -h" helps.
			return Command{Action: ActHelp}, nil
		}
	}
	for i := range items {
		it := items[i]
		d := defs[it.id]
		switch {
		case d.cmd:
			if command != nil {
				return cmd, usagef("multiple commands specified (%s and %s)", command.as, it.as)
			}
			command = &items[i]
			continue
		case it.id == optLaddr:
			for _, a := range strings.Split(it.val, ",") {
				laddrs = append(laddrs, strings.TrimSpace(a))
			}
		case it.id == optOutput:
			if output != "" {
				return cmd, usagef("multiple -o (--output) options specified")
			}
			output = it.val
		}
		g := group(it.id)
		if prev, dup := opts[g]; dup && it.id != optLaddr {
			if prev.id == it.id {
				return cmd, usagef("multiple %s options specified", it.as)
			}
			return cmd, usagef("multiple %s options specified (%s and %s)", optName(g), prev.as, it.as)
		}
		opts[g] = it
	}
	if o, ok := opts[optSocket]; ok {
		if o.val == "" {
			return cmd, usagef("--socket needs a path")
		}
		cmd.Socket = o.val
	}
	switch output {
	case "", "text":
	case "json":
		cmd.JSON = true
	default:
		return cmd, usagef("-o %s: want json or text", output)
	}
	if command == nil {
		for g := range opts {
			if g != optSocket && g != optOutput {
				return cmd, usagef("no command given (one of -A -E -D -C -R -S -a -e -d -L -Z -h)")
			}
		}
		// No command at all lists the table, as ipvsadm without arguments.
		command = &item{id: cmdList, as: "-L"}
	}
	r := cmdRules[command.id]
	allowed := map[optID]bool{optSocket: true, optOutput: true}
	for _, g := range r.required {
		allowed[g] = true
		if _, ok := opts[g]; !ok {
			return cmd, usagef("you need to supply the %s option for %s", optName(g), command.as)
		}
	}
	for _, g := range r.allowed {
		allowed[g] = true
	}
	for _, it := range items {
		if !defs[it.id].cmd && !allowed[group(it.id)] {
			return cmd, usagef("illegal %s option with %s", it.as, command.as)
		}
	}
	cmd.Action = r.action
	if cmd.JSON && !cmd.Action.Read() {
		return cmd, usagef("-o json is for read commands (-L, -S, -v and the gvsctl subcommands but reload), not %s", command.as)
	}

	var id api.ServiceID
	var vip netip.Addr
	if it, ok := opts[optTCP]; ok {
		var err error
		if id, vip, err = parseServiceArg(it); err != nil {
			return cmd, err
		}
	}
	_, hasSvc := opts[optTCP]
	filter := api.ServiceFilter{}
	if hasSvc {
		filter.Service = &id
	}

	switch cmd.Action {
	case ActList:
		cmd.Op, cmd.Args = api.OpStats, filter
		_, stats := opts[optStats]
		_, rate := opts[optRate]
		_, exact := opts[optExact]
		_, nosort := opts[optNoSort]
		cmd.List = ListOptions{Stats: stats, Rate: rate, Exact: exact, NoSort: nosort, Single: hasSvc}
		if _, conns := opts[optConn]; conns {
			if stats || rate {
				return cmd, usagef("options conflict in the list command: -c with --stats or --rate")
			}
			cmd.Action, cmd.Op = ActConns, api.OpSessions
			cmd.Args = api.SessionFilter{Service: filter.Service, Limit: api.MaxSessions}
		}
	case ActZero:
		cmd.Op, cmd.Args = api.OpZero, filter
	case ActClear:
		cmd.Op = api.OpClear
	case ActRestore:
		cmd.Op, cmd.Args = api.OpRestore, api.RestoreArgs{}
	case ActSave:
		format := "ipvsadm"
		if it, ok := opts[optFormat]; ok {
			format = strings.ToLower(it.val)
			if format != "ipvsadm" && format != "toml" {
				return cmd, usagef("--format %s: want ipvsadm or toml", it.val)
			}
		}
		cmd.Op, cmd.Args = api.OpSave, api.SaveArgs{Format: format}
	case ActVersion:
		cmd.Op = api.OpVersion
	case ActDeleteService:
		cmd.Op, cmd.Args = api.OpDeleteService, id
	case ActAddService, ActEditService:
		svc, err := buildService(id, vip, opts, laddrs, cmd.Action == ActAddService)
		if err != nil {
			return cmd, err
		}
		cmd.Op, cmd.Args = api.OpAddService, svc
		if cmd.Action == ActEditService {
			cmd.Op = api.OpEditService
		}
	case ActAddReal, ActEditReal, ActDeleteReal:
		real, dscp, err := buildReal(id, vip, opts, cmd.Action)
		if err != nil {
			return cmd, err
		}
		cmd.Args = api.RealArgs{Service: id, Real: real}
		cmd.Op = map[Action]string{ActAddReal: api.OpAddReal, ActEditReal: api.OpEditReal, ActDeleteReal: api.OpDeleteReal}[cmd.Action]
		if dscp != 0 {
			// add_real and edit_real carry no DSCP (a setting of the
			// service): the rule goes as one -R line, which sets the
			// service's DSCP when it has none, as -R of a saved file does.
			cmd.Op, cmd.Args = api.OpRestore, api.RestoreArgs{Text: realRule(command.id, id, real, opts, dscp)}
		}
	}
	return cmd, nil
}

// parseServiceArg parses the value of -t, -u or --any.
func parseServiceArg(it item) (api.ServiceID, netip.Addr, error) {
	proto := map[optID]string{optTCP: "tcp", optUDP: "udp", optAny: "any"}[it.id]
	addr, port, _, err := parseAddrPort(it.val, proto)
	if err != nil {
		return api.ServiceID{}, addr, usagef("%s %s: %v", it.as, it.val, err)
	}
	return api.ServiceID{Proto: proto, VIP: addr.String(), Port: port}, addr, nil
}

// parseAddrPort parses ipvsadm's host[:port]: 10.0.0.1, 10.0.0.1:80,
// [2001:db8::1]:80, 2001:db8::1. The port is a number or a name from
// /etc/services; addresses must be numeric.
func parseAddrPort(s, proto string) (netip.Addr, int, bool, error) {
	var host, port string
	hasPort := false
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, 0, false, errors.New("missing ']'")
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return netip.Addr{}, 0, false, fmt.Errorf("want [IPv6]:port, not %q", s)
			}
			port, hasPort = rest[1:], true
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Is4In6() {
			return netip.Addr{}, 0, false, fmt.Errorf("bad IPv6 address %q", host)
		}
	case strings.Count(s, ":") > 1:
		host = s // a bare IPv6 address: no port
	default:
		h, p, found := strings.Cut(s, ":")
		host, port, hasPort = h, p, found
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, false, fmt.Errorf("bad address %q (gvsctl takes numeric addresses)", host)
	}
	if a.Zone() != "" {
		return netip.Addr{}, 0, false, fmt.Errorf("address %q: zones are not supported", host)
	}
	n := 0
	if hasPort {
		if n, err = parsePort(port, proto); err != nil {
			return netip.Addr{}, 0, false, err
		}
	}
	return a, n, hasPort, nil
}

func parsePort(p, proto string) (int, error) {
	if p == "" {
		return 0, errors.New("empty port")
	}
	if p[0] >= '0' && p[0] <= '9' {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return 0, fmt.Errorf("bad port %q", p)
		}
		return n, nil
	}
	if proto != "udp" {
		proto = "tcp"
	}
	n, err := net.LookupPort(proto, p)
	if err != nil {
		return 0, fmt.Errorf("unknown port name %q", p)
	}
	return n, nil
}

// buildService makes the config.Service of -A / -E. For -A, what is not
// given takes ipvsadm's defaults (scheduler wlc, method dr). For -E, as
// gvsd's edit_service (and an -E line of -R) read it: persistence, its
// mask, scheduler flags and one-packet are set as given (absent: off, as
// ipvsadm's -E, which has no other way to turn them off); everything else
// is changed only when given (empty: kept), the scheduler included.
func buildService(id api.ServiceID, vip netip.Addr, opts map[optID]item, laddrs []string, add bool) (config.Service, error) {
	s := config.Service{Proto: id.Proto, VIP: id.VIP, Port: id.Port}
	if add {
		s.Scheduler, s.Method = DefaultScheduler, DefaultMethod
	}
	if it, ok := opts[optSched]; ok {
		k, err := lb.ParseSched(it.val)
		if err != nil {
			return s, usagef("%s: %v", it.as, err)
		}
		s.Scheduler = k.String()
	}
	if it, ok := opts[optPersist]; ok {
		secs := DefaultPersistence
		if it.hasVal {
			n, err := strconv.Atoi(it.val)
			if err != nil || n < 1 || n > MaxPersistence {
				return s, usagef("invalid timeout value %q specified with %s (want 1..%d seconds)", it.val, it.as, MaxPersistence)
			}
			secs = n
		}
		s.Persistence = config.Duration{Duration: time.Duration(secs) * time.Second}
	}
	if it, ok := opts[optNetmask]; ok {
		bits, err := parseNetmask(it.val, vip.Is6())
		if err != nil {
			return s, usagef("%s %s: %v", it.as, it.val, err)
		}
		s.PersistMask = bits
	}
	if it, ok := opts[optSchedFlags]; ok {
		flags, err := parseSchedFlags(it.val)
		if err != nil {
			return s, usagef("%s %s: %v", it.as, it.val, err)
		}
		s.Flags = flags
	}
	if it, ok := opts[optOps]; ok {
		if id.Proto == "tcp" {
			return s, usagef("%s: one-packet scheduling is only for UDP (or --any) services", it.as)
		}
		s.Flags = addFlag(s.Flags, "one-packet")
	}
	if it, ok := opts[optGate]; ok {
		s.Method = methodOf(it.id)
		if it.id == optL3DSR {
			if !it.hasVal {
				return s, usagef("--l3dsr needs the DSCP value (1..63) with -A and -E")
			}
			d, err := parseDSCP(it.val)
			if err != nil {
				return s, err
			}
			s.DSCP = d
		}
	}
	for _, l := range laddrs {
		a, err := netip.ParseAddr(l)
		if err != nil || a.Zone() != "" {
			return s, usagef("--laddr %q: bad address", l)
		}
		if a.Is4() != vip.Is4() {
			return s, usagef("--laddr %s: address family differs from the VIP's", a)
		}
		s.LocalAddrs = append(s.LocalAddrs, a.String())
	}
	if it, ok := opts[optSlowStart]; ok {
		d, err := time.ParseDuration(it.val)
		if err != nil || d < 0 {
			return s, usagef("--slow-start %s: want a duration such as 10s", it.val)
		}
		s.SlowStart = config.Duration{Duration: d}
	}
	if it, ok := opts[optOnRemove]; ok {
		if it.val != "drain" && it.val != "drop" {
			return s, usagef("--on-remove %s: want drain or drop", it.val)
		}
		s.OnRemove = it.val
	}
	if it, ok := opts[optMaglevSize]; ok {
		n, err := strconv.Atoi(it.val)
		if err != nil || n < 2 {
			return s, usagef("--maglev-size %s: want a prime table size", it.val)
		}
		s.MaglevSize = n
	}
	if it, ok := opts[optClientPort]; ok {
		if it.val == "" {
			return s, usagef("--client-port needs an interface name")
		}
		s.ClientPort = it.val
	}
	return s, nil
}

func parseDSCP(v string) (int, error) {
	d, err := strconv.Atoi(v)
	if err != nil || d < 1 || d > 63 {
		return 0, usagef("--l3dsr %s: want a DSCP value 1..63", v)
	}
	return d, nil
}

func methodOf(id optID) string {
	switch id {
	case optMasq:
		return "nat"
	case optIPIP:
		return "tunnel"
	case optFullNAT:
		return "fullnat"
	case optL3DSR:
		return "l3dsr"
	}
	return "dr"
}

// parseNetmask parses -M: a dotted IPv4 mask (contiguous) or a prefix
// length (also "/24"); for IPv6 services ipvsadm takes a prefix length.
func parseNetmask(v string, v6 bool) (int, error) {
	max := 32
	if v6 {
		max = 128
	}
	p := strings.TrimPrefix(v, "/")
	if n, err := strconv.Atoi(p); err == nil {
		if n < 1 || n > max {
			return 0, fmt.Errorf("prefix length out of range 1..%d", max)
		}
		return n, nil
	}
	if v6 {
		return 0, errors.New("want a prefix length 1..128 for an IPv6 service")
	}
	m, err := netip.ParseAddr(v)
	if err != nil || !m.Is4() {
		return 0, errors.New("want a netmask such as 255.255.255.0 or a prefix length")
	}
	b := m.As4()
	bits := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for bits&0x80000000 != 0 {
		n++
		bits <<= 1
	}
	if bits != 0 || n == 0 {
		return 0, errors.New("the netmask is not contiguous")
	}
	return n, nil
}

// parseSchedFlags parses -b: ipvsadm's sh-fallback, sh-port, mh-fallback,
// mh-port, flag-1 (fallback), flag-2 (port), and gvs's names, comma
// separated.
func parseSchedFlags(v string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		switch strings.TrimSpace(strings.ToLower(f)) {
		case "sh-fallback", "mh-fallback", "flag-1", "fallback":
			out = addFlag(out, "fallback")
		case "sh-port", "mh-port", "flag-2", "hash-port":
			out = addFlag(out, "hash-port")
		case "one-packet", "ops":
			out = addFlag(out, "one-packet")
		case "flag-3":
			return nil, errors.New("flag-3 has no meaning in gvs")
		default:
			return nil, fmt.Errorf("unknown scheduler flag %q (want sh-fallback, sh-port, mh-fallback, mh-port)", f)
		}
	}
	return out, nil
}

func addFlag(flags []string, f string) []string {
	for _, x := range flags {
		if x == f {
			return flags
		}
	}
	return append(flags, f)
}

// buildReal makes the real of -a / -e / -d, and returns the DSCP given
// with --l3dsr (0: none). A port not given is 0, the service's port (what
// ipvsadm does by copying it). For -a, weight and method not given take
// the defaults (weight 1, the service's method); for -e they are kept, as
// gvsd's edit_real reads empty fields, and so is the state unless --state.
func buildReal(id api.ServiceID, vip netip.Addr, opts map[optID]item, act Action) (config.Real, int, error) {
	var r config.Real
	it := opts[optReal]
	a, port, _, err := parseAddrPort(it.val, id.Proto)
	if err != nil {
		return r, 0, usagef("%s %s: %v", it.as, it.val, err)
	}
	if a.Is4() != vip.Is4() {
		return r, 0, usagef("%s %s: address family differs from the VIP's", it.as, it.val)
	}
	r.Addr, r.Port = a.String(), port
	if act == ActDeleteReal {
		return r, 0, nil
	}
	if act == ActAddReal {
		r.Weight = ptrTo(DefaultWeight)
	}
	if wi, ok := opts[optWeight]; ok {
		w, err := strconv.Atoi(wi.val)
		if err != nil || w < 0 || w > lb.MaxWeight {
			return r, 0, usagef("illegal weight %q specified with %s (want 0..%d)", wi.val, wi.as, lb.MaxWeight)
		}
		r.Weight = &w
	}
	if si, ok := opts[optState]; ok {
		switch si.val {
		case "up", "drain", "down":
		default:
			return r, 0, usagef("--state %s: want up, drain or down", si.val)
		}
		r.State = si.val
	}
	dscp := 0
	if m, ok := opts[optGate]; ok {
		r.Method = methodOf(m.id)
		if m.id == optL3DSR && m.hasVal {
			if dscp, err = parseDSCP(m.val); err != nil {
				return r, 0, err
			}
		}
		switch r.Method {
		case "dr", "tunnel", "l3dsr":
			if port != 0 && port != id.Port {
				return r, 0, usagef("%s: %s cannot change the port (%d to %d): the real answers from the VIP's port", m.as, r.Method, id.Port, port)
			}
		}
	}
	return r, dscp, nil
}

func ptrTo[T any](v T) *T { return &v }

// realRule writes -a / -e with --l3dsr DSCP as a rule of ctl/rules (the
// language of -R).
func realRule(command optID, id api.ServiceID, r config.Real, opts map[optID]item, dscp int) string {
	var b strings.Builder
	b.WriteString(map[optID]string{cmdAddReal: "-a", cmdEditReal: "-e"}[command])
	b.WriteString(map[string]string{"tcp": " -t ", "udp": " -u ", "any": " --any "}[id.Proto])
	b.WriteString(addrPort(id.VIP, id.Port))
	real := r.Addr
	if a, err := netip.ParseAddr(r.Addr); err == nil {
		if r.Port != 0 {
			real = netip.AddrPortFrom(a, uint16(r.Port)).String()
		} else if a.Is6() {
			real = "[" + r.Addr + "]"
		}
	}
	fmt.Fprintf(&b, " -r %s --l3dsr %d", real, dscp)
	if _, ok := opts[optWeight]; ok || command == cmdAddReal {
		fmt.Fprintf(&b, " -w %d", *r.Weight)
	}
	if r.State != "" {
		fmt.Fprintf(&b, " --state %s", r.State)
	}
	b.WriteString("\n")
	return b.String()
}
