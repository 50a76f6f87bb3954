#!/usr/bin/python3
"""Checks conf-examples/prometheus/certgate.rules.yml and
conf-examples/grafana/certgate-dashboard.json (issue 13 §4):
  - the rules with `promtool check rules` (Debian's prometheus package), and
    their shape (groups, alert, expr, labels.severity, annotations.summary);
  - the dashboard's shape (title, uid, panels with a type, gridPos and
    targets that each have an expr);
  - with --page FILE ('-': stdin), a status page of a real server: every
    certgate_* metric the rules and the dashboard name is on that page, which
    must parse with prometheus_client's parser.
Exits 1 naming the first problem."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "conf-examples", "prometheus", "certgate.rules.yml")
DASHBOARD = os.path.join(ROOT, "conf-examples", "grafana", "certgate-dashboard.json")
METRIC = re.compile(r"\bcertgate_[a-z_]+\b")
# The six alerts issue 13 §4 asks for.
ALERTS = {
    "CertgateCrlPastNextUpdate", "CertgateCrlFetchFailing", "CertgateMaxStaleRunningOut",
    "CertgateRevocationUnavailableRising", "CertgateRefusalReasonSpike",
    "CertgateClientCertificateExpiringSoon",
}


def fail(message):
    print("conf-examples: " + message, file=sys.stderr)
    sys.exit(1)


def check_rules():
    promtool = shutil.which("promtool")
    if promtool is None:
        fail("promtool is missing (apt install prometheus; scripts/setup.sh)")
    run = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True)
    if run.returncode != 0:
        fail("promtool check rules: " + run.stdout + run.stderr)
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or set(doc) != {"groups"} or not doc["groups"]:
        fail("the rules file must hold a non-empty `groups` list and nothing else")
    names, exprs = set(), []
    for group in doc["groups"]:
        if not isinstance(group.get("name"), str) or not group.get("rules"):
            fail("a group without a name or rules: %r" % group)
        for rule in group["rules"]:
            if not isinstance(rule.get("alert"), str) or not isinstance(rule.get("expr"), str):
                fail("a rule without alert or expr: %r" % rule)
            if rule.get("labels", {}).get("severity") not in ("info", "warning", "critical"):
                fail(rule["alert"] + ": labels.severity must be info, warning or critical")
            if not rule.get("annotations", {}).get("summary"):
                fail(rule["alert"] + ": no annotations.summary")
            names.add(rule["alert"])
            exprs.append(rule["expr"])
    if names != ALERTS:
        fail("alerts %s, expected %s" % (sorted(names), sorted(ALERTS)))
    return exprs


def check_dashboard():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    for key in ("title", "uid", "panels", "schemaVersion"):
        if key not in dash:
            fail("the dashboard has no " + key)
    exprs = []
    for variable in dash.get("templating", {}).get("list", []):
        if isinstance(variable.get("query"), str):
            exprs.append(variable["query"])
    ids = set()
    for panel in dash["panels"]:
        for key in ("id", "title", "type", "gridPos", "targets"):
            if key not in panel:
                fail("panel %r has no %s" % (panel.get("title"), key))
        if panel["id"] in ids:
            fail("two panels with id %r" % panel["id"])
        ids.add(panel["id"])
        for target in panel["targets"]:
            if not isinstance(target.get("expr"), str) or not target.get("refId"):
                fail("panel %r: a target without expr or refId" % panel["title"])
            exprs.append(target["expr"])
    wanted = ["certgate_decisions_total", "certgate_crl_next_update_seconds",
              "certgate_fetch_errors_total", "certgate_client_cert_expiry_seconds"]
    for metric in wanted:
        if not any(metric in expr for expr in exprs):
            fail("the dashboard does not show " + metric)
    return exprs


def page_metrics(path):
    from prometheus_client.parser import text_string_to_metric_families

    text = sys.stdin.read() if path == "-" else open(path).read()
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            names.add(sample.name)
    return names


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--page", help="a status page of a real server ('-': stdin)")
    args = parser.parse_args()
    exprs = check_rules() + check_dashboard()
    if args.page:
        on_page = page_metrics(args.page)
        referenced = set()
        for expr in exprs:
            referenced.update(METRIC.findall(expr))
        missing = sorted(referenced - on_page)
        if missing:
            fail("named by the rules or dashboard, not on the status page: " + ", ".join(missing))
        print("conf-examples: %d metrics referenced, all on the page" % len(referenced))
    print("conf-examples: rules and dashboard check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
