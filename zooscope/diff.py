"""What changed in a study between two revisions: models added, removed and changed, per-model metric
changes, and per-category changes with whether they leave the bootstrap interval.

A revision's results are its committed metric files (``metrics/models/<id>.json``, ``metrics/study.json``,
both git-tracked DVC metrics) and its study declaration (``params.yaml``), read with ``git show`` at a
revision, or from the working tree when the revision is ``None``. A per-category change is *beyond the
interval* when the new mean lies outside the older revision's 95% bootstrap interval of that mean.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zooscope.artifacts import MODEL_METRICS, PARAMS, STUDY_METRICS
from zooscope.vocab import CATEGORY_STATS, SUBSETS

__all__ = ["Snapshot", "StudyDiff", "read_snapshot", "diff_snapshots", "diff_revisions", "compare_with", "format_diff",
           "revision_exists", "WORKSPACE"]

#: How the working tree is named in a diff.
WORKSPACE = "workspace"
#: The per-category statistics compared (each has ``_lo`` / ``_hi`` in metrics/study.json).


@dataclass(frozen=True)
class Snapshot:
    """A study's declaration and results at one revision.

    Attributes:
        rev: the revision (``workspace`` for the working tree). models: model id -> its spec in params.yaml.
        model_metrics: model id -> its metrics (models whose metric file exists). study: metrics/study.json or None.
    """

    rev: str
    models: dict[str, Any]
    model_metrics: dict[str, dict[str, Any]]
    study: dict[str, Any] | None

    @property
    def has_results(self) -> bool:
        return bool(self.model_metrics)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def _read_at(root: Path, rev: str | None, path: str) -> str | None:
    """The text of ``path`` (relative to ``root``) at ``rev``, or in the working tree; None when absent."""
    if rev is None:
        file = root / path
        return file.read_text() if file.exists() else None
    proc = _git(root, "show", f"{rev}:./{path}")
    return proc.stdout if proc.returncode == 0 else None


def _list_at(root: Path, rev: str | None, folder: str) -> list[str]:
    """File names in ``folder`` at ``rev`` (or in the working tree)."""
    if rev is None:
        return sorted(p.name for p in (root / folder).glob("*")) if (root / folder).is_dir() else []
    proc = _git(root, "ls-tree", "--name-only", f"{rev}:./{folder}")
    return sorted(proc.stdout.split()) if proc.returncode == 0 else []


def revision_exists(root: str | Path, rev: str) -> bool:
    return _git(Path(root), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").returncode == 0


def read_snapshot(root: str | Path, rev: str | None, *, params: str = PARAMS,
                  metrics_dir: str = MODEL_METRICS, study_metrics: str = STUDY_METRICS) -> Snapshot:
    """The study at ``rev`` (a git revision, or None for the working tree) in the repository at ``root``.

    Raises:
        ValueError: ``rev`` is not a commit of the repository.
    """
    root = Path(root)
    if rev is not None and not revision_exists(root, rev):
        raise ValueError(f"{rev!r} is not a revision of the git repository at {root}")
    text = _read_at(root, rev, params)
    declared = (yaml.safe_load(text) or {}) if text else {}
    models = dict(declared.get("models") or {})
    metrics = {}
    for name in _list_at(root, rev, metrics_dir):
        mid = name.removesuffix(".json")
        if name.endswith(".json") and (body := _read_at(root, rev, f"{metrics_dir}/{name}")) is not None:
            metrics[mid] = json.loads(body)
    study_text = _read_at(root, rev, study_metrics)
    return Snapshot(rev or WORKSPACE, models, metrics, json.loads(study_text) if study_text else None)


@dataclass(frozen=True)
class StudyDiff:
    """What changed from ``rev_a`` to ``rev_b``.

    Attributes:
        added, removed: model ids declared in only one revision. changed: ids whose declaration differs.
        model_changes: rows (model, metric, old, new, delta) for models in both revisions whose metric differs.
        category_changes: rows (subset, category, stat, old, new, delta, old_lo, old_hi, beyond) for every
            category of either revision; ``beyond``: the new mean is outside the old 95% interval (None when
            the category exists in only one revision).
        without_results: the revisions (of rev_a, rev_b) that hold no results (no per-model metric file).
    """

    rev_a: str
    rev_b: str
    added: list[str]
    removed: list[str]
    changed: list[str]
    model_changes: list[dict[str, Any]] = field(default_factory=list)
    category_changes: list[dict[str, Any]] = field(default_factory=list)
    without_results: list[str] = field(default_factory=list)

    @property
    def moved(self) -> list[dict[str, Any]]:
        """The per-category rows whose value changed (or exists on one side only)."""
        return [r for r in self.category_changes if r["delta"] is None or abs(r["delta"]) > 1e-12]

    def summary(self) -> str:
        """One sentence: what changed, before the lists."""
        if self.without_results:
            return (f"{' and '.join(self.without_results)} {'has' if len(self.without_results) == 1 else 'have'} no "
                    f"results to compare ({MODEL_METRICS} holds nothing there): run the study and commit its results "
                    "(git add -A && git commit) to give a diff a side.")
        models = {r["model"] for r in self.model_changes}
        beyond = sum(bool(r["beyond"]) for r in self.moved)
        return (f"{len(self.added)} model(s) added, {len(self.removed)} removed, {len(self.changed)} changed; "
                f"{len(self.model_changes)} per-model metric change(s) in {len(models)} model(s); "
                f"{len(self.moved)} per-category statistic(s) moved, {beyond} beyond the old 95% interval.")

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.model_changes or self.moved)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def _category_changes(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for subset, (key, _) in SUBSETS.items():
        old_t, new_t = (a or {}).get(key) or {}, (b or {}).get(key) or {}
        for cat in sorted(set(old_t) | set(new_t)):
            old, new = old_t.get(cat) or {}, new_t.get(cat) or {}
            for stat in CATEGORY_STATS:
                o, n, lo, hi = _num(old.get(stat)), _num(new.get(stat)), _num(old.get(f"{stat}_lo")), _num(old.get(f"{stat}_hi"))
                both = o is not None and n is not None
                rows.append({"subset": subset, "category": cat, "stat": stat, "old": o, "new": n,
                             "delta": n - o if both else None, "old_lo": lo, "old_hi": hi,
                             "beyond": bool(n < lo or n > hi) if both and lo is not None and hi is not None else None})
    return rows


def diff_snapshots(a: Snapshot, b: Snapshot, *, tol: float = 1e-12) -> StudyDiff:
    """Compare two snapshots (see :class:`StudyDiff`)."""
    ids_a, ids_b = set(a.models) | set(a.model_metrics), set(b.models) | set(b.model_metrics)
    common = [m for m in b.models if m in ids_a] + sorted((ids_a & ids_b) - set(b.models))
    model_rows = []
    for mid in common:
        old, new = a.model_metrics.get(mid, {}), b.model_metrics.get(mid, {})
        for metric in sorted(set(old) | set(new)):
            o, n = _num(old.get(metric)), _num(new.get(metric))
            if (o is None) != (n is None) or (o is not None and n is not None and abs(n - o) > tol):
                model_rows.append({"model": mid, "metric": metric, "old": o, "new": n,
                                   "delta": n - o if o is not None and n is not None else None})
    return StudyDiff(
        rev_a=a.rev, rev_b=b.rev,
        added=[m for m in b.models if m not in ids_a] + sorted(ids_b - ids_a - set(b.models)),
        removed=sorted(ids_a - ids_b),
        changed=[m for m in common if m in a.models and m in b.models and a.models[m] != b.models[m]],
        model_changes=model_rows, category_changes=_category_changes(a.study, b.study),
        without_results=[s.rev for s in (a, b) if not s.has_results],
    )


def compare_with(root: str | Path, rev: str | None) -> StudyDiff | str | None:
    """The working tree's study against the results committed at ``rev`` (the report's ``compare_to``):
    a :class:`StudyDiff`, a sentence saying why there is no comparison, or None when ``rev`` is None."""
    if rev is None:
        return None
    if not revision_exists(root, rev):
        return f"No comparison: {rev} is not a commit of this repository yet."
    before = read_snapshot(root, rev)
    if not before.has_results:
        return f"No comparison: the commit {rev} has no committed results ({MODEL_METRICS})."
    return diff_snapshots(before, read_snapshot(root, None))


def diff_revisions(root: str | Path, rev_a: str, rev_b: str | None = None) -> StudyDiff:
    """The diff between two git revisions of the study at ``root`` (``rev_b`` None: the working tree)."""
    return diff_snapshots(read_snapshot(root, rev_a), read_snapshot(root, rev_b))


def _fmt(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def format_diff(diff: StudyDiff) -> str:
    """The diff as plain-text tables for the terminal."""
    lines = [f"zooscope diff {diff.rev_a} -> {diff.rev_b}", diff.summary(), ""]
    if diff.without_results and not diff.added and not diff.removed and not diff.changed:
        return "\n".join(lines[:2])
    for what in ("added", "removed", "changed"):
        ids = getattr(diff, what)
        lines.append(f"models {what:<8} {', '.join(ids) if ids else '(none)'}")
    lines += ["", "per-model metrics" + ("" if diff.model_changes else ": no changes")]
    if diff.model_changes:
        width = max(8, *(len(r["model"]) for r in diff.model_changes))
        lines.append(f"  {'model':<{width}} {'metric':<12} {'old':>9} {'new':>9} {'change':>9}")
        lines += [f"  {r['model']:<{width}} {r['metric']:<12} {_fmt(r['old']):>9} {_fmt(r['new']):>9} {_fmt(r['delta'], signed=True):>9}"
                  for r in diff.model_changes]
    moved = diff.moved
    lines += ["", "per category (* = new mean outside the old 95% bootstrap interval)" + ("" if moved else ": no changes")]
    if moved:
        lines.append(f"  {'subset':<8} {'category':<16} {'stat':<20} {'old':>9} {'new':>9} {'change':>9}  old 95% interval")
        for r in moved:
            interval = f"[{r['old_lo']:.4f}, {r['old_hi']:.4f}]" if r["old_lo"] is not None else "-"
            lines.append(f"  {r['subset']:<8} {r['category']:<16} {r['stat']:<20} {_fmt(r['old']):>9} {_fmt(r['new']):>9} "
                         f"{_fmt(r['delta'], signed=True):>9}  {interval}{' *' if r['beyond'] else ''}")
    return "\n".join(lines)
