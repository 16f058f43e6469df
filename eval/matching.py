"""Finding another method's try-on outputs and matching them to the dataset's test pairs.

Two kinds of rule live here. `scan` and `match_results` are ours: they accept every name form the field writes and
account for every file (nothing is dropped or guessed). The ``<script>_*`` functions reproduce, as pure functions on
names, paths and sizes, how each published evaluation script pairs predictions with ground truth, including its
quirks, so a score can be recomputed the way a paper computed it. Each docstring names the file it reproduces.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vton.core.formats import IMAGE_SUFFIXES
from vton.core.io import UnsafePathError

NAME_FORMS = ("person", "person_cloth", "catvton_id")  # tried in this order; the first form that fits decides
JPEG_MAGIC = b"\xff\xd8\xff"  # SOI marker + the first byte of the next marker: every JPEG/JFIF/EXIF file starts so
CATVTON_SUFFIXES = frozenset({".jpg", ".png"})  # CatVTON eval.py's postfix set, compared case-sensitively
CATVTON_ID_LENGTH = 8
LADI_VTON_BATCH = 32  # val_metrics.py's default batch size: its assertion compares names batch by batch
HRVITON_GT_SUFFIX = "_00.jpg"


# --- our rule: scan a folder, match every file ---------------------------------------------------------------------
def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()


def scan(folder: Path) -> list[Path]:
    """Every entry under ``folder`` that is not a folder, recursively, sorted by its path relative to ``folder``.

    Results come flat, in ``try-on/`` subfolders or in DressCode's ``<category>/<name>`` folders, so the walk is
    recursive. Links to folders are not followed (a link can loop or leave the folder); they, links to files and
    special files are returned as entries, for `match_results` to check one by one and refuse by name (`refusal`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    entries: list[Path] = []
    pending = [folder]
    while pending:
        with os.scandir(pending.pop()) as it:
            for entry in it:
                path = Path(entry.path)
                (pending if entry.is_dir(follow_symlinks=False) else entries).append(path)
    return sorted(entries, key=lambda p: _relative(p, folder))


def refusal(path: Path, root: Path) -> str | None:
    """Why ``path`` is not read as a file of ``root`` (None: it is a regular file inside it, links resolved)."""
    if _relative(path, root).split("/")[0] == "..":
        return "is outside the folder"
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        return f"leaves the folder through a link (to {real})"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "is a broken link"
    if stat.S_ISDIR(mode):
        return "is a link to a folder (not followed)"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    return None


def is_jpeg(path: Path) -> bool:
    """Whether the file's bytes are JPEG, whatever its extension (a ``.png`` that is a JPEG lost pixels at q75)."""
    with open(path, "rb") as fh:
        return fh.read(len(JPEG_MAGIC)) == JPEG_MAGIC


@dataclass(frozen=True)
class Matched:
    """Result files against the pairs. Every given file is in exactly one of found (its value), duplicates (one of
    its values), ambiguous, extra, ignored, refused; every pair's person in exactly one of found, missing,
    duplicates."""

    found: dict[str, Path]  # person -> the one result file that matches the pair
    missing: list[str]  # persons (pairs order) that no file matches
    duplicates: dict[str, list[Path]]  # person -> its candidates (> 1): none is chosen, the person is not scored
    ambiguous: dict[Path, list[str]]  # file -> the persons its name fits equally well: not guessed
    extra: list[Path]  # image files that fit no pair
    ignored: list[Path]  # files that are not images by their extension
    refused: dict[Path, str]  # entries never read, with the reason (`refusal`)
    jpeg: list[Path]  # found files whose bytes are JPEG (whatever their extension)
    form: dict[str, int]  # found files per name form (`NAME_FORMS`)


def _stem(name: str) -> str:
    return os.path.splitext(os.path.basename(name))[0]


def _name_tables(pairs: Sequence[tuple[str, str]]) -> dict[str, dict[str, list[str]]]:
    """form -> (key a file's stem must give -> the persons it would match)."""
    tables: dict[str, dict[str, list[str]]] = {form: {} for form in NAME_FORMS}
    for person, cloth in pairs:
        p = _stem(person)
        for form, key in zip(NAME_FORMS, (p, f"{p}_{_stem(cloth)}", catvton_id(p))):
            if key is None:  # a person name without a digit has no CatVTON id
                continue
            persons = tables[form].setdefault(key, [])
            if person not in persons:
                persons.append(person)
    return tables


def _file_key(form: str, stem: str) -> str | None:
    return catvton_id(stem) if form == "catvton_id" else stem


def match_results(files: Sequence[Path], root: Path, pairs: Sequence[tuple[str, str]]) -> Matched:
    """Match result files (from `scan`, under ``root``) to ``pairs`` = (person, cloth) file names of a pairs list.

    A file's stem (its extension .png/.jpg/.jpeg in any case, in any subfolder) fits a pair as ``{person stem}``,
    else ``{person stem}_{cloth stem}`` (HR-VITON, DCI-VTON), else by CatVTON's id (`catvton_id` of the stem, so the
    extension does not enter it): the first form with any fit decides. A file fitting several persons by that form is
    ambiguous; a person with several files has duplicates. Neither is resolved here: a silent pick would score an
    arbitrary file; the caller reports them and the user removes the extra files or points at a narrower folder.
    """
    tables = _name_tables(pairs)
    persons = list(dict.fromkeys(person for person, _ in pairs))
    candidates: dict[str, list[tuple[Path, str]]] = {p: [] for p in persons}
    ambiguous: dict[Path, list[str]] = {}
    extra: list[Path] = []
    ignored: list[Path] = []
    refused: dict[Path, str] = {}
    for path in files:
        path = Path(path)
        reason = refusal(path, root)
        if reason is not None:
            refused[path] = reason
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            ignored.append(path)
            continue
        fits = ((form, tables[form].get(key, [])) for form in NAME_FORMS
                if (key := _file_key(form, _stem(path.name))) is not None)
        form, fit = next(((form, fit) for form, fit in fits if fit), ("", []))
        if not fit:
            extra.append(path)
        elif len(fit) > 1:
            ambiguous[path] = list(fit)
        else:
            candidates[fit[0]].append((path, form))
    found = {p: c[0][0] for p, c in candidates.items() if len(c) == 1}
    forms = {form: sum(c[0][1] == form for c in candidates.values() if len(c) == 1) for form in NAME_FORMS}
    return Matched(
        found=found,
        missing=[p for p, c in candidates.items() if not c],
        duplicates={p: [path for path, _ in c] for p, c in candidates.items() if len(c) > 1},
        ambiguous=ambiguous, extra=extra, ignored=ignored, refused=refused,
        jpeg=[path for path in found.values() if is_jpeg(path)],
        form=forms,
    )


# --- LaDI-VTON ------------------------------------------------------------------------------------------------------
def ladi_vton_pairs(gt_paths: Sequence[Path], gen_paths: Sequence[Path],
                    batch_size: int = LADI_VTON_BATCH) -> list[tuple[Path, Path]]:
    """(ground truth, generated) as miccunifi/ladi-vton ``src/utils/val_metrics.py`` pairs them for SSIM and LPIPS.

    Both lists are sorted by their full path strings (not `Path` order: ``a/b-c`` < ``a/b/c`` as strings), batched
    (``batch_size``), the two loaders zipped and each batch's basenames without extension asserted equal. zip stops
    at the shorter loader, so with different counts the script stops at the first batch whose names differ; when the
    shorter list ends on a batch boundary and agrees so far, it scores that many pairs and skips the rest silently:
    then fewer pairs are returned. ValueError wherever the script's assertion would stop it, naming the mismatch.
    ``gen_paths``: every file of ``<gen>/<category>`` (the script filters no extension).
    """
    gt, gen = sorted(gt_paths, key=str), sorted(gen_paths, key=str)
    stop = "LaDI-VTON's val_metrics.py would stop with an AssertionError"
    for start in range(0, min(len(gt), len(gen)), batch_size):
        gt_names = [_stem(str(p)) for p in gt[start:start + batch_size]]
        gen_names = [_stem(str(p)) for p in gen[start:start + batch_size]]
        if gt_names == gen_names:
            continue
        first = next((i for i, (a, b) in enumerate(zip(gt_names, gen_names)) if a != b), None)
        if first is not None:
            raise ValueError(f"{stop} in batch {start // batch_size}: generated {gen[start + first]} is paired with "
                             f"ground truth {gt[start + first]} (the sorted lists differ at position {start + first})")
        raise ValueError(f"{stop} in batch {start // batch_size}: {len(gen_names)} generated against {len(gt_names)} "
                         f"ground-truth images ({len(gen)} and {len(gt)} in all; zip truncates to the shorter list)")
    return list(zip(gt, gen))


# --- CatVTON and VtonEval ------------------------------------------------------------------------------------------
def catvton_id(name: str) -> str | None:
    """CatVTON ``eval.py`` ``extract_id_from_filename``: the 8 characters from the first digit (``str.isdigit``) of
    the basename, extension included when the name is short (``a1_0.png`` -> ``1_0.png``); None where the script
    asserts (no digit)."""
    base = os.path.basename(name)
    first = next((i for i, c in enumerate(base) if c.isdigit()), None)
    return None if first is None else base[first:first + CATVTON_ID_LENGTH]


def vtoneval_id(name: str) -> str | None:
    """franciszzj/VtonEval ``eval.py`` ``extract_id_from_filename``: a name containing ``inshop`` is its part before
    the first dot (``a.inshop.jpg`` -> ``a``), any other CatVTON's id (`catvton_id`)."""
    base = os.path.basename(name)
    return base.split(".")[0] if "inshop" in base else catvton_id(base)


def catvton_scan(folder: Path) -> list[Path]:
    """CatVTON ``eval.py`` ``scan_files_in_dir(folder, postfix={'.jpg', '.png'})``: the files under ``folder``,
    recursively, whose ``os.path.splitext`` suffix is exactly ``.jpg`` or ``.png`` (``.JPG``, ``.jpeg`` are left out).

    The script walks ``os.scandir`` order (the filesystem's); sorted by relative path here, for a reproducible run.
    Entries `refusal` refuses (links leaving the folder, links to folders, special files) raise UnsafePathError.
    """
    entries = scan(folder)
    refused = [(p, r) for p in entries if (r := refusal(p, folder)) is not None]
    if refused:
        raise UnsafePathError(f"{len(refused)} entries of {folder} refused, e.g. {refused[0][0]} {refused[0][1]}")
    return [p for p in entries if os.path.splitext(p.name)[1] in CATVTON_SUFFIXES]


def catvton_pairs(gt_files: Sequence[Path], pred_files: Sequence[Path],
                  id_of: Callable[[str], str | None] = catvton_id) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """CatVTON ``eval.py`` ``EvalDataset.prepare_data``: ((gt, pred) pairs, unmatched predictions).

    A dict from each ground-truth file's id to the file (the last file of an id wins), then each prediction in order
    looked up by its id; predictions without a ground truth are printed by the script and dropped. ``id_of``:
    `catvton_id`, or `vtoneval_id` for franciszzj/VtonEval's copy. ValueError where the script's assertion stops it
    (a name without a digit).
    """
    def ident(path: Path) -> str:
        key = id_of(Path(path).name)
        if key is None:
            raise ValueError(f"CatVTON's eval.py would stop with an AssertionError: no digit in the name {path}")
        return key

    gt_by_id = {ident(p): Path(p) for p in gt_files}
    pairs = [(gt_by_id[ident(p)], Path(p)) for p in pred_files if ident(p) in gt_by_id]
    return pairs, [Path(p) for p in pred_files if ident(p) not in gt_by_id]


def catvton_needs_resize(first_pred_wh: tuple[int, int], first_gt_wh: tuple[int, int]) -> bool:
    """CatVTON (and VtonEval) ``eval.py`` ``eval``: the ground truth is resized into a copy when the heights of the
    first entries of ``os.listdir(pred_folder)`` and ``os.listdir(gt_folder)`` differ. Which files are first is the
    filesystem's order, so the check may look at any pair of files; where the first entry is a folder (DressCode's
    nested ``<category>/`` output) the script stops, PIL cannot open it."""
    return first_pred_wh[1] != first_gt_wh[1]


def catvton_gt_size(pred_size_wh: tuple[int, int], gt_size_wh: tuple[int, int],
                    exact: bool = False) -> tuple[int, int]:
    """The (w, h) the ground truth is resized to (LANCZOS, then saved under the same name: ``.jpg`` at quality 75).

    CatVTON ``eval.py`` ``copy_resize_gt``: the prediction's height, the width scaled by it and truncated,
    ``int(w_gt * h_pred / h_gt)``. ``exact``: franciszzj/VtonEval ``eval.py`` ``copy_resize_gt``, the prediction's
    exact (w, h), the aspect ratio not kept.
    """
    (w_pred, h_pred), (w_gt, h_gt) = pred_size_wh, gt_size_wh
    return (w_pred, h_pred) if exact else (int(w_gt * h_pred / h_gt), h_pred)


# --- HR-VITON ------------------------------------------------------------------------------------------------------
def hrviton_gt_name(pred_name: str, ending: str = HRVITON_GT_SUFFIX) -> str:
    """sangyun884/HR-VITON ``evaluate.py``: the ground truth of a prediction is its name up to the first ``_`` plus
    ``_00.jpg`` (``00001_00_00002_00.png`` -> ``00001_00.jpg``; a name without ``_`` keeps its whole name).

    ``ending``: VITON-HD's ``_00.jpg`` in the script; another layout's persons' common ending (VITON's ``_0.jpg``)
    applies the same rule to its names."""
    return pred_name.split("_")[0] + ending


def hrviton_pairs(pred_dir_listing: Sequence[str], gt_dir_listing: Sequence[str],
                  ending: str = HRVITON_GT_SUFFIX) -> tuple[list[tuple[str, str]], int]:
    """sangyun884/HR-VITON ``evaluate.py``: ((prediction, ground truth) names in ``sorted(os.listdir(pred))`` order,
    the divisor of every average).

    Every entry of the prediction folder is evaluated (no extension filter: the ``lpips.txt`` and ``eval.txt`` a first
    run writes there stop a second one), and every sum is divided by ``len(os.listdir(gt))``, the number of entries of
    the ground-truth folder, not of predictions: a partial or padded folder scales every score. ValueError where the
    script stops: a ground truth missing (FileNotFoundError) or more predictions than ground-truth entries (IndexError
    on the Inception score's row ``len(gt)``).
    """
    gt_names, divisor = set(gt_dir_listing), len(gt_dir_listing)
    pairs = []
    for i, pred in enumerate(sorted(pred_dir_listing)):
        gt = hrviton_gt_name(pred, ending)
        if gt not in gt_names:
            raise ValueError(f"HR-VITON's evaluate.py would stop with a FileNotFoundError: no ground truth {gt} "
                             f"for the prediction {pred}")
        if i >= divisor:
            raise ValueError(f"HR-VITON's evaluate.py would stop with an IndexError at prediction {pred}: it holds "
                             f"Inception rows for {divisor} images, the number of ground-truth entries")
        pairs.append((pred, gt))
    return pairs, divisor


# --- CIT (CP-VTON+ lineage) ----------------------------------------------------------------------------------------
def cit_pairs(dir0_names: Sequence[str], dir1_names: Sequence[str]) -> list[str]:
    """The names scored in both folders, sorted: Amazingren/CIT ``metrics/PerceptualSimilarity/lpips_2dirs.py``
    scores each name of ``os.listdir(dir0)`` that also exists in dir1, the mean not depending on the order.

    Its ``metrics/getSSIM.py`` and ``metrics/getJS.py`` instead zip two unsorted ``os.listdir`` (filesystem order,
    not reproducible, truncated to the shorter list); we pair SSIM and JS by name, with this same intersection.
    """
    shared = set(dir1_names)
    return sorted(name for name in dict.fromkeys(dir0_names) if name in shared)
