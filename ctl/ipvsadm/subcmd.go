package ipvsadm

import (
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"gvs/ctl/api"
)

// Subcommands are gvsctl's commands for what ipvsadm lacks.
var Subcommands = []string{"reload", "health", "vrrp", "bgp", "conns", "stats", "version", "help"}

// subcommandIndex returns the index of the subcommand word in args, or -1
// when args are in the ipvsadm grammar. Only --socket and -o/--output may
// come before the word.
func subcommandIndex(args []string) int {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--socket" || a == "--output":
			i++
		case strings.HasPrefix(a, "--socket=") || strings.HasPrefix(a, "--output="):
		case a == "-o" && i+1 < len(args) && isOutputFormat(args[i+1]):
			i++
		case a == "-ojson" || a == "-otext":
		case !isOption(a) && a != "--" && a != "":
			return i
		default:
			return -1
		}
	}
	return -1
}

// parseSubcommand parses gvsctl's own subcommands (with pflag: their flags
// are ordinary long flags).
func parseSubcommand(word string, args []string) (Command, error) {
	var cmd Command
	fs := pflag.NewFlagSet("gvsctl "+word, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	socket := fs.String("socket", "", "control socket")
	output := fs.StringP("output", "o", "text", "output format: text or json")
	var service, real, client *string
	var limit, count *int
	var watch *string
	switch word {
	case "reload":
		cmd.Action, cmd.Op = ActReload, api.OpReload
	case "health":
		cmd.Action, cmd.Op = ActHealth, api.OpHealth
	case "vrrp":
		cmd.Action, cmd.Op = ActVRRP, api.OpVRRP
	case "bgp":
		cmd.Action, cmd.Op = ActBGP, api.OpBGP
	case "version":
		cmd.Action, cmd.Op = ActVersion, api.OpVersion
	case "help":
		cmd.Action = ActHelp
	case "conns":
		cmd.Action, cmd.Op = ActSessions, api.OpSessions
		service = fs.String("service", "", "PROTO:VIP:PORT")
		real = fs.String("real", "", "ADDR:PORT")
		client = fs.String("client", "", "ADDR")
		limit = fs.Int("limit", api.MaxSessions, "sessions to list (0: all)")
	case "stats":
		cmd.Action, cmd.Op = ActStats, api.OpStats
		watch = fs.String("watch", "", "redraw every INTERVAL")
		fs.Lookup("watch").NoOptDefVal = "1s"
		count = fs.Int("count", 0, "with --watch: stop after N refreshes")
		service = fs.String("service", "", "PROTO:VIP:PORT")
	default:
		return cmd, usagef("unknown command %q (ipvsadm-style options start with '-'; subcommands: %s)", word, strings.Join(Subcommands, ", "))
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return Command{Action: ActHelp}, nil
		}
		return cmd, usagef("%s: %v", word, err)
	}
	pos := fs.Args()
	if fs.Changed("socket") {
		if *socket == "" {
			return cmd, usagef("--socket needs a path")
		}
		cmd.Socket = *socket
	}
	switch *output {
	case "text":
	case "json":
		cmd.JSON = true
	default:
		return cmd, usagef("-o %s: want json or text", *output)
	}
	if cmd.JSON && !cmd.Action.Read() {
		return cmd, usagef("-o json is for read commands, not %s", word)
	}
	var id *api.ServiceID
	if service != nil && *service != "" {
		s, err := ParseServiceID(*service)
		if err != nil {
			return cmd, usagef("--service %s: %v", *service, err)
		}
		id = &s
	}
	switch cmd.Action {
	case ActBGP:
		if len(pos) > 0 {
			switch pos[0] {
			case "drain", "undrain":
				cmd.Action, cmd.Op, cmd.Args = ActBGPDrain, api.OpBGPDrain, api.BGPDrainArgs{Drain: pos[0] == "drain"}
				pos = pos[1:]
			default:
				return cmd, usagef("bgp: want drain or undrain, not %q", pos[0])
			}
		}
	case ActSessions:
		f := api.SessionFilter{Service: id, Limit: api.MaxSessions}
		if *real != "" {
			ap, err := netip.ParseAddrPort(*real)
			if err != nil {
				return cmd, usagef("--real %s: want ADDR:PORT ([ADDR]:PORT for IPv6)", *real)
			}
			f.Real = ap.String()
		}
		if *client != "" {
			a, err := netip.ParseAddr(*client)
			if err != nil {
				return cmd, usagef("--client %s: want an address", *client)
			}
			f.Client = a.String()
		}
		if *limit < 0 {
			return cmd, usagef("--limit %d: want 0 (all) or more", *limit)
		}
		cmd.Limit = *limit
		if cmd.Limit > 0 && cmd.Limit < api.MaxSessions {
			f.Limit = cmd.Limit
		}
		cmd.Args = f
	case ActStats:
		cmd.Args = api.ServiceFilter{Service: id}
		if fs.Changed("watch") {
			v := *watch
			// `--watch 2` (a separate value) arrives as a positional.
			if v == fs.Lookup("watch").NoOptDefVal && len(pos) == 1 {
				v, pos = pos[0], nil
			}
			d, err := parseInterval(v)
			if err != nil {
				return cmd, usagef("--watch %s: %v", v, err)
			}
			cmd.Watch = max(d, MinWatch)
		}
		if *count < 0 || (*count > 0 && cmd.Watch == 0) {
			return cmd, usagef("--count needs --watch and a count of 1 or more")
		}
		cmd.Count = *count
	}
	if len(pos) > 0 {
		return cmd, usagef("%s: unexpected argument %q", word, pos[0])
	}
	return cmd, nil
}

// parseInterval parses a refresh interval: a Go duration ("500ms", "2s")
// or a number of seconds ("2", "0.5").
func parseInterval(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f <= 0 || f > 3600 {
			return 0, errors.New("want an interval above 0 and at most an hour")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > time.Hour {
		return 0, errors.New("want an interval such as 1s, 500ms or 2")
	}
	return d, nil
}

// ParseServiceID parses a service as gvsctl's subcommands take it:
// [PROTO:]VIP[:PORT] with PROTO tcp (the default), udp or any, e.g.
// tcp:10.0.0.1:80, udp:[2001:db8::1]:53, 10.0.0.1:443.
func ParseServiceID(s string) (api.ServiceID, error) {
	proto := "tcp"
	if p, rest, ok := strings.Cut(s, ":"); ok {
		switch strings.ToLower(p) {
		case "tcp", "udp", "any":
			proto, s = strings.ToLower(p), rest
		}
	}
	a, port, _, err := parseAddrPort(s, proto)
	if err != nil {
		return api.ServiceID{}, err
	}
	return api.ServiceID{Proto: proto, VIP: a.String(), Port: port}, nil
}
