// Command grafana-dashboard-check checks Grafana dashboard JSON files (the classic, "v1" dashboard
// model a provisioning sidecar loads) against Grafana's dashboard schema, then checks the
// references the schema cannot express.
//
// The schema is the one in github.com/grafana/grafana-foundation-sdk/go: Go types Grafana
// generates (with its code generator, cog) from Grafana's own CUE kinds, the dashboard kind and
// the schema of every core panel plugin and data source query. Their UnmarshalJSONStrict rejects
// unknown fields where the CUE definition is closed, fields of the wrong type and missing required
// fields; Validate checks the CUE constraints (bounds such as fiscalYearStartMonth < 12). Panel
// options and fieldConfig.defaults.custom are decoded with the panel plugin's own schema, and
// queries with the data source's, so this program also fails a panel type or a query data source
// the schema does not know: their contents would otherwise go unchecked. Not checked: enumerated
// values (the generated types are plain strings and integers with constants beside them).
//
// References (not part of the schema): every data source a panel, query, variable or annotation
// uses is a dashboard variable of type datasource for the same plugin (a fixed uid differs from
// one Grafana to the next), every $variable used exists, a panel's repeat names a variable,
// panel ids are unique and refIds are unique within a panel.
//
// Usage: grafana-dashboard-check FILE...; exit status 1 and one line per problem on stderr when
// any file fails.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: grafana-dashboard-check FILE...")
		os.Exit(2)
	}
	// The panel plugin and data source query schemas: without them options, fieldConfig.custom
	// and targets would be decoded as free-form maps.
	plugins.RegisterDefaultPlugins()

	failed := false
	for _, path := range os.Args[1:] {
		summary, problems, err := checkFile(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		// A nested panel's constraints are checked through its row and on their own: say each once.
		reported := map[string]bool{}
		for _, problem := range problems {
			if !reported[problem] {
				fmt.Fprintf(os.Stderr, "%s: %s\n", path, problem)
			}
			reported[problem] = true
		}
		if len(problems) > 0 {
			failed = true
			continue
		}
		fmt.Printf("%s: ok: %s\n", path, summary)
	}
	if failed {
		os.Exit(1)
	}
}

// checkFile returns a one-line summary of a valid dashboard, or its problems; err only when the
// file cannot be read or is not JSON at all.
func checkFile(path string) (summary string, problems []string, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	var board dashboard.Dashboard
	if problems := schemaProblems("", board.UnmarshalJSONStrict(raw)); len(problems) > 0 {
		return "", problems, nil
	}
	if problems := schemaProblems("", board.Validate()); len(problems) > 0 {
		return "", problems, nil
	}
	panels, queries, pluginProblems, err := checkPanels(raw)
	if err != nil {
		return "", nil, err
	}
	problems = append(problems, pluginProblems...)
	refProblems, err := checkReferences(raw)
	if err != nil {
		return "", nil, err
	}
	problems = append(problems, refProblems...)
	summary = fmt.Sprintf("schemaVersion %d, %d panels, %d queries, %d variables: schema and references valid",
		board.SchemaVersion, panels, queries, len(board.Templating.List))
	return summary, problems, nil
}

// schemaProblems splits the SDK's error (a list of path: message errors when the input is JSON)
// into one line each. UnmarshalJSONStrict returns its error list even when the list is empty (a
// non-nil error holding no error), so "no problem" is an empty result, not a nil error.
func schemaProblems(where string, err error) []string {
	if err == nil {
		return nil
	}
	var buildErrs cog.BuildErrors
	if !errors.As(err, &buildErrs) {
		return []string{"schema: " + where + err.Error()}
	}
	problems := make([]string, 0, len(buildErrs))
	for _, buildErr := range buildErrs {
		problems = append(problems, "schema: "+where+buildErr.Error())
	}
	return problems
}

// checkPanels validates each panel and row on its own, decodes its fieldConfig strictly, and
// fails a panel whose type, or a query whose data source, has no schema in the SDK (their options
// and queries would be accepted unchecked). Panel by panel because the SDK's strict decoding drops
// every element that decoded without error (its empty error list is a non-nil error, and
// PanelOrRowPanel and the query decoder return before keeping the value): after
// Dashboard.UnmarshalJSONStrict the panels are empty and Dashboard.Validate never sees them
// (gridPos bounds, for one). Runs once the dashboard decoded without a schema error.
func checkPanels(raw []byte) (panels, queries int, problems []string, err error) {
	type rawPanel struct {
		Type        string                 `json:"type"`
		Datasource  *struct{ Type string } `json:"datasource"`
		Targets     []json.RawMessage      `json:"targets"`
		FieldConfig json.RawMessage        `json:"fieldConfig"`
		Panels      []json.RawMessage      `json:"panels"`
	}
	var board struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &board); err != nil {
		return 0, 0, nil, err
	}
	check := func(where string, panelJSON json.RawMessage, head rawPanel) {
		var panel dashboard.Panel
		_ = panel.UnmarshalJSONStrict(panelJSON) // no error: the dashboard's decoding had none
		problems = append(problems, schemaProblems(where+".", panel.Validate())...)
		panels, queries = panels+1, queries+len(head.Targets)
		// The SDK's Panel decodes fieldConfig with plain encoding/json (types checked, unknown
		// fields such as a misspelt "unit" accepted); its own strict decoder closes it.
		if len(head.FieldConfig) > 0 && string(head.FieldConfig) != "null" {
			var fieldConfig dashboard.FieldConfigSource
			problems = append(problems, schemaProblems(where+".fieldConfig.", fieldConfig.UnmarshalJSONStrict(head.FieldConfig))...)
		}
		if _, known := cog.ConfigForPanelcfgVariant(panel.Type); !known {
			problems = append(problems, fmt.Sprintf("schema: %s: panel type %q has no schema (not a Grafana core panel): its options go unchecked", where, panel.Type))
		}
		hint := ""
		if head.Datasource != nil {
			hint = head.Datasource.Type
		}
		for k, target := range head.Targets {
			query, err := cog.StrictUnmarshalDataquery(target, hint)
			if _, unknown := query.(variants.UnknownDataquery); unknown && err == nil {
				problems = append(problems, fmt.Sprintf("schema: %s.targets[%d]: the query's data source type is missing or has no schema: the query goes unchecked", where, k))
			}
		}
	}
	for i, panelJSON := range board.Panels {
		where := fmt.Sprintf("panels[%d]", i)
		var head rawPanel
		if err := json.Unmarshal(panelJSON, &head); err != nil {
			return 0, 0, nil, fmt.Errorf("%s: %w", where, err)
		}
		if head.Type != "row" {
			check(where, panelJSON, head)
			continue
		}
		var row dashboard.RowPanel
		_ = row.UnmarshalJSONStrict(panelJSON) // no error: the dashboard's decoding had none
		problems = append(problems, schemaProblems(where+".", row.Validate())...)
		for j, nestedJSON := range head.Panels {
			nestedWhere := fmt.Sprintf("%s.panels[%d]", where, j)
			var nested rawPanel
			if err := json.Unmarshal(nestedJSON, &nested); err != nil {
				return 0, 0, nil, fmt.Errorf("%s: %w", nestedWhere, err)
			}
			check(nestedWhere, nestedJSON, nested)
		}
	}
	return panels, queries, problems, nil
}
