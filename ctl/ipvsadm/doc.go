// Package ipvsadm is the ipvsadm-compatible side of gvsctl, as pure
// functions testable without a daemon: Parse turns a command line (the
// ipvsadm grammar, plus gvsctl's own subcommands) into a Command — the
// control-socket operation to call and its arguments — and the Format
// functions print API results the way `ipvsadm -Ln` and its --stats, --rate
// and -c variants do, plus the tables of the gvs-only subcommands.
//
// The grammar as implemented, and where it differs from ipvsadm, is in
// Usage and in the README's gvsctl section. In short:
//
//   - Commands: -A -E -D -C -R -S -a -e -d -L/-l -Z -h -v (long forms too);
//     combined short flags (-Ln, -lnc, -At ADDR) and option values glued to
//     the flag (-p300, -t10.0.0.1:80) or after '=' (--persistent=300).
//   - gvs extensions: --any VIP[:PORT] for proto-any services; forwarding
//     methods --fullnat and --l3dsr, on -A/-E as the service's method (with
//     --laddr ADDR, repeatable, for fullnat and tunnel source addresses and
//     --l3dsr DSCP) and on -a/-e as a real's; the other gvs settings of
//     services (--slow-start, --on-remove, --maglev-size, --client-port)
//     and reals (--state); -o json / --output json on read commands;
//     --socket PATH; --format toml|ipvsadm with -S. The -A/-E/-D/-a/-e/-d/-C
//     part is the language of ctl/rules (what -S prints and -R reads), so a
//     saved rule typed at gvsctl does what it does in -R.
//   - -E and -e change what they are given and keep the rest (gvsd's
//     edit_service and edit_real merge), except that -E sets persistence,
//     its netmask, the scheduler flags and one-packet as given (absent:
//     off), as ipvsadm's -E does; ipvsadm would also reset the scheduler to
//     wlc and a real's weight to 1 and its method to -g.
//   - Not supported (usage errors): fwmark services (-f, -6), thresholds
//     (-x, -y), --set, the sync daemon, persistence engines (--pe), host
//     and port names that need DNS (numeric addresses only; port names from
//     /etc/services are accepted).
//
// Imports: ctl/api, ctl/config, lb (scheduler names and weight bounds),
// github.com/spf13/pflag (the subcommands' flags).
package ipvsadm
