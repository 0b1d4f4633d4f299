package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"

	"gvs/ctl/api"
	"gvs/ctl/config"
	"gvs/ctl/rules"
	"gvs/lb"
)

// This file implements the control socket's operations on the running
// configuration. Every change copies the running config.File, edits the
// copy, validates it with config.Build and applies it the way Reload does:
// one new snapshot, workers keep running, established sessions stay, and
// removed reals drain per their service's on_remove. A change that fails at
// any step leaves the running configuration as it was. Changes made here
// live until the next reload, which re-reads the file and discards them
// (save them first with Save("toml")).
//
// Errors are *api.Error: not_found, exists, invalid (with config's message
// naming the key), bad_request (arguments that cannot be decoded).

// Handle answers one control-socket request: it decodes args for op, runs
// the operation and returns its result (nil for none). Errors are
// *api.Error; ctx bounds operations that wait for the workers (sessions).
// It is what ctl/server calls for every request.
func (d *Daemon) Handle(ctx context.Context, op string, args json.RawMessage) (any, error) {
	switch op {
	case api.OpVersion:
		return VersionInfo(), nil
	case api.OpServices:
		var f api.ServiceFilter
		if err := decodeArgs(op, args, &f, false); err != nil {
			return nil, err
		}
		return d.Services(f)
	case api.OpAddService:
		var s config.Service
		if err := decodeArgs(op, args, &s, true); err != nil {
			return nil, err
		}
		return nil, d.AddService(s)
	case api.OpEditService:
		var s config.Service
		if err := decodeArgs(op, args, &s, true); err != nil {
			return nil, err
		}
		return nil, d.EditService(s)
	case api.OpDeleteService:
		var id api.ServiceID
		if err := decodeArgs(op, args, &id, true); err != nil {
			return nil, err
		}
		return nil, d.DeleteService(id)
	case api.OpAddReal, api.OpEditReal, api.OpDeleteReal:
		var ra api.RealArgs
		if err := decodeArgs(op, args, &ra, true); err != nil {
			return nil, err
		}
		switch op {
		case api.OpAddReal:
			return nil, d.AddReal(ra)
		case api.OpEditReal:
			return nil, d.EditReal(ra)
		}
		return nil, d.DeleteReal(ra)
	case api.OpClear:
		return nil, d.Clear()
	case api.OpZero:
		var f api.ServiceFilter
		if err := decodeArgs(op, args, &f, false); err != nil {
			return nil, err
		}
		key, err := d.filterKey(f.Service)
		if err != nil {
			return nil, err
		}
		d.Zero(key)
		return nil, nil
	case api.OpSave:
		var a api.SaveArgs
		if err := decodeArgs(op, args, &a, false); err != nil {
			return nil, err
		}
		text, err := d.Save(a.Format)
		if err != nil {
			return nil, err
		}
		return api.SaveResult{Text: text}, nil
	case api.OpRestore:
		var a api.RestoreArgs
		if err := decodeArgs(op, args, &a, true); err != nil {
			return nil, err
		}
		return nil, d.Restore(a.Text)
	case api.OpReload:
		return nil, d.ReloadFile()
	case api.OpStats:
		var f api.ServiceFilter
		if err := decodeArgs(op, args, &f, false); err != nil {
			return nil, err
		}
		key, err := d.filterKey(f.Service)
		if err != nil {
			return nil, err
		}
		return d.Stats(key), nil
	case api.OpSessions:
		var f api.SessionFilter
		if err := decodeArgs(op, args, &f, false); err != nil {
			return nil, err
		}
		return d.Sessions(ctx, f)
	case api.OpHealth:
		h := d.Health()
		if h == nil {
			h = []api.HealthStatus{}
		}
		return h, nil
	case api.OpVRRP:
		v := d.VRRP()
		if v == nil {
			v = []api.VRRPStatus{}
		}
		return v, nil
	case api.OpBGP:
		return d.BGP(), nil
	case api.OpBGPDrain:
		var a api.BGPDrainArgs
		if err := decodeArgs(op, args, &a, true); err != nil {
			return nil, err
		}
		if err := d.BGPDrain(a.Drain); err != nil {
			return nil, err
		}
		return d.BGP(), nil
	}
	return nil, api.Errorf(api.CodeUnknownOp, "unknown operation %q", op)
}

// decodeArgs decodes a request's arguments strictly (unknown fields are
// errors). Missing arguments are an error only when required.
func decodeArgs(op string, args json.RawMessage, v any, required bool) error {
	if len(bytes.TrimSpace(args)) == 0 || bytes.Equal(bytes.TrimSpace(args), []byte("null")) {
		if required {
			return api.Errorf(api.CodeBadRequest, "%s needs arguments", op)
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return api.Errorf(api.CodeBadRequest, "%s arguments: %v", op, err)
	}
	if dec.More() {
		return api.Errorf(api.CodeBadRequest, "%s arguments: trailing data", op)
	}
	return nil
}

// SetHealth installs the provider of the health operation's answer (the
// health checker); nil removes it. Until one is set, health reports nothing.
func (d *Daemon) SetHealth(fn func() []api.HealthStatus) {
	d.pmu.Lock()
	d.health = fn
	d.pmu.Unlock()
}

// SetVRRP installs the provider of the vrrp operation's answer; nil removes
// it. Until one is set, vrrp reports nothing.
func (d *Daemon) SetVRRP(fn func() []api.VRRPStatus) {
	d.pmu.Lock()
	d.vrrp = fn
	d.pmu.Unlock()
}

// Health returns the health state of every checked real (nil without a
// provider).
func (d *Daemon) Health() []api.HealthStatus {
	d.pmu.Lock()
	fn := d.health
	d.pmu.Unlock()
	if fn == nil {
		return nil
	}
	return fn()
}

// VRRP returns the state of every VRRP instance (nil without a provider).
func (d *Daemon) VRRP() []api.VRRPStatus {
	d.pmu.Lock()
	fn := d.vrrp
	d.pmu.Unlock()
	if fn == nil {
		return nil
	}
	return fn()
}

// ParseServiceID turns an api.ServiceID into the balancer's key (the VIP
// unmapped, so ::ffff:192.0.2.1 is 192.0.2.1). Errors are api invalid.
func ParseServiceID(id api.ServiceID) (lb.ServiceKey, error) {
	p, err := lb.ParseProto(id.Proto)
	if err != nil {
		return lb.ServiceKey{}, api.Errorf(api.CodeInvalid, "service %s: %v", id, err)
	}
	vip, err := netip.ParseAddr(id.VIP)
	if err != nil {
		return lb.ServiceKey{}, api.Errorf(api.CodeInvalid, "service %s: bad VIP %q", id, id.VIP)
	}
	if id.Port < 0 || id.Port > 65535 {
		return lb.ServiceKey{}, api.Errorf(api.CodeInvalid, "service %s: port %d out of range 0..65535", id, id.Port)
	}
	return lb.ServiceKey{Proto: p, VIP: vip.Unmap(), Port: uint16(id.Port)}, nil
}

// idOf returns the id of a configured service.
func idOf(s *config.Service) api.ServiceID {
	p := s.Proto
	if p == "" {
		p = "any"
	}
	return api.ServiceID{Proto: p, VIP: s.VIP, Port: s.Port}
}

// keyOf returns a configured service's key (false if it does not parse,
// which a validated file never has).
func keyOf(s *config.Service) (lb.ServiceKey, bool) {
	k, err := ParseServiceID(idOf(s))
	return k, err == nil
}

func findService(f *config.File, k lb.ServiceKey) int {
	for i := range f.Service {
		if sk, ok := keyOf(&f.Service[i]); ok && sk == k {
			return i
		}
	}
	return -1
}

// realPort is a real's port as the dataplane uses it: 0 means the
// service's port.
func realPort(port int, s *config.Service) int {
	if port == 0 {
		return s.Port
	}
	return port
}

// findReal returns the index of the real of s at addr:port (ports compared
// after defaulting to the service's), or -1.
func findReal(s *config.Service, addr netip.Addr, port int) int {
	for i := range s.Reals {
		a, err := netip.ParseAddr(s.Reals[i].Addr)
		if err == nil && a.Unmap() == addr && realPort(s.Reals[i].Port, s) == realPort(port, s) {
			return i
		}
	}
	return -1
}

func parseRealAddr(r *config.Real) (netip.Addr, error) {
	a, err := netip.ParseAddr(r.Addr)
	if err != nil {
		return netip.Addr{}, api.Errorf(api.CodeInvalid, "real: bad address %q", r.Addr)
	}
	return a.Unmap(), nil
}

// cloneFile copies a configuration file deeply enough that editing its
// services never touches the original.
func cloneFile(f config.File) config.File {
	out := f
	out.Global.CPUs = slices.Clone(f.Global.CPUs)
	out.Ports = slices.Clone(f.Ports)
	out.Service = cloneServices(f.Service)
	return out
}

func cloneServices(svcs []config.Service) []config.Service {
	out := make([]config.Service, len(svcs))
	for i, s := range svcs {
		s.Flags = slices.Clone(s.Flags)
		s.LocalAddrs = slices.Clone(s.LocalAddrs)
		s.Reals = slices.Clone(s.Reals)
		for j := range s.Reals {
			if w := s.Reals[j].Weight; w != nil {
				v := *w
				s.Reals[j].Weight = &v
			}
		}
		out[i] = s
	}
	return out
}

// change applies an edit of the running configuration file: edit works on
// a copy, which is validated and applied as one snapshot. what names the
// operation in errors and the log.
func (d *Daemon) change(what string, edit func(f *config.File) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := cloneFile(d.cfg.File)
	if err := edit(&f); err != nil {
		return err
	}
	cfg, err := config.Build(what, f)
	if err != nil {
		return api.Errorf(api.CodeInvalid, "%v", err)
	}
	cfg.Path = d.cfg.Path // ReloadFile still reads the file
	if err := d.apply(cfg); err != nil {
		return api.Errorf(api.CodeInvalid, "%s: %v", what, err)
	}
	d.setChecks(cfg)
	d.cfg = cfg
	d.log.Info("configuration changed", "op", what, "services", len(cfg.LB.Services))
	return nil
}

// Services returns the running configuration's services (one with a
// filter), as the configuration file writes them.
func (d *Daemon) Services(f api.ServiceFilter) ([]config.Service, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	svcs := d.cfg.File.Service
	if f.Service != nil {
		k, err := ParseServiceID(*f.Service)
		if err != nil {
			return nil, err
		}
		i := findService(&d.cfg.File, k)
		if i < 0 {
			return nil, api.Errorf(api.CodeNotFound, "no service %s", *f.Service)
		}
		svcs = svcs[i : i+1]
	}
	return cloneServices(svcs), nil
}

// filterKey resolves an optional service filter to a key of a configured
// service (nil for none).
func (d *Daemon) filterKey(id *api.ServiceID) (*lb.ServiceKey, error) {
	if id == nil {
		return nil, nil
	}
	k, err := ParseServiceID(*id)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	i := findService(&d.cfg.File, k)
	d.mu.Unlock()
	if i < 0 {
		return nil, api.Errorf(api.CodeNotFound, "no service %s", *id)
	}
	return &k, nil
}

// AddService adds a service (with its reals, if any); exists if a service
// with the same protocol, VIP and port is configured.
func (d *Daemon) AddService(s config.Service) error {
	return d.change(api.OpAddService, func(f *config.File) error { return addService(f, s) })
}

func addService(f *config.File, s config.Service) error {
	k, err := ParseServiceID(idOf(&s))
	if err != nil {
		return err
	}
	if findService(f, k) >= 0 {
		return api.Errorf(api.CodeExists, "service %s already exists", k)
	}
	f.Service = append(f.Service, cloneServices([]config.Service{s})...)
	return nil
}

// EditService changes a service's settings; its reals stay (s.Reals is
// ignored). As ipvsadm -E does, the scheduler flags, persistence and
// persistence mask are replaced by those of s (absent: none), and an empty
// scheduler keeps the current one. The settings ipvsadm cannot express
// (method, dscp, local_addrs, maglev_size, slow_start, on_remove,
// client_port) are replaced only when s gives them (non-zero), so that an
// ipvsadm-style edit never silently changes a service's forwarding method;
// to clear one, send the whole service as services returns it, edited, or
// reload.
func (d *Daemon) EditService(s config.Service) error {
	return d.change(api.OpEditService, func(f *config.File) error { return editService(f, s) })
}

func editService(f *config.File, s config.Service) error {
	k, err := ParseServiceID(idOf(&s))
	if err != nil {
		return err
	}
	i := findService(f, k)
	if i < 0 {
		return api.Errorf(api.CodeNotFound, "no service %s", k)
	}
	cur := &f.Service[i]
	n := cloneServices([]config.Service{s})[0]
	n.Proto, n.VIP, n.Port, n.Reals = cur.Proto, cur.VIP, cur.Port, cur.Reals
	if n.Scheduler == "" {
		n.Scheduler = cur.Scheduler
	}
	if n.Method == "" {
		n.Method = cur.Method
	}
	if n.DSCP == 0 {
		n.DSCP = cur.DSCP
	}
	if len(n.LocalAddrs) == 0 {
		n.LocalAddrs = cur.LocalAddrs
	}
	if n.MaglevSize == 0 {
		n.MaglevSize = cur.MaglevSize
	}
	if n.SlowStart.Duration == 0 {
		n.SlowStart = cur.SlowStart
	}
	if n.OnRemove == "" {
		n.OnRemove = cur.OnRemove
	}
	if n.ClientPort == "" {
		n.ClientPort = cur.ClientPort
	}
	*cur = n
	return nil
}

// DeleteService removes a service. Its sessions stay in the tables until
// they expire but match no service any more.
func (d *Daemon) DeleteService(id api.ServiceID) error {
	return d.change(api.OpDeleteService, func(f *config.File) error { return deleteService(f, id) })
}

func deleteService(f *config.File, id api.ServiceID) error {
	k, err := ParseServiceID(id)
	if err != nil {
		return err
	}
	i := findService(f, k)
	if i < 0 {
		return api.Errorf(api.CodeNotFound, "no service %s", k)
	}
	f.Service = slices.Delete(f.Service, i, i+1)
	return nil
}

// AddReal adds a real server to a service; exists if the service already
// has one at that address and port (a port of 0 is the service's port).
func (d *Daemon) AddReal(a api.RealArgs) error {
	return d.change(api.OpAddReal, func(f *config.File) error { return addReal(f, a) })
}

func addReal(f *config.File, a api.RealArgs) error {
	s, err := serviceOf(f, a.Service)
	if err != nil {
		return err
	}
	addr, err := parseRealAddr(&a.Real)
	if err != nil {
		return err
	}
	if findReal(s, addr, a.Real.Port) >= 0 {
		return api.Errorf(api.CodeExists, "service %s already has real %s", a.Service, netip.AddrPortFrom(addr, uint16(realPort(a.Real.Port, s))))
	}
	s.Reals = append(s.Reals, cloneServices([]config.Service{{Reals: []config.Real{a.Real}}})[0].Reals[0])
	return nil
}

func serviceOf(f *config.File, id api.ServiceID) (*config.Service, error) {
	k, err := ParseServiceID(id)
	if err != nil {
		return nil, err
	}
	i := findService(f, k)
	if i < 0 {
		return nil, api.Errorf(api.CodeNotFound, "no service %s", k)
	}
	return &f.Service[i], nil
}

func realOf(f *config.File, a api.RealArgs) (*config.Service, int, error) {
	s, err := serviceOf(f, a.Service)
	if err != nil {
		return nil, 0, err
	}
	addr, err := parseRealAddr(&a.Real)
	if err != nil {
		return nil, 0, err
	}
	j := findReal(s, addr, a.Real.Port)
	if j < 0 {
		return nil, 0, api.Errorf(api.CodeNotFound, "service %s has no real %s", a.Service, netip.AddrPortFrom(addr, uint16(realPort(a.Real.Port, s))))
	}
	return s, j, nil
}

// EditReal changes a real server's weight, method or state: each is
// replaced when given (weight non-nil, method and state non-empty) and kept
// otherwise.
func (d *Daemon) EditReal(a api.RealArgs) error {
	return d.change(api.OpEditReal, func(f *config.File) error { return editReal(f, a) })
}

func editReal(f *config.File, a api.RealArgs) error {
	s, j, err := realOf(f, a)
	if err != nil {
		return err
	}
	r := &s.Reals[j]
	if a.Real.Weight != nil {
		w := *a.Real.Weight
		r.Weight = &w
	}
	if a.Real.Method != "" {
		r.Method = a.Real.Method
	}
	if a.Real.State != "" {
		r.State = a.Real.State
	}
	return nil
}

// DeleteReal removes a real server from a service; its sessions drain or
// are dropped per the service's on_remove.
func (d *Daemon) DeleteReal(a api.RealArgs) error {
	return d.change(api.OpDeleteReal, func(f *config.File) error { return deleteReal(f, a) })
}

func deleteReal(f *config.File, a api.RealArgs) error {
	s, j, err := realOf(f, a)
	if err != nil {
		return err
	}
	s.Reals = slices.Delete(s.Reals, j, j+1)
	return nil
}

// Clear removes every service (ipvsadm -C).
func (d *Daemon) Clear() error {
	return d.change(api.OpClear, func(f *config.File) error {
		f.Service = nil
		return nil
	})
}

// Save writes the running configuration: "toml" is the whole configuration
// file ([global] and [[port]] included), "ipvsadm" the services as ipvsadm
// -S rules with gvs's extensions (see ctl/rules).
func (d *Daemon) Save(format string) (string, error) {
	d.mu.Lock()
	f := cloneFile(d.cfg.File)
	d.mu.Unlock()
	switch format {
	case "toml", "":
		b, err := config.Marshal(f)
		if err != nil {
			return "", api.Errorf(api.CodeInternal, "save: %v", err)
		}
		return string(b), nil
	case "ipvsadm":
		return rules.Format(f.Service), nil
	}
	return "", api.Errorf(api.CodeBadRequest, "save: unknown format %q (want toml or ipvsadm)", format)
}

// Restore applies ipvsadm rules (-A, -E, -D, -a, -e, -d, -C lines, as
// ipvsadm -R reads them; see ctl/rules) to the running configuration, all
// or nothing: the first rule that fails (a service not found, a real that
// exists, ...) is reported with its line and nothing changes. A real line
// whose method is the service's comes back as "the service's method".
func (d *Daemon) Restore(text string) error {
	rs, err := rules.Parse(text)
	if err != nil {
		return api.Errorf(api.CodeBadRequest, "restore: %v", err)
	}
	return d.change(api.OpRestore, func(f *config.File) error {
		if err := ApplyRules(f, rs); err != nil {
			return api.Errorf(err.(*api.Error).Code, "restore: %s", err.(*api.Error).Message)
		}
		return nil
	})
}

// ApplyRules applies parsed ipvsadm rules to a configuration file in order,
// with the meaning Restore gives them; it stops at the first rule that fails
// and returns an *api.Error naming its line (not_found, exists, invalid).
// The result is not validated: pass it to config.Build.
func ApplyRules(f *config.File, rs []rules.Rule) error {
	for _, r := range rs {
		if err := applyRule(f, r); err != nil {
			code, msg := api.CodeInvalid, err.Error()
			var ae *api.Error
			if errors.As(err, &ae) {
				code, msg = ae.Code, ae.Message
			}
			if r.Line > 0 {
				return api.Errorf(code, "line %d: %s", r.Line, msg)
			}
			return api.Errorf(code, "%s", msg)
		}
	}
	return nil
}

func applyRule(f *config.File, r rules.Rule) error {
	id := idOf(&r.Service)
	switch r.Cmd {
	case rules.Clear:
		f.Service = nil
		return nil
	case rules.AddService:
		return addService(f, r.Service)
	case rules.EditService:
		return editService(f, r.Service)
	case rules.DeleteService:
		return deleteService(f, id)
	case rules.DeleteReal:
		return deleteReal(f, api.RealArgs{Service: id, Real: r.Real})
	}
	// -a and -e: the method and --l3dsr DSCP relative to the service.
	s, err := serviceOf(f, id)
	if err != nil {
		return err
	}
	real := r.Real
	if r.DSCP != 0 {
		switch s.DSCP {
		case 0:
			s.DSCP = r.DSCP
		case r.DSCP:
		default:
			return api.Errorf(api.CodeInvalid, "real %s: --l3dsr %d disagrees with the service's DSCP %d", real.Addr, r.DSCP, s.DSCP)
		}
	}
	if real.Method != "" && rules.CanonMethod(real.Method) == rules.CanonMethod(s.Method) {
		if r.Cmd == rules.AddReal {
			real.Method = "" // the service's method, as it was saved
		} else if j := findRealArgs(s, &real); j >= 0 && s.Reals[j].Method == "" {
			real.Method = ""
		}
	}
	a := api.RealArgs{Service: id, Real: real}
	if r.Cmd == rules.AddReal {
		return addReal(f, a)
	}
	return editReal(f, a)
}

func findRealArgs(s *config.Service, r *config.Real) int {
	a, err := netip.ParseAddr(r.Addr)
	if err != nil {
		return -1
	}
	return findReal(s, a.Unmap(), r.Port)
}

// ReloadFile re-reads the configuration file the daemon was started with
// and applies it (Reload): runtime changes are discarded. An invalid file,
// or one that changes [global] or [[port]], is refused (invalid) and the
// running configuration stays. SIGHUP and the reload operation both call it.
func (d *Daemon) ReloadFile() error {
	d.mu.Lock()
	path := d.cfg.Path
	d.mu.Unlock()
	cfg, err := config.Load(path)
	if err != nil {
		return api.Errorf(api.CodeInvalid, "reload: %v", err)
	}
	if err := d.Reload(cfg); err != nil {
		return api.Errorf(api.CodeInvalid, "%v", err)
	}
	return nil
}

// ConfigPath returns the configuration file the daemon reloads from.
func (d *Daemon) ConfigPath() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.Path
}
