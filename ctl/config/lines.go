package config

import (
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// indexLines maps every key path of a TOML document to the line it is on:
// "global.workers", "service[1]" (the [[service]] header),
// "service[1].real[0].weight". Arrays of tables are numbered in order of
// appearance, as the decoder numbers them. Parse errors are ignored here
// (the decoder reports them).
func indexLines(doc []byte) map[string]int {
	lines := map[string]int{}
	counts := map[string]int{}
	var p unstable.Parser
	p.Reset(doc)
	table := ""
	lineOf := func(n *unstable.Node) int {
		if len(n.Data) == 0 {
			return 0
		}
		return p.Shape(p.Range(n.Data)).Start.Line
	}
	keyPath := func(it unstable.Iterator) (parts []string, first *unstable.Node) {
		for it.Next() {
			n := it.Node()
			if first == nil {
				first = n
			}
			parts = append(parts, string(n.Data))
		}
		return parts, first
	}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			parts, first := keyPath(e.Key())
			table = resolve(parts, counts, false)
			if first != nil {
				lines[table] = lineOf(first)
			}
		case unstable.ArrayTable:
			parts, first := keyPath(e.Key())
			table = resolve(parts, counts, true)
			if first != nil {
				lines[table] = lineOf(first)
			}
		case unstable.KeyValue:
			parts, first := keyPath(e.Key())
			k := strings.Join(parts, ".")
			if table != "" {
				k = table + "." + k
			}
			if first != nil {
				lines[k] = lineOf(first)
			}
		}
	}
	return lines
}

// resolve turns a table header's key parts into an indexed path: each part
// that names an array of tables gets the index of its latest element, and
// for an [[array]] header the last part gets a new index.
func resolve(parts []string, counts map[string]int, array bool) string {
	path := ""
	for i, part := range parts {
		if path != "" {
			path += "."
		}
		path += part
		last := i == len(parts)-1
		if last && array {
			n := counts[path]
			counts[path] = n + 1
			path = fmt.Sprintf("%s[%d]", path, n)
			continue
		}
		if n, ok := counts[path]; ok {
			path = fmt.Sprintf("%s[%d]", path, n-1)
		}
	}
	return path
}
