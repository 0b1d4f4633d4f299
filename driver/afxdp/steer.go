package afxdp

import (
	"errors"
	"fmt"

	"gvs/driver"
)

// Key kinds of the steering map; they mirror KIND_* in bpf/steer.c.
const (
	kindService       = 1
	kindReplyFrom     = 2
	kindReplyTo       = 3
	kindServiceAddr   = 4
	kindReplyFromAddr = 5
	kindLocal         = 6
)

const (
	protoTCP = 6
	protoUDP = 17
)

// htons converts a port to the network byte order the program reads from
// packets (the map stores keys in host memory order).
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// steerKeys expands rules into the map keys the XDP program looks up.
func steerKeys(rules []driver.SteerRule) (map[steerSteerKey]struct{}, error) {
	keys := make(map[steerSteerKey]struct{}, 2*len(rules))
	for _, r := range rules {
		if !r.Addr.IsValid() {
			return nil, fmt.Errorf("steering rule %v: invalid address", r)
		}
		addr := r.Addr.Unmap()
		base := steerSteerKey{Family: 6}
		if addr.Is4() {
			base.Family = 4
			a := addr.As4()
			copy(base.Addr[:], a[:])
		} else {
			base.Addr = addr.As16()
		}
		var protos []uint8
		switch r.Proto {
		case 0:
			protos = []uint8{protoTCP, protoUDP}
		case protoTCP, protoUDP:
			protos = []uint8{r.Proto}
		default:
			if r.Kind != driver.SteerReplyTo && r.Kind != driver.SteerLocal {
				return nil, fmt.Errorf("steering rule %v: protocol %d not supported (TCP, UDP or 0)", r, r.Proto)
			}
		}
		switch r.Kind {
		case driver.SteerService, driver.SteerReplyFrom:
			kind, addrKind := uint8(kindService), uint8(kindServiceAddr)
			if r.Kind == driver.SteerReplyFrom {
				kind, addrKind = kindReplyFrom, kindReplyFromAddr
			}
			for _, pr := range protos {
				k := base
				k.Kind, k.Proto, k.Port = kind, pr, htons(r.Port)
				keys[k] = struct{}{}
			}
			// ICMP errors and non-first fragments carry no ports: they
			// match on the address alone.
			k := base
			k.Kind = addrKind
			keys[k] = struct{}{}
		case driver.SteerReplyTo:
			k := base
			k.Kind = kindReplyTo
			keys[k] = struct{}{}
		case driver.SteerLocal:
			k := base
			k.Kind = kindLocal
			keys[k] = struct{}{}
		default:
			return nil, fmt.Errorf("steering rule %v: unknown kind %d", r, r.Kind)
		}
	}
	return keys, nil
}

// SetSteering implements driver.Steering: it replaces the steering map's
// contents with rules. New keys are added before stale ones are deleted, so
// a packet in flight sees the old set, the new set or their union, never an
// empty one. On error the map holds the union of old and new keys added so
// far; calling SetSteering again repairs it.
func (p *Port) SetSteering(rules []driver.SteerRule) error {
	keys, err := steerKeys(rules)
	if err != nil {
		return fmt.Errorf("afxdp %s: %w", p.cfg.Interface, err)
	}
	p.steerMu.Lock()
	defer p.steerMu.Unlock()
	if p.closed.Load() {
		return driver.ErrClosed
	}
	if len(keys) > p.cfg.MaxRules {
		return fmt.Errorf("afxdp %s: %d steering keys exceed MaxRules %d", p.cfg.Interface, len(keys), p.cfg.MaxRules)
	}
	var one uint8 = 1
	var errs []error
	for k := range keys {
		if _, ok := p.keys[k]; ok {
			continue
		}
		if err := p.objs.Rules.Put(k, one); err != nil {
			errs = append(errs, err)
			break
		}
		p.keys[k] = struct{}{}
	}
	if len(errs) > 0 {
		return fmt.Errorf("afxdp %s: add steering key: %w", p.cfg.Interface, errors.Join(errs...))
	}
	for k := range p.keys {
		if _, ok := keys[k]; ok {
			continue
		}
		if err := p.objs.Rules.Delete(k); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(p.keys, k)
	}
	if len(errs) > 0 {
		return fmt.Errorf("afxdp %s: delete steering key: %w", p.cfg.Interface, errors.Join(errs...))
	}
	return nil
}
