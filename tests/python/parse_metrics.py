"""Parses a Prometheus text exposition (version 0.0.4) with the prometheus_client package's own
parser and prints every sample as JSON, for tests/tests/metrics.rs:

    python parse_metrics.py < exposition.txt
    -> [{"name": ..., "labels": {...}, "value": ...}, ...]

A malformed exposition makes the parser raise, and this script exit non-zero.
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> None:
    samples = []
    for family in text_string_to_metric_families(sys.stdin.read()):
        if not family.name.startswith("explain_"):
            sys.exit(f"metric family {family.name} lacks the explain_ prefix")
        for sample in family.samples:
            samples.append({"name": sample.name, "labels": sample.labels, "value": sample.value})
    json.dump(samples, sys.stdout)


if __name__ == "__main__":
    main()
