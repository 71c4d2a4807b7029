"""Draw bench/throughput.png: requests/s per server and setup, from bench/results.json.

    .venv/bin/python bench/plot.py        (needs matplotlib: pip install -e '.[bench]')
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETUPS = ("none", "coverage", "servercov", "servercov+contexts")


def _label(label: str, server: str) -> str:
    """Name uWSGI's default 2 x 2, where coverage's own way leaves C threads untraced."""
    if server == "uwsgi" and "uWSGI 2x" not in label:
        return label.replace(", Python", ", uWSGI 2x2 (coverage run:, C threads untraced), Python")
    return label


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads((HERE / "results.json").read_text())
    rows = [(f"{section[11:-1]}, Python {payload['python']}", server, figures)
            for section, payload in sorted(results.items()) if section.startswith("throughput[")
            for server, figures in payload["results"].items() if server != "noop"]
    if not rows:
        print("plot: no throughput figures in bench/results.json", file=sys.stderr)
        return 1
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / len(SETUPS)
    for index, setup in enumerate(SETUPS):
        xs = [row + index * width for row in range(len(rows))]
        ax.bar(xs, [figures.get(setup, 0) for _, _, figures in rows], width, label=setup)
    ax.set_xticks([row + 0.4 - width / 2 for row in range(len(rows))])
    ax.set_xticklabels([f"{server}\n{_label(label, server).replace(', ', chr(10))}"
                        for label, server, _ in rows], fontsize=7)
    ax.set_ylabel("requests/s (wrk -t1 -c8, median)")
    python = {payload["python"] for payload in results.values()}
    ax.set_title(f"Measured server throughput (Python {', '.join(sorted(python))})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "throughput.png", dpi=110)
    print(f"plot: {HERE / 'throughput.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
