"""An exported study folder as the server reads it: study.json, hits.csv and the HIT template, checked once."""
from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

from vton.core.io import read_data_file
from vton.reports.shapes import COUNT, FLAG, TEXT, Obj, read_json
from vton.reports.sheets import read_csv
from vton.studies.design import SIDES
from vton.studies.export import ANSWERS, BATCH_CSV, STUDY_JSON, TEMPLATE, StudyError

VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
STUDY_SHAPE = Obj(required={"base_url": TEXT, "trials_per_hit": COUNT}, optional={"cant_tell": FLAG})
CHECKS_AT = '<p id="vton-status"'  # where the server puts its attention checks: after the trials, inside the form
CHECK_QUESTION = "Attention check: this row has no pictures. To show that you read its question, click the button " \
                 "<b>{side}</b>."
CHECK_STYLE = ("<style>#vton-study .attention .opt { border-color: #888; padding: 6px 24px; } "
               "#vton-study .attention .opt.chosen { border-color: #1a7f37; }</style>\n")


class StudyFolder:
    """One exported study: its HITs in order, its template, the answers its trials accept."""

    def __init__(self, folder: Path) -> None:
        """A study.json of the wrong shape, a hits.csv lacking a column the template fills, or a template the
        server cannot place its checks in, is an error here rather than at a participant's request."""
        self.folder = Path(folder)
        info = read_json(self.folder / STUDY_JSON, STUDY_SHAPE)
        self.base_url = info["base_url"].rstrip("/") + "/"
        self.trials = info["trials_per_hit"]
        self.answers = ANSWERS if info.get("cant_tell") else SIDES
        self.fingerprint = hashlib.sha256(read_data_file(self.folder / BATCH_CSV)).hexdigest()
        rows = read_csv(self.folder / BATCH_CSV)
        if not rows:
            raise StudyError(f"{self.folder / BATCH_CSV} lists no HITs")
        self.template = (self.folder / TEMPLATE).read_text(encoding="utf-8")
        missing = sorted({"hit_id", *VARIABLE.findall(self.template)} - set(rows[0]))
        if missing:
            raise StudyError(f"{self.folder / BATCH_CSV} lacks columns {', '.join(missing)} that {TEMPLATE} uses")
        self.hits = {h["hit_id"]: h for h in rows}
        if len(self.hits) != len(rows):
            raise StudyError(f"{self.folder / BATCH_CSV} lists a hit_id twice")
        if self.template.count(CHECKS_AT) != 1:
            raise StudyError(f"{self.folder / TEMPLATE} is not a template of `vton amt export` (no {CHECKS_AT}>)")

    def fill(self, hit_id: str, checks: tuple[str, ...] = ()) -> str:
        """The template with every ``${var}`` replaced by the HIT's escaped value (image URLs served locally) and
        one instructed-response row per entry of ``checks`` (the side it asks for) after the trials."""
        hit = self.hits[hit_id]

        def value(m: re.Match[str]) -> str:
            v = hit[m.group(1)]
            if v.startswith(self.base_url):
                v = "/images/" + v[len(self.base_url):]
            return html.escape(v, quote=True)

        filled = VARIABLE.sub(value, self.template)
        rows = "".join(check_row(j, side) for j, side in enumerate(checks))
        return filled.replace(CHECKS_AT, (CHECK_STYLE + rows if rows else "") + CHECKS_AT)


def check_row(position: int, side: str) -> str:
    """An instructed-response item shaped like a trial: the instruction is the row's own question, as Prolific's
    attention-check policy asks (not a line of the instructions above). Its answer goes to ``check_<position>``."""
    t = f"check{position}"
    buttons = "".join(f'<button type="button" class="opt" id="pick_{t}_{s}" data-trial="{t}" data-side="{s}">{s}'
                      "</button> " for s in SIDES)
    return (f'<div class="trial attention" id="trial_{t}"><p>{CHECK_QUESTION.format(side=side)}</p>{buttons}'
            f'<input type="hidden" class="choice" name="check_{position}" id="choice_{t}" value=""></div>\n')
