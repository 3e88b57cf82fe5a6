#!/usr/bin/python3
"""Scrapes danemta's monitoring endpoint as a monitoring system does: over
HTTP with urllib, the body read by the Prometheus Python client's own parser
of the text exposition format (Debian package python3-prometheus-client).

usage: scrape.py metrics URL   prints {"content_type", "families": {name: type},
                               "samples": [[name, {labels}, value], ...]}
       scrape.py get URL       prints {"status", "content_type", "body"}
Exit 0 when the request was answered (and, for metrics, the body parsed);
1 with one line on stderr otherwise.
"""
import json
import math
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def fetch(url):
    request = urllib.request.Request(url, headers={"Accept": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def value(v):
    # JSON has no infinities; the tests read "+Inf" and "NaN" as text.
    if math.isinf(v) or math.isnan(v):
        return str(v)
    return v


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("metrics", "get"):
        print(__doc__, file=sys.stderr)
        return 1
    status, content_type, body = fetch(sys.argv[2])
    text = body.decode("utf-8")
    if sys.argv[1] == "get":
        print(json.dumps({"status": status, "content_type": content_type, "body": text}))
        return 0
    if status != 200:
        print("scrape.py: status %d: %s" % (status, text), file=sys.stderr)
        return 1
    families = {}
    samples = []
    try:
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
            for s in family.samples:
                samples.append([s.name, s.labels, value(s.value)])
    except ValueError as e:
        print("scrape.py: not the text exposition format: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps({"content_type": content_type, "families": families, "samples": samples}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
