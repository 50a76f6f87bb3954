#!/usr/bin/python3
"""Parses a Prometheus text page (stdin) with prometheus_client's own parser
and prints its samples one per line for the C++ tests:
    name TAB value TAB type [TAB label=value]...
Exits 1 with the parser's complaint when the page does not parse, or when a
family is declared twice (Prometheus refuses that on ingest)."""
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    page = sys.stdin.read()
    seen = set()
    try:
        for family in text_string_to_metric_families(page):
            if family.name in seen:
                raise ValueError("family declared twice: " + family.name)
            seen.add(family.name)
            for sample in family.samples:
                fields = [sample.name, repr(float(sample.value)), family.type]
                for label, value in sorted(sample.labels.items()):
                    if "\t" in value or "\n" in value:
                        raise ValueError("a label value with a tab or newline: " + repr(value))
                    fields.append(label + "=" + value)
                print("\t".join(fields))
    except Exception as error:  # the parser raises ValueError and friends
        print("does not parse: %s" % error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
