"""Markdown tables from tools/fidelity/run.sh's results: one row per method (accuracy, pointing
game, relevance mass, deletion and insertion AUC against a random order) and the cascading
randomisation's Spearman correlations, one column per method.

    python3 tools/fidelity/report.py OUT
"""

import json
import sys
from pathlib import Path


def name(row):
    return row["method"] + (f" `{row['layer']}`" if row.get("layer") else "")


def main():
    out = Path(sys.argv[1])
    methods = [json.loads(line) for line in (out / "methods.jsonl").read_text().splitlines() if line.strip()]
    cascade = [json.loads(line) for line in (out / "cascade.jsonl").read_text().splitlines() if line.strip()]
    print("| method | images | accuracy | pointing game | relevance mass | deletion AUC (random) | insertion AUC (random) |")
    print("|---|---|---|---|---|---|---|")
    for row in methods:
        print(
            f"| {name(row)} | {row['images']} | {row['accuracy']:.3f} | {row['pointing_game']:.3f} | "
            f"{row['relevance_mass']:.3f} | {row['deletion_auc']:.3f} ({row['deletion_auc_random']:.3f}) | "
            f"{row['insertion_auc']:.3f} ({row['insertion_auc_random']:.3f}) |"
        )
    if not cascade:
        return
    columns = list(dict.fromkeys(name(row) for row in cascade))
    steps = list(dict.fromkeys(row["randomised_from"] for row in cascade))
    table = {(row["randomised_from"], name(row)): row for row in cascade}
    print()
    print("| randomised from | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for step in steps:
        cells = []
        for column in columns:
            row = table.get((step, column))
            if row is None or row["spearman"] is None:
                cells.append("-")
            else:
                flat = f" ({row['spearman_undefined']} flat)" if row["spearman_undefined"] else ""
                cells.append(f"{row['spearman']:.3f}{flat}")
        print(f"| `{step}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
