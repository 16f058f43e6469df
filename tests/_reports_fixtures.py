"""Fixture runs for the report/AMT/study tests, in exactly the formats `vton prepare` and `vton evaluate` write."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import Result
from PIL import Image

H, W = 32, 24
EVIL = "<script>alert(1)"  # a person id that is also a valid file name
FORMULA = "=SUM(1)"


def one_line_error(result: Result) -> str:
    """The message of a CLI call that refused its input cleanly: exit 1, no traceback, one ``Error: ...`` line."""
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an uncaught exception
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def person_ids(n: int) -> list[str]:
    ids = [f"{i:06d}" for i in range(n - 2)]
    return ids + [EVIL, FORMULA]


def image(rng: np.random.Generator) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))


def write_data(root: Path, ids: list[str], seed: int = 0) -> Path:
    """A tiny prepared test split: person and cloth images and the paired/unpaired pairs files."""
    rng = np.random.default_rng(seed)
    data = root / "data"
    for folder in ("image", "cloth"):
        (data / "test" / folder).mkdir(parents=True, exist_ok=True)
    for pid in ids:
        image(rng).save(data / "test" / "image" / f"{pid}_0.jpg")
        image(rng).save(data / "test" / "cloth" / f"{pid}_1.jpg")
    shifted = ids[1:] + ids[:1]
    (data / "test_pairs.txt").write_text("".join(f"{p}_0.jpg {c}_1.jpg\n" for p, c in zip(ids, shifted)))
    (data / "test_pairs_same.txt").write_text("".join(f"{p}_0.jpg {p}_1.jpg\n" for p in ids))
    return data


def write_eval_run(
    root: Path, folder: str, run_name: str, data: Path, ssim: np.ndarray, seed: int, large: set[str],
    small: set[str], inception: float = 2.5,
) -> Path:
    """An evaluation run over ``data``: try-on/warp images for both settings, metrics.parquet and summary.json.

    ``ssim`` holds one paired SSIM per person (in pairs-file order); TV per cloth is the cloth's index.
    """
    rng = np.random.default_rng(seed)
    same = [line.split() for line in (data / "test_pairs_same.txt").read_text().splitlines()]
    unpaired = [line.split() for line in (data / "test_pairs.txt").read_text().splitlines()]
    results = root / f"{folder}_results"
    for setting in ("paired", "unpaired"):
        for sub in ("try-on", "warp-cloth"):
            (results / setting / sub).mkdir(parents=True, exist_ok=True)
        for person, _ in same:
            stem = Path(person).stem
            image(rng).save(results / setting / "try-on" / f"{stem}.png")
            image(rng).save(results / setting / "warp-cloth" / f"{stem}.png")
    rows = []
    for (person, cloth), v in zip(same, ssim):
        rows.append(("paired", person, cloth, "ssim", float(v), cloth in large, cloth in small))
    for i, (_, cloth) in enumerate(same):
        rows.append(("cloth", "", cloth, "tv", float(i), cloth in large, cloth in small))
    metrics = pd.DataFrame(rows, columns=["setting", "person", "cloth", "metric", "value", "large", "small"])
    run = root / folder
    run.mkdir(parents=True)
    metrics.to_parquet(run / "metrics.parquet")

    def stat(values: np.ndarray) -> dict:
        return {"mean": float(np.mean(values)), "std": float(np.std(values)),
                "ci95": [float(np.min(values)), float(np.max(values))], "n": int(len(values))}

    ssim_rows = metrics[metrics.metric == "ssim"]
    summary = {
        "run": run_name, "data": str(data.resolve()),
        "results": {"paired": str((results / "paired").resolve()), "unpaired": str((results / "unpaired").resolve())},
        "protocol": {"versions": {"torch": "2.15", "evil": EVIL}, "ssim": {"sigma": 1.5, "data_range": 1.0}},
        "metrics": {
            "paired/ssim": {"all": stat(ssim_rows.value.to_numpy())}
            | ({"large": stat(ssim_rows[ssim_rows.large].value.to_numpy())} if large else {}),
            "unpaired/is": {"all": {"mean": inception, "std": 0.1, "ci95": None, "n": len(unpaired)}},
        },
        "skipped": {"lpips": "missing weights file alex.pth"},
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def write_prepared(root: Path, rejected: list[tuple[str, str, str, str]], samples: int) -> Path:
    """A prepared-dataset folder: prepare.json, rejected.csv and sample visualisations."""
    out = root / "prepared"
    (out / "samples").mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(samples):
        image(rng).save(out / "samples" / f"{i:06d}_0.png")
    with open(out / "rejected.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pair", "split", "stage", "reason"])
        w.writerows(rejected)
    counts: dict[tuple[str, str], int] = {}
    for _, _, stage, reason in rejected:
        counts[(stage, reason)] = counts.get((stage, reason), 0) + 1
    info = {
        "source": "/src/" + EVIL,
        "layout": "cpvton",
        "seed": 0,
        "pairs": {"total": 10 + len(rejected), "kept": 10, "rejected": len(rejected)},
        "splits": {"train": 6, "test": 4},
        "rejections": [{"stage": s, "reason": r, "count": n} for (s, r), n in sorted(counts.items())],
        "versions": {"vton": "0.1.0"},
    }
    (out / "prepare.json").write_text(json.dumps(info))
    return out
