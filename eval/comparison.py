"""The protocol comparison: one row per metric, one column per protocol, and the settings in which the protocols
that report the metric differ, so two papers' numbers for the same outputs can be told apart at a glance."""
from __future__ import annotations

from typing import Any

from vton.eval.protocols import PROTOCOLS, VTON
from vton.eval.registry import SETTING_OF


def vton_block(summary: dict[str, Any]) -> dict[str, Any]:
    """The ``vton`` protocol's block in the shape of the others: its value of a metric is the mean over images (or
    the set-level score) of all test pairs."""
    metrics = {key: {"value": entry["all"]["mean"], "n": entry["all"]["n"]}
               for key, entry in summary["metrics"].items() if entry.get("all")}
    skipped = {f"{SETTING_OF.get(m, '?')}/{m}": why for m, why in summary["skipped"].items()}
    return {"title": VTON.title, "source": VTON.source, "pins": {}, "notes": [], "seed": summary["protocol"]["seed"],
            "settings": {r.metric: r.how for r in VTON.rows}, "metrics": metrics, "skipped": skipped}


def _order(key: str) -> tuple:
    setting, metric = key.split("/", 1)
    first = [r.metric for p in PROTOCOLS.values() for r in p.rows]
    return (setting, first.index(metric) if metric in first else len(first), metric)


def comparison(blocks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per metric (``setting/metric``): each protocol's number (None: the protocol has the metric but gave no
    number) and, for every setting the protocols describe differently, each one's description."""
    keys = sorted({k for b in blocks.values() for k in (*b["metrics"], *b["skipped"])}, key=_order)
    out = []
    for key in keys:
        metric = key.split("/", 1)[1]
        having = {name: b for name, b in blocks.items() if key in b["metrics"] or key in b["skipped"]}
        values = {name: b["metrics"].get(key, {}).get("value") for name, b in having.items()}
        hows = {name: b["settings"].get(metric, {}) for name, b in having.items()}
        fields = sorted({f for h in hows.values() for f in h})
        differ = {f: {name: h.get(f, "-") for name, h in hows.items()} for f in fields
                  if len({h.get(f, "-") for h in hows.values()}) > 1}
        out.append({"metric": key, "values": values, "differ": differ})
    return out


def comparison_table(summary: dict[str, Any]) -> str:
    """The comparison as plain text: the numbers, then what differs per metric."""
    names = [n for n in PROTOCOLS if n in summary.get("protocols", {})]  # table order (summary.json sorts keys)
    rows = summary.get("comparison", [])
    if not rows:
        return ""

    def cell(v: float | None, present: bool) -> str:
        return "" if not present else "-" if v is None else f"{v:.4f}"

    table = [("metric", *names)] + [(r["metric"], *(cell(r["values"].get(n), n in r["values"]) for n in names))
                                    for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
    lines = ["protocol comparison:"] + ["  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip() for t in table]
    lines += [f"  {name} note: {note}" for name in names for note in summary["protocols"][name].get("notes", [])]
    for r in rows:  # why the numbers differ, where there are two to compare
        if sum(v is not None for v in r["values"].values()) < 2:
            continue
        for setting, by in r["differ"].items():
            lines.append(f"  {r['metric']} {setting}: " + " | ".join(f"{n}: {t}" for n, t in by.items()))
    return "\n".join(lines)
