package openapi

import (
	"strconv"

	"gopkg.in/yaml.v3"
)

// positions finds the line and column of keys and values in the spec's
// YAML (or JSON, which YAML reads) text: kin-openapi keeps the values but
// not where they were written.
type positions struct {
	root *yaml.Node // the document's top mapping; nil when the text did not parse
}

func newPositions(data []byte) positions {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return positions{}
	}
	return positions{root: doc.Content[0]}
}

// find returns the position of the node at path (keys of mappings, indexes
// of sequences): of the key itself when key is true, else of the value.
// When the path goes further than the text, the deepest node found is used.
func (p positions) find(path []string, key bool) (line, col int) {
	n := p.root
	if n == nil {
		return 0, 0
	}
	line, col = n.Line, n.Column
	for i, part := range path {
		n = resolveAlias(n)
		var next, keyNode *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == part {
					keyNode, next = n.Content[j], n.Content[j+1]
					break
				}
			}
		case yaml.SequenceNode:
			if k, err := strconv.Atoi(part); err == nil && k >= 0 && k < len(n.Content) {
				next = n.Content[k]
			}
		}
		if next == nil {
			return line, col
		}
		last := i == len(path)-1
		if last && key && keyNode != nil {
			return keyNode.Line, keyNode.Column
		}
		n = next
		line, col = n.Line, n.Column
	}
	return line, col
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}
