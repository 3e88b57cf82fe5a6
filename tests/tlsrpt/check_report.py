#!/usr/bin/env python3
"""Reads a TLS-RPT aggregate report (RFC 8460 section 4) as a strict receiver
does: validates it against report.schema.json (JSON Schema, draft 2020-12)
and then checks what a schema cannot say.

usage: check_report.py REPORT.json   (or REPORT.json.gz)
Exit 0 when the report is accepted; 1 with one line per problem otherwise.
"""
import datetime
import gzip
import ipaddress
import json
import os
import re
import sys

import jsonschema

DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def problems(report):
    out = []
    schema_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.schema.json")
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for e in validator.iter_errors(report):
        out.append("schema: %s: %s" % ("/".join(str(p) for p in e.absolute_path), e.message))
    if out:
        return out

    def walk(value, where):
        if isinstance(value, str) and value == "":
            out.append("%s: empty string" % where)
        elif isinstance(value, bool):
            out.append("%s: a boolean" % where)
        elif isinstance(value, float):
            out.append("%s: not an integer" % where)
        elif isinstance(value, int) and value < 0:
            out.append("%s: negative" % where)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, where + "/" + k)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, "%s/%d" % (where, i))

    walk(report, "")

    times = []
    for key in ("start-datetime", "end-datetime"):
        text = report["date-range"][key]
        if not DATE_TIME.match(text):
            out.append("date-range/%s: %r is not an RFC 3339 date-time in UTC" % (key, text))
            continue
        times.append(datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    if len(times) == 2 and times[0] >= times[1]:
        out.append("date-range: start is not before end")

    for i, p in enumerate(report["policies"]):
        where = "policies/%d" % i
        details = p.get("failure-details", [])
        failed = sum(d["failed-session-count"] for d in details)
        if failed != p["summary"]["total-failure-session-count"]:
            out.append("%s: failure-details count %d sessions, the summary %d"
                       % (where, failed, p["summary"]["total-failure-session-count"]))
        if p["policy"]["policy-type"] == "no-policy-found" and p["policy"]["policy-string"]:
            out.append("%s: no-policy-found with policy strings" % where)
        for j, d in enumerate(details):
            if d["failed-session-count"] < 1:
                out.append("%s/failure-details/%d: no failed session" % (where, j))
            for key in ("sending-mta-ip", "receiving-ip"):
                if key in d:
                    try:
                        ipaddress.ip_address(d[key])
                    except ValueError:
                        out.append("%s/failure-details/%d/%s: %r is not an IP address"
                                   % (where, j, key, d[key]))
    return out


def main():
    path = sys.argv[1]
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    try:
        # Strict: UTF-8 only, no duplicate keys, no NaN/Infinity.
        def no_duplicates(pairs):
            keys = [k for k, _ in pairs]
            if len(keys) != len(set(keys)):
                raise ValueError("duplicate key in an object")
            return dict(pairs)

        def no_constant(name):
            raise ValueError("non-JSON constant " + name)

        report = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates,
                            parse_constant=no_constant)
    except ValueError as e:
        print("not strict JSON: %s" % e)
        return 1
    found = problems(report)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
