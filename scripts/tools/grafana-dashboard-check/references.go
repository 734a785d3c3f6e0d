// The references between a dashboard's parts, which Grafana's schema leaves as free strings:
// data source uids, $variables, repeat, panel ids and query refIds. Checked on the plain JSON
// (after the schema accepted it) so that rows, nested panels and every query type are walked alike.
package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// variableUse matches Grafana's variable syntaxes: $name, ${name}, ${name:format}, [[name]],
// [[name:format]]; the name is the first non-empty group.
var variableUse = regexp.MustCompile(`\$\{(\w+)(?:[:.][^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]`)

// builtinVariables are the ones Grafana defines itself (its documented global variables).
var builtinVariables = map[string]bool{
	"__interval": true, "__interval_ms": true, "__rate_interval": true, "__rate_interval_ms": true,
	"__range": true, "__range_s": true, "__range_ms": true, "__from": true, "__to": true,
	"__dashboard": true, "__user": true, "__org": true, "__timezone": true, "__all": true,
	"__auto": true, "__name": true, "__field": true, "__series": true, "__value": true,
	"__data": true, "__cell": true, "timeFilter": true, "__timeFilter": true,
}

// builtinDataSourceUIDs are Grafana's own pseudo data sources, the same on every Grafana.
var builtinDataSourceUIDs = map[string]bool{"grafana": true, "-- Grafana --": true, "-- Mixed --": true, "-- Dashboard --": true}

type variable struct {
	kind   string // query, datasource, custom, ...
	plugin string // for a datasource variable: the data source plugin it lists (its query)
}

type referenceChecker struct {
	variables map[string]variable
	problems  []string
}

func (c *referenceChecker) fail(where, format string, args ...any) {
	c.problems = append(c.problems, "reference: "+where+": "+fmt.Sprintf(format, args...))
}

func checkReferences(raw []byte) ([]string, error) {
	var board struct {
		Panels     []map[string]any `json:"panels"`
		Templating struct {
			List []map[string]any `json:"list"`
		} `json:"templating"`
		Annotations struct {
			List []map[string]any `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &board); err != nil {
		return nil, err
	}
	c := &referenceChecker{variables: map[string]variable{}}
	for i, v := range board.Templating.List {
		name, _ := v["name"].(string)
		kind, _ := v["type"].(string)
		plugin, _ := v["query"].(string)
		if _, dup := c.variables[name]; dup {
			c.fail(fmt.Sprintf("templating.list[%d]", i), "variable %q defined twice", name)
		}
		c.variables[name] = variable{kind: kind, plugin: plugin}
	}
	for i, v := range board.Templating.List {
		where := fmt.Sprintf("templating.list[%d]", i)
		c.dataSource(where, v["datasource"], false)
		c.variableUses(where, v)
	}
	for i, a := range board.Annotations.List {
		c.dataSource(fmt.Sprintf("annotations.list[%d]", i), a["datasource"], false)
	}

	panelIDs := map[float64]string{}
	var walk func(where string, panel map[string]any)
	walk = func(where string, panel map[string]any) {
		if id, ok := panel["id"].(float64); ok {
			if first, dup := panelIDs[id]; dup {
				c.fail(where, "panel id %v is also the id of %s", id, first)
			}
			panelIDs[id] = where
		}
		if repeat, ok := panel["repeat"].(string); ok && repeat != "" {
			if _, known := c.variables[repeat]; !known {
				c.fail(where, "repeat names %q, which is not a dashboard variable", repeat)
			}
		}
		targets, _ := panel["targets"].([]any)
		c.dataSource(where+".datasource", panel["datasource"], false)
		refIDs := map[string]bool{}
		for k, t := range targets {
			target, _ := t.(map[string]any)
			tw := fmt.Sprintf("%s.targets[%d]", where, k)
			// A query without its own data source uses the panel's; with neither, whatever the
			// viewer's default data source is.
			inherit := panel["datasource"] != nil
			c.dataSource(tw+".datasource", target["datasource"], !inherit)
			refID, _ := target["refId"].(string)
			if refIDs[refID] {
				c.fail(tw, "refId %q used twice in the panel", refID)
			}
			refIDs[refID] = true
		}
		c.variableUses(where, panel)
		nested, _ := panel["panels"].([]any)
		for j, n := range nested {
			if child, ok := n.(map[string]any); ok {
				walk(fmt.Sprintf("%s.panels[%d]", where, j), child)
			}
		}
	}
	for i, panel := range board.Panels {
		walk(fmt.Sprintf("panels[%d]", i), panel)
	}
	return c.problems, nil
}

// dataSource checks one data source reference: absent is fine unless required; otherwise its
// uid must be a datasource variable (or a Grafana built-in) listing the plugin of its type.
func (c *referenceChecker) dataSource(where string, ref any, required bool) {
	if ref == nil {
		if required {
			c.fail(where, "no data source on the query or its panel: it would use the viewer's default data source")
		}
		return
	}
	obj, ok := ref.(map[string]any)
	if !ok {
		// Grafana before 8.3 referenced data sources by name; the schema's DataSourceRef is an object.
		c.fail(where, "data source reference is not an object {type, uid}")
		return
	}
	uid, _ := obj["uid"].(string)
	plugin, _ := obj["type"].(string)
	if builtinDataSourceUIDs[uid] {
		return
	}
	m := variableUse.FindStringSubmatch(uid)
	if m == nil || m[0] != uid {
		c.fail(where, "data source uid %q is fixed; a uid differs per Grafana: use a datasource variable (${datasource})", uid)
		return
	}
	name := firstGroup(m)
	v, known := c.variables[name]
	switch {
	case !known:
		c.fail(where, "data source uid %q names no dashboard variable", uid)
	case v.kind != "datasource":
		c.fail(where, "data source uid %q names a variable of type %q, not datasource", uid, v.kind)
	case plugin != "" && v.plugin != plugin:
		c.fail(where, "data source of type %q, but variable %q lists %q data sources", plugin, name, v.plugin)
	}
}

// variableUses checks every $variable in the strings of node (descriptions excepted: prose; data
// source references: checked by dataSource), without descending into nested panels (walked on
// their own).
func (c *referenceChecker) variableUses(where string, node map[string]any) {
	unknown := map[string]bool{}
	var visit func(key string, value any)
	visit = func(key string, value any) {
		switch v := value.(type) {
		case string:
			if key == "description" {
				return
			}
			for _, m := range variableUse.FindAllStringSubmatch(v, -1) {
				name := firstGroup(m)
				// $1, $2...: a regex group in PromQL's label_replace, which Grafana leaves alone.
				if strings.Trim(name, "0123456789") == "" {
					continue
				}
				if _, known := c.variables[name]; !known && !builtinVariables[name] {
					unknown[name] = true
				}
			}
		case map[string]any:
			for k, child := range v {
				if k == "datasource" || (k == "panels" && key == "") {
					continue
				}
				visit(k, child)
			}
		case []any:
			for _, child := range v {
				visit(key, child)
			}
		}
	}
	visit("", node)
	names := make([]string, 0, len(unknown))
	for name := range unknown {
		names = append(names, "$"+name)
	}
	sort.Strings(names)
	if len(names) > 0 {
		c.fail(where, "uses %s, not a dashboard variable nor a Grafana built-in", strings.Join(names, ", "))
	}
}

func firstGroup(m []string) string {
	for _, g := range m[1:] {
		if g != "" {
			return g
		}
	}
	return ""
}
