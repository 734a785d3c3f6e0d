# Monitoring checks of scripts/chart-check.sh (sourced by it; no cluster needed): the
# PrometheusRule and the Grafana dashboard the chart ships, checked with promtool, the dashboard
# against Grafana's schema, and every metric name they use checked against the names the node and
# the operator register.
# Uses the caller's log/fail functions and variables.
# shellcheck shell=bash

# as_json FILE: the YAML documents of FILE as one JSON array of objects.
as_json() { yq -c '.' "$1" | jq -s '[.[] | select(. != null)]'; }

# registered_metrics: every metric name the node and the operator export, from their source:
# prometheus_client's `<registry>.register("name", ...)` calls, with each registry's prefix
# (node: `proglog_` and its `raft` sub-registry `proglog_raft_`; operator: `proglog_operator_`).
registered_metrics() {
    # register_calls RECEIVER FILES...: the names of RECEIVER.register("name", ...) calls.
    register_calls() {
        RECEIVER="$1" perl -0777 -ne 'print "$1\n" while /\b\Q$ENV{RECEIVER}\E\.register\(\s*"([a-z0-9_]+)"/g' "${@:2}"
    }
    {
        register_calls registry "$ROOT"/node/src/metrics/*.rs | sed 's/^/proglog_/'
        register_calls raft "$ROOT"/node/src/metrics/*.rs | sed 's/^/proglog_raft_/'
        register_calls registry "$ROOT/operator/src/controller/metrics.rs" | sed 's/^/proglog_operator_/'
    } | sort -u
}

# metric_exists NAME REGISTERED-FILE: NAME as exported (counters get _total, histograms
# _bucket/_sum/_count) is one registered in the source, or one of the kubelet's volume stats.
metric_exists() {
    local name="$1" registered="$2" base
    case "$name" in
    kubelet_volume_stats_available_bytes | kubelet_volume_stats_capacity_bytes | kubelet_volume_stats_used_bytes) return 0 ;;
    esac
    for base in "$name" "${name%_total}" "${name%_bucket}" "${name%_sum}" "${name%_count}"; do
        grep -qxF "$base" "$registered" && return 0
    done
    return 1
}

# check_metric_names WHAT FILE: every proglog_*/kubelet_* name in the PromQL lines of FILE exists
# (proglog_cluster is the label the PodMonitor adds, not a metric).
check_metric_names() {
    local what="$1" file="$2" registered="$3" name count=0
    while read -r name; do
        [[ "$name" == proglog_cluster ]] && continue
        metric_exists "$name" "$registered" || fail "$what uses $name, which neither the node nor the operator exports"
        count=$((count + 1))
    done < <(grep -oE '\b(proglog|kubelet)_[a-z0-9_]+' "$file" | sort -u)
    ((count > 0)) || fail "found no metric names in $what"
    log "ok: the $count metric names $what uses are registered in the source"
}

# check_dashboard_schema DASHBOARD DIR: DASHBOARD against Grafana's dashboard schema, and its
# data source and variable references (scripts/tools/grafana-dashboard-check.sh). Then broken
# copies of it must be rejected, each for the reason it was broken: a check that passes
# everything would otherwise look the same as a valid dashboard.
check_dashboard_schema() {
    local dashboard="$1" dir="$2" checker rejected=0
    checker="$("$SCRIPT_DIR/tools/grafana-dashboard-check.sh")"
    "$checker" "$dashboard" >&2 || fail "the dashboard does not match Grafana's schema, or a reference in it does not resolve (above)"
    # must_reject WHAT JQ-FILTER EXPECTED: the copy JQ-FILTER makes fails with EXPECTED in the
    # output; in JQ-FILTER, $i is the index of the first timeseries panel.
    must_reject() {
        local what="$1" filter="$2" expected="$3" copy="$dir/dashboard-broken.json"
        jq "(.panels | map(.type) | index(\"timeseries\")) as \$i | $filter" "$dashboard" >"$copy" ||
            fail "jq could not break the dashboard ($what)"
        if "$checker" "$copy" >"$dir/dashboard-broken.out" 2>&1; then
            fail "the dashboard schema check accepts a dashboard with $what"
        fi
        grep -qF -- "$expected" "$dir/dashboard-broken.out" ||
            fail "the dashboard with $what was rejected, but not for it: $(cat "$dir/dashboard-broken.out")"
        rejected=$((rejected + 1))
    }
    # shellcheck disable=SC2016 # jq's $i and Grafana's variables, not the shell's
    {
        must_reject "a field of the wrong type" '.panels[$i].gridPos.w = "8"' \
            'gridPos.w: json: cannot unmarshal string'
        must_reject "an unknown field in a closed panel option" '.panels[$i].options.legend.showLegends = true' \
            "unexpected field 'showLegends'"
        must_reject "a misspelt field config" '.panels[$i].fieldConfig.defaults.unitt = "s"' \
            "unexpected field 'unitt'"
        must_reject "an unknown field in a Prometheus query" '.panels[$i].targets[0].exp = .panels[$i].targets[0].expr' \
            "unexpected field 'exp'"
        must_reject "a required field missing" 'del(.schemaVersion)' \
            'schemaVersion: required field is missing'
        must_reject "a panel wider than the grid" '.panels[$i].gridPos.w = 25' \
            'gridPos.w: must be <= 24'
        must_reject "a data source that is no variable" '.panels[$i].datasource.uid = "${prometheus}"' \
            'data source uid "${prometheus}" names no dashboard variable'
        must_reject "a query using an undefined variable" '.panels[$i].targets[0].expr |= sub("\\$cluster"; "$clusters")' \
            'uses $clusters, not a dashboard variable'
    }
    log "ok: the dashboard matches Grafana's dashboard schema and its references resolve; $rejected broken copies rejected, each for its defect"
}

check_monitoring() {
    local out="$1" promtool
    local dir="$out/promtool"
    promtool="$("$SCRIPT_DIR/tools/promtool.sh")"
    command -v yq >/dev/null 2>&1 || fail "yq is required (Debian's yq package)"
    mkdir -p "$dir"

    # Off by default: the default install has no monitoring object.
    as_json "$out/default.yaml" >"$dir/default.json"
    jq_check "$dir/default.json" "the default install renders monitoring objects" \
        '[.[] | select((.apiVersion | startswith("monitoring.coreos.com")) or (.metadata.labels.grafana_dashboard != null))] | length == 0'

    as_json "$out/monitoring.yaml" >"$dir/monitoring.json"
    # shellcheck disable=SC2016 # $k is a jq variable
    jq_check "$dir/monitoring.json" "the monitoring install lacks a PodMonitor, ServiceMonitor, PrometheusRule or dashboard ConfigMap" \
        '[.[] | .kind] as $k | ["PodMonitor", "ServiceMonitor", "PrometheusRule", "ConfigMap"] | all(. as $want | $k | index($want) != null)'
    jq_check "$dir/monitoring.json" "the PodMonitor does not select the node pods the operator labels, on port metrics" \
        '[.[] | select(.kind == "PodMonitor")][0] | .spec.selector.matchLabels == {"app.kubernetes.io/name": "proglog", "app.kubernetes.io/component": "node", "app.kubernetes.io/managed-by": "proglog-operator"} and .spec.namespaceSelector == {any: true} and .spec.podMetricsEndpoints[0].port == "metrics" and .spec.podMetricsEndpoints[0].path == "/metrics"'
    jq_check "$dir/monitoring.json" "the ServiceMonitor does not select the operator's metrics Service" \
        "[.[] | select(.kind == \"ServiceMonitor\")][0] | .spec.selector.matchLabels == {\"app.kubernetes.io/name\": \"proglog-operator\", \"app.kubernetes.io/instance\": \"$MONITORING_RELEASE\"} and .spec.endpoints[0].port == \"http-metrics\""
    jq_check "$dir/monitoring.json" "the dashboard ConfigMap lacks the grafana_dashboard label or its namespace" \
        "[.[] | select(.kind == \"ConfigMap\")][0] | .metadata.labels.grafana_dashboard == \"1\" and .metadata.namespace == \"$GRAFANA_NS\""
    as_json "$out/monitoring-scoped.yaml" >"$dir/monitoring-scoped.json"
    jq_check "$dir/monitoring-scoped.json" "the PodMonitor does not follow watchNamespaces" \
        "[.[] | select(.kind == \"PodMonitor\")][0].spec.namespaceSelector == {matchNames: [$(printf '"%s",' "${WATCHED[@]}" | sed 's/,$//')]}"
    as_json "$out/monitoring-listed.yaml" >"$dir/monitoring-listed.json"
    jq_check "$dir/monitoring-listed.json" "monitoring.nodePodMonitor.namespaces is not used" \
        '[.[] | select(.kind == "PodMonitor")][0].spec.namespaceSelector == {matchNames: ["team-x"]}'

    # The PrometheusRule: its groups are a Prometheus rules file (JSON is YAML).
    jq '[.[] | select(.kind == "PrometheusRule")][0].spec' "$dir/monitoring.json" >"$dir/rules.yaml"
    "$promtool" check rules "$dir/rules.yaml" >&2 || fail "promtool check rules on the rendered PrometheusRule"
    jq_check "$dir/rules.yaml" "an alert lacks a severity label, a summary or description annotation, or a for:" \
        '[.groups[].rules[] | select(.alert)] | length > 0 and all(.[]; (.labels.severity | IN("critical", "warning")) and (.annotations.summary | length > 0) and (.annotations.description | length > 0) and (.for | length > 0))'
    local alerts
    alerts="$(jq -r '[.groups[].rules[] | .alert] | join(" ")' "$dir/rules.yaml")"
    cp "$RULE_TESTS" "$dir/rule-tests.yaml"
    "$promtool" test rules "$dir/rule-tests.yaml" >&2 || fail "promtool test rules $(basename "$RULE_TESTS")"
    log "ok: promtool check rules and test rules ($(yq '[.tests[].alert_rule_test[]] | length' "$RULE_TESTS") cases of $(yq -r '[.tests[].alert_rule_test[].alertname] | unique | join(", ")' "$RULE_TESTS")) on the PrometheusRule: $alerts"

    # The dashboard exactly as shipped in the ConfigMap.
    jq -r '[.[] | select(.kind == "ConfigMap")][0].data["proglog.json"]' "$dir/monitoring.json" >"$dir/dashboard.json"
    jq -e 'type == "object" and (.panels | length > 0)' "$dir/dashboard.json" >/dev/null ||
        fail "the dashboard in the ConfigMap is not a JSON dashboard with panels"
    jq_check "$dir/dashboard.json" "a dashboard panel has no query" \
        '[.panels[] | select(.type != "row")] | all(.[]; (.targets | length > 0) and all(.targets[]; .expr | length > 0))'
    # Grafana's variables become values Prometheus accepts; then each query must parse. Variable
    # queries (label_values(SELECTOR, label)) contribute their selector.
    jq -r '[.panels[] | select(.type != "row") | .targets[].expr] + [.templating.list[] | select(.type == "query") | .query.query | capture("^label_values\\((?<s>.*), *[a-z_]+\\)$").s] | .[]' \
        "$dir/dashboard.json" >"$dir/dashboard-exprs.txt"
    # shellcheck disable=SC2016 # Grafana's variables, not the shell's
    sed -e 's/\$__rate_interval/5m/g; s/\$__range/1h/g; s/\$__interval/1m/g; s/\$namespace/.*/g; s/\$cluster/.*/g' \
        "$dir/dashboard-exprs.txt" | jq -R -s 'split("\n") | map(select(length > 0)) | {groups: [{name: "dashboard", rules: [to_entries[] | {record: "dashboard:query_\(.key)", expr: .value}]}]}' \
        >"$dir/dashboard-rules.yaml"
    "$promtool" check rules "$dir/dashboard-rules.yaml" >&2 || fail "a dashboard query does not parse (promtool check rules $dir/dashboard-rules.yaml)"
    log "ok: the dashboard is valid JSON and its $(wc -l <"$dir/dashboard-exprs.txt") queries parse"
    check_dashboard_schema "$dir/dashboard.json" "$dir"

    # Metric names against the source; first, the check must be able to fail.
    registered_metrics >"$dir/registered.txt"
    [[ -s "$dir/registered.txt" ]] || fail "found no registered metrics in node/src/metrics or operator/src/controller/metrics.rs"
    if metric_exists proglog_no_such_metric_total "$dir/registered.txt"; then
        fail "the metric-name check accepts a metric that does not exist"
    fi
    jq -r '.groups[].rules[].expr' "$dir/rules.yaml" >"$dir/rule-exprs.txt"
    check_metric_names "the PrometheusRule" "$dir/rule-exprs.txt" "$dir/registered.txt"
    check_metric_names "the dashboard" "$dir/dashboard-exprs.txt" "$dir/registered.txt"
}
