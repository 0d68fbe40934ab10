"""zooscope.diff on snapshots written by hand and on a small git repository: which models and numbers
changed, and when a per-category change is beyond the older revision's bootstrap interval."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from zooscope.diff import Snapshot, diff_revisions, diff_snapshots, format_diff, read_snapshot

_SPEC = {"source": "recipe:supervised", "tags": {"seed": 0}}


def _study(kappa: float, lo: float, hi: float) -> dict:
    entry = {"pairs": 3, "kappa": kappa, "kappa_lo": lo, "kappa_hi": hi, "gain": 0.01, "gain_lo": 0.0, "gain_hi": 0.02,
             "error_inconsistency": 0.1, "error_inconsistency_lo": 0.09, "error_inconsistency_hi": 0.11}
    return {"categories": {"reinit": entry}, "categories_matched": {}}


def test_added_removed_changed_and_metric_changes():
    a = Snapshot("a", {"m1": _SPEC, "m2": _SPEC, "gone": _SPEC},
                 {"m1": {"top1": 0.5}, "m2": {"top1": 0.6}, "gone": {"top1": 0.1}}, _study(0.50, 0.45, 0.55))
    b = Snapshot("b", {"m1": _SPEC, "m2": {**_SPEC, "tags": {"seed": 1}}, "new": _SPEC},
                 {"m1": {"top1": 0.5}, "m2": {"top1": 0.62}, "new": {"top1": 0.7}}, _study(0.60, 0.55, 0.65))
    diff = diff_snapshots(a, b)
    assert (diff.added, diff.removed, diff.changed) == (["new"], ["gone"], ["m2"])
    assert [(r["model"], r["metric"]) for r in diff.model_changes] == [("m2", "top1")]
    assert diff.model_changes[0]["delta"] == pytest.approx(0.02)
    kappa = next(r for r in diff.category_changes if r["stat"] == "kappa")
    assert kappa["beyond"] is True and kappa["delta"] == pytest.approx(0.1)  # 0.60 is outside [0.45, 0.55]
    gain = next(r for r in diff.category_changes if r["stat"] == "gain")
    assert gain["beyond"] is False and gain["delta"] == 0
    text = format_diff(diff)
    assert "models added    new" in text and "m2       top1" in text and "*" in text.split("per category")[1]
    # the summary comes first: 1 metric change in 1 model; kappa and error inconsistency moved (gain did not)
    assert text.splitlines()[1] == ("1 model(s) added, 1 removed, 1 changed; 1 per-model metric change(s) in 1 model(s); "
                                    "1 per-category statistic(s) moved, 1 beyond the old 95% interval.")


def test_a_side_without_results_is_said_plainly_instead_of_no_changes():
    declared = Snapshot("HEAD~1", {"m1": _SPEC}, {}, None)
    studied = Snapshot("workspace", {"m1": _SPEC}, {"m1": {"top1": 0.5}}, _study(0.5, 0.4, 0.6))
    text = format_diff(diff_snapshots(declared, studied))
    assert text.splitlines()[1].startswith("HEAD~1 has no results to compare") and "no changes" not in text
    both = format_diff(diff_snapshots(declared, Snapshot("HEAD", {"m1": _SPEC}, {}, None)))
    assert "HEAD~1 and HEAD have no results to compare" in both and len(both.splitlines()) == 2


def test_a_change_inside_the_interval_is_not_flagged():
    a = Snapshot("a", {"m": _SPEC}, {"m": {"top1": 0.5}}, _study(0.50, 0.45, 0.55))
    b = Snapshot("b", {"m": _SPEC}, {"m": {"top1": 0.5}}, _study(0.52, 0.47, 0.57))
    diff = diff_snapshots(a, b)
    assert not diff.added and not diff.changed and not diff.model_changes and not diff.empty
    assert next(r for r in diff.category_changes if r["stat"] == "kappa")["beyond"] is False
    assert diff_snapshots(a, a).empty


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=repo, check=True,
                   capture_output=True)


def test_revisions_are_read_through_git(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "metrics/models").mkdir(parents=True)
    (tmp_path / "params.yaml").write_text("models:\n  m1: {source: recipe:supervised}\n")
    (tmp_path / "metrics/models/m1.json").write_text(json.dumps({"top1": 0.5}))
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "one")
    (tmp_path / "params.yaml").write_text("models:\n  m1: {source: recipe:supervised}\n  m2: {source: recipe:simclr}\n")
    (tmp_path / "metrics/models/m2.json").write_text(json.dumps({"top1": 0.4}))
    assert read_snapshot(tmp_path, "HEAD").model_metrics == {"m1": {"top1": 0.5}}
    diff = diff_revisions(tmp_path, "HEAD")  # against the working tree
    assert diff.added == ["m2"] and diff.rev_b == "workspace" and not diff.model_changes
    with pytest.raises(ValueError, match="not a revision"):
        read_snapshot(tmp_path, "nope")
