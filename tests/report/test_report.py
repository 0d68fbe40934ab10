"""The report: reports/index.html of the tiny study in headless Chromium (offline, no console errors,
every figure and image present), escaping of data strings, and `dvc metrics diff`, `dvc plots diff` and
`zooscope diff` across two commits (one adds a model, one changes a recipe)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from PIL import Image

from tests.conftest import REPO, TINY_STUDY, write_study
from tests.dvcrepo import _run, dvc, ran_stages
from zooscope.report.page import Column, Html, esc, render_page, table, tag

EVIL = "<script>alert(1)</script>"
_CHROMIUM = shutil.which("chromium")
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync"]
# what the D1 acceptance check counts as loading from outside (links <a href> are fine)
_EXTERNAL = re.compile(r"<(script|img|iframe|source|video|audio|embed)[^>]*\s(src|srcset|poster)\s*=\s*[\"']?(https?:)?//"
                       r"|<link[^>]*href\s*=\s*[\"']?(https?:)?//|url\(\s*[\"']?(https?:)?//|@import\s+[\"']?(https?:)?//", re.I)
# the figures of each section of the tiny study's report
_FIGURES = {"categories": 2,  # kappa and gain by category; accuracy against kappa with the base
            "calibration": 1, "ensembles": 2,  # gain against kappa; the greedy curve
            "error-consistency": 1, "similarity": 3,  # CKA and mutual k-NN heatmaps; CKA against kappa
            "overlap": 2,  # concatenated probes; feature mixes
            "specialisation": 1, "subgroups": 1,  # accuracy per group and class minus the base's
            "complementary": 1, "partners": 1,  # predicted against measured gain
            "robustness": 1,
            "adversarial-transfer": 2,  # transfer heatmap; transfer against kappa
            "shift": 2}  # accuracy on the corrupted sets against clean; every model on every set


# --------------------------------------------------------------------------- page building blocks


def test_helpers_escape_data_and_keep_their_own_markup():
    assert esc(EVIL) == "&lt;script&gt;alert(1)&lt;/script&gt;" and esc(Html("<b>x</b>")) == "<b>x</b>"
    html = tag("p", EVIL, title='"x" & <y>')
    assert html == '<p title="&quot;x&quot; &amp; &lt;y&gt;">&lt;script&gt;alert(1)&lt;/script&gt;</p>'
    rows = [{"model": EVIL, "acc": 0.5}, {"model": "b", "acc": None}]
    out = table(rows, [Column("model", "model"), Column("acc", "acc", lambda v: f"{v:.2f}", True)], sortable=True)
    assert "<script" not in out and 'data-v="0.5"' in out and "–" in out and 'class="sortable"' in out


def _zoo(*rows: tuple[str, str, bool, float]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(models frame, overlap table) from (model, category, weak, MMD ratio to the base "b" in each of two classes)."""
    models = pl.DataFrame({"model": ["b", *(r[0] for r in rows)], "category": ["base", *(r[1] for r in rows)],
                           "weak": [False, *(r[2] for r in rows)]})
    overlap = pl.DataFrame({"class": [c for _ in rows for c in (0, 1)], "model_a": ["b"] * 2 * len(rows),
                            "model_b": [r[0] for r in rows for _ in (0, 1)],
                            "ratio": [v for r in rows for v in (r[3] - 0.1, r[3] + 0.1)]})
    return models, overlap


def test_critic_models_are_the_base_and_the_farthest_of_the_most_distant_categories():
    from zooscope.report.mistake_sections import critic_models

    zoo = [("r1", "reinit", False, 0.2), ("h1", "hyperparameters", False, 0.3), ("f1", "framework", False, 0.3),
           ("f2", "framework", True, 0.6), ("f3", "framework", False, 0.4), ("d1", "dataset", False, 0.25)]
    models, overlap = _zoo(*zoo)
    # dataset and framework; within framework the farthest one not flagged weak; shown in category order
    assert critic_models(overlap, models, base="b") == ["b", "f3", "d1"]
    # pairs without the base do not count
    extra = pl.DataFrame({"class": [0], "model_a": ["f1"], "model_b": ["f3"], "ratio": [9.0]})
    assert critic_models(pl.concat([overlap, extra]), models, base="b") == ["b", "f3", "d1"]
    models, overlap = _zoo(*(r for r in zoo if r[1] != "dataset"))
    assert critic_models(overlap, models, base="b") == ["b", "h1", "f3"]
    # a weak model when its category has no other; two of one category only when no other category is left
    models, overlap = _zoo(("r1", "reinit", False, 0.2), ("f2", "framework", True, 0.6))
    assert critic_models(overlap, models, base="b") == ["b", "r1", "f2"]
    models, overlap = _zoo(("r1", "reinit", False, 0.2), ("r2", "reinit", False, 0.3), ("r3", "reinit", False, 0.1))
    assert critic_models(overlap, models, base="b") == ["b", "r1", "r2"]
    assert critic_models(overlap, models, base="b", others=1) == ["b", "r2"]
    # a compressed copy of the base has no methodology category: never chosen, however far its prototypes lie
    models, overlap = _zoo(("r1", "reinit", False, 0.2), ("d1", "dataset", False, 0.25), ("b_int8", "compression", False, 0.9),
                           ("b_p90", "compressed-other", False, 0.95))
    assert critic_models(overlap, models, base="b") == ["b", "r1", "d1"]


# --------------------------------------------------------------------------- the rendered report


def _chromium(url: str, work: Path, *extra: str) -> tuple[str, str, list[str]]:
    """Open ``url`` headless with a fresh profile: (DOM after scripts ran, console messages, URLs the page asked for)."""
    assert _CHROMIUM is not None, "chromium is missing under CI: `make test` installs it (the Makefile's browser target)"
    profile, netlog = work / "profile", work / "net.json"
    proc = subprocess.run([_CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                           f"--log-net-log={netlog}", *extra, "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    shutil.rmtree(profile, ignore_errors=True)
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, "\n".join(console), _page_requests(netlog)


def _page_requests(netlog: Path) -> list[str]:
    """URLs the page requested (Chromium's own background requests have no origin as initiator)."""
    text = netlog.read_text().rstrip()
    events = json.loads(text if text.endswith("}") else text.rstrip(",") + "]}")
    start = events["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in events["events"]
            if e["type"] == start and e.get("params", {}).get("initiator", "not an origin") != "not an origin"]


def _screenshot(url: str, png: Path, work: Path) -> Image.Image:
    profile = work / "shot-profile"
    subprocess.run([_CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", "--window-size=1400,2400", "--hide-scrollbars",
                    f"--screenshot={png}", url], capture_output=True, timeout=120, check=True)
    shutil.rmtree(profile, ignore_errors=True)
    return Image.open(png)


#: Without chromium the browser tests skip on a developer's machine, but fail under CI (ZOOSCOPE_CI=1, set by .ci/run),
#: where `make test` installs it: a report nobody looked at must not pass as a skip.
_REQUIRE_BROWSER = os.environ.get("ZOOSCOPE_CI") == "1"
needs_chromium = pytest.mark.skipif(_CHROMIUM is None and not _REQUIRE_BROWSER, reason="needs Debian's chromium")


@needs_chromium
def test_the_browser_checks_catch_errors_and_requests(tmp_path):
    """A page with a script error and an outside image trips both checks (so a clean result means something)."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/x.png"><script>nosuch();</script>')
    _, console, requests = _chromium(bad.as_uri(), tmp_path)
    assert "nosuch is not defined" in console and requests == ["http://127.0.0.1:9/x.png"]


@pytest.mark.slow
@needs_chromium
def test_report_renders_offline_with_every_figure_and_image(studied, tmp_path):
    repo, out = studied
    assert "report" in ran_stages(out)
    page = repo / "reports/index.html"
    html = page.read_text()
    assert not _EXTERNAL.search(html)
    dom, console, requests = _chromium(page.as_uri(), tmp_path)
    assert console == "" and requests == []
    sections = dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', dom, re.S))
    assert {sid: body.count("<svg") for sid, body in sections.items() if "<svg" in body} == _FIGURES
    assert len(re.findall(r'<svg[^>]*role="img"', dom)) == dom.count("<svg") == sum(_FIGURES.values())
    thumbs = re.findall(r'<img src="data:image/png;base64,([^"]+)"', dom)
    assert len(thumbs) == len(re.findall(r"<img", dom)) >= 3
    for data in thumbs:
        assert Image.open(io.BytesIO(base64.b64decode(data))).size == (72, 72)
    for word in ("kappa", "ensemble", "CKA", "mutual k-NN", "accuracy-matched", "Samples every model gets wrong",
                 "Consensus errors", "Prototypes and criticisms", "Adversarial transfer", "Adversarial examples",
                 "near misses", "Off the test set", "effective robustness", "What the corruptions do",
                 "Subgroups: worst groups, distillation, ensembles", "Worst group and worst class",
                 "No distilled model of the zoo"):
        assert word in dom
    # MMD-critic: for each of the 10 digit classes a row with each shown model's prototypes and criticisms: the
    # base, and the farthest of the two most distant categories present (architecture: mlp; framework: randfeat,
    # weak but alone in its category); the MMD ratio by pair category above it
    assert dom.count("prototype 1</div>") == dom.count("criticism 1<br>") == 30
    for head in ("cnn_a (base)", "mlp (architecture)", "randfeat (framework)"):
        assert f"<th>{head}</th>" in dom
    assert "MMD ratio to cnn_a" in dom and "pair category" in dom
    assert "Here k = 2, automatic for 10 classes" in dom
    # choosing a partner without labels: the answer in a sentence, with the held-out evaluation of metrics/study.json
    partners = json.loads((repo / "metrics/study.json").read_text())["partners"]["summary"]
    assert "Which partner should I add before I have labels?" in sections["partners"]
    assert (f"puts the best measured partner in its top 3 for {100 * partners['hit_rate']:.0f}% of the models, against "
            f"{100 * partners['chance']:.0f}% by chance") in sections["partners"]
    assert "with 3 partners a top 3 holds every partner (chance 100%)" in sections["partners"]
    # each section names its sources
    assert dom.count('class="src"') >= 8 and "artifacts/pairs.parquet" in dom and "metrics/study.json" in dom
    # the per-model table sorts
    assert 'class="sortable"' in dom and 'data-v="' in dom
    shot = _screenshot(page.as_uri(), tmp_path / "report.png", tmp_path)
    keep = os.environ.get("ZOOSCOPE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(tmp_path / "report.png", Path(keep) / "report.png")
    assert shot.size == (1400, 2400)
    colours = shot.convert("RGB").resize((140, 240)).getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50  # not a blank page


@pytest.mark.slow
@needs_chromium
def test_dvc_plots_show_renders_offline(studied, tmp_path):
    """`dvc plots show` writes its page from .dvc/plots/page.html, which carries vega itself: no script from outside,
    no request leaves the machine, and every plot of dvc.yaml is drawn."""
    work = tmp_path / "work"
    shutil.copytree(studied[0], work, symlinks=True)
    out = dvc(work, "plots", "show").stdout
    page = Path(re.search(r"file://(\S+\.html)", out).group(1))
    assert not _EXTERNAL.search(page.read_text())
    dom, console, requests = _chromium(page.as_uri(), tmp_path, "--virtual-time-budget=10000")
    assert requests == [] and "Error" not in console
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].values()
    plots = sum(len(stage.get("plots", [])) for stage in stages)  # plot outputs of the stages (7)
    assert plots >= 7 and len(re.findall(r'<canvas[^>]*class="marks"', dom)) == plots


@pytest.fixture(scope="module")
def report_data(studied):
    """The tiny study's report inputs, loaded as the report stage loads them."""
    from zooscope.config import load_study
    from zooscope.report import load_report_data

    repo, _ = studied
    return load_report_data(load_study(repo / "params.yaml"), model_metrics=repo / "metrics/models",
                            study_metrics=repo / "metrics/study.json", pairs=repo / "artifacts/pairs.parquet",
                            per_class=repo / "artifacts/pairs_per_class.parquet", predictions=repo / "artifacts/predictions",
                            mistakes=repo / "artifacts/mistakes", mistakes_metrics=repo / "metrics/mistakes.json")


@pytest.mark.slow
def test_another_module_adds_a_section(report_data):
    from zooscope.report import BUILDERS, Section, build_report

    def extra(data):
        return [Section("extra", "Extra <section>", ("artifacts/extra.parquet",), tag("p", f"{len(data.classes)} classes"))]

    html = build_report(report_data, builders=(*BUILDERS, extra))
    assert '<section id="extra"><h2>Extra &lt;section&gt;</h2>' in html and 'href="#extra"' in html
    assert "<code>artifacts/extra.parquet</code>" in html and "<p>10 classes</p>" in html
    with pytest.raises(ValueError, match="anchor 'extra'"):
        build_report(report_data, builders=(*BUILDERS, extra, extra))


@pytest.mark.slow
def test_a_script_tag_in_a_model_id_or_class_name_is_text(report_data):
    from zooscope.report import build_report

    data = report_data

    def rename(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.col(c).replace("cnn_b", EVIL) for c in ("model", "model_a", "model_b", "winner")
                                  if c in frame.columns)

    evil = dataclasses.replace(
        data, models=rename(data.models), pairs=rename(data.pairs), per_class=rename(data.per_class),
        study_metrics=json.loads(json.dumps(data.study_metrics).replace("cnn_b", EVIL)),
        predictions=dataclasses.replace(data.predictions, models=tuple(EVIL if m == "cnn_b" else m for m in data.predictions.models)),
        classes=(EVIL, '"><img src=x onerror=alert(2)>', *data.classes[2:]))
    html = build_report(evil)
    assert html.count("<script") == 1  # the page's own sorting script
    assert "<img src=x" not in html and "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert not re.findall(r'<img(?! src="data:image/png;base64,)', html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --------------------------------------------------------------------------- changes across commits


def _commit(repo: Path, message: str) -> None:
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", message], repo)


def _changed_model_files(repo: Path, a: str, b: str) -> set[str]:
    shown = json.loads(dvc(repo, "metrics", "diff", a, b, "--json").stdout)
    return {Path(f).stem for f in shown if f.startswith("metrics/models/")}


@pytest.mark.slow
def test_diffs_across_two_commits_show_exactly_the_changes(grown, tmp_path):
    work = tmp_path / "repo"  # the studied commit, and kd_a added and reproduced on top
    shutil.copytree(grown[0], work, symlinks=True)
    study = yaml.safe_load((work / "params.yaml").read_text())
    report = (work / "reports/index.html").read_text()
    assert "Changes since HEAD" in report and "<code>kd_a</code>" in report
    _commit(work, "add kd_a")
    study["models"]["cnn_b"]["train"] = {**study["models"]["cnn_b"]["train"], "lr": 0.02}
    write_study(work / "params.yaml", study)
    out = dvc(work, "repro").stdout
    assert {s for s in ran_stages(out) if "@" in s} == {f"{s}@cnn_b" for s in ("fetch", "embed", "probe", "predict",
                                                                                "shifted")}
    _commit(work, "cnn_b: another learning rate")

    # dvc metrics diff: the added model, then the changed one, and nothing else per model
    assert _changed_model_files(work, "HEAD~2", "HEAD~1") == {"kd_a"}
    assert _changed_model_files(work, "HEAD~1", "HEAD") == {"cnn_b"}
    per_category = json.loads(dvc(work, "metrics", "diff", "HEAD~1", "HEAD", "--json").stdout)
    assert "kappa" in per_category["metrics/categories/reinit.json"]

    # dvc plots diff: both revisions' heatmaps, differing only in the pairs of cnn_b
    plots = json.loads(dvc(work, "plots", "diff", "HEAD~1", "HEAD", "--json", "--split", "-o", str(tmp_path / "p")).stdout)
    heatmap = plots["data"]["plots/error_consistency_heatmap.csv"][0]
    assert heatmap["type"] == "vega" and set(heatmap["revisions"]) == {"HEAD~1", "HEAD"}
    rows = heatmap["anchor_definitions"]["<DVC_METRIC_DATA>"]
    by_rev = {rev: {(r["model_a"], r["model_b"]): r["value"] for r in rows if r["rev"] == rev} for rev in ("HEAD~1", "HEAD")}
    changed = {pair for pair, v in by_rev["HEAD"].items() if v != by_rev["HEAD~1"][pair]}
    assert changed and all("cnn_b" in pair for pair in changed)

    # zooscope diff: exactly those changes, in the terminal and in reports/diff.html
    added = _run([sys.executable, "-m", "zooscope.cli", "diff", "HEAD~2", "HEAD~1"], work).stdout
    assert re.search(r"^models added +kd_a$", added, re.M) and re.search(r"^models changed +\(none\)$", added, re.M)
    assert "per-model metrics: no changes" in added
    changed_out = _run([sys.executable, "-m", "zooscope.cli", "diff", "HEAD~1", "HEAD"], work).stdout
    assert re.search(r"^models added +\(none\)$", changed_out, re.M) and re.search(r"^models changed +cnn_b$", changed_out, re.M)
    models_listed = {line.split()[0] for line in changed_out.split("per-model metrics")[1].split("per category")[0].splitlines()[2:]
                     if line.strip()}
    assert models_listed == {"cnn_b"}
    page = (work / "reports/diff.html").read_text()
    assert "<code>cnn_b</code>" in page and not _EXTERNAL.search(page)


def test_the_footer_names_the_study_and_the_package_versions(tiny_study):
    """The provenance footer: a digest that changes with the study (and only with it) and the installed versions."""
    import copy
    from importlib import metadata

    from zooscope.config import parse_study
    from zooscope.report.provenance import provenance

    text = provenance(tiny_study)
    assert f"torch {metadata.version('torch')}" in text and f"polars {metadata.version('polars')}" in text
    assert text == provenance(parse_study(copy.deepcopy(TINY_STUDY)))
    other = copy.deepcopy(TINY_STUDY)
    other["ensemble"]["seed"] = 1
    assert text.split(" ")[1] != provenance(parse_study(other)).split(" ")[1]
    page = render_page("t", "s", [], footer=text)
    assert '<footer class="provenance">' in page and text.split(" (")[0] in page


@pytest.mark.slow
@needs_chromium
def test_subgroups_of_a_distilled_model_against_direct_counts(grown, digits, tmp_path):
    """The grown study (kd_a distilled from cnn_a on an imbalanced set): the ensemble stage's subgroup outputs equal
    counts made here from the predictions, and the report's subgroups section shows them in headless Chromium."""
    repo, _ = grown
    study = yaml.safe_load((repo / "params.yaml").read_text())
    groups = study["ensemble"]["class_groups"]
    preds = {m: pl.read_parquet(repo / f"artifacts/predictions/{m}/eval.parquet") for m in study["models"]}
    table = pl.read_parquet(repo / "artifacts/groups.parquet")
    sub = json.loads((repo / "metrics/study.json").read_text())["subgroups"]

    def acc(model: str, classes) -> float:
        p = preds[model].filter(pl.col("label").is_in(list(classes)))
        return float((p["pred"] == p["label"]).sum() / len(p))

    named = {**{name: classes for name, classes in groups.items()}, **{f"class {c}": [c] for c in range(10)}}
    got = {(r["model"], r["group"]): r for r in table.iter_rows(named=True)}
    assert len(got) == len(study["models"]) * len(named)
    for model in study["models"]:
        for name, classes in named.items():
            row = got[model, name]
            assert row["accuracy"] == pytest.approx(acc(model, classes)), (model, name)
            assert row["gap_to_base"] == pytest.approx(acc(model, classes) - acc("cnn_a", classes))
            assert row["support"] == preds[model]["label"].is_in(list(classes)).sum()
            assert row["acc_lo"] <= row["accuracy"] + 1e-9 and row["accuracy"] <= row["acc_hi"] + 1e-9
        for kind, names in (("group", list(groups)), ("class", [f"class {c}" for c in range(10)])):
            direct = {n: acc(model, named[n]) for n in names}
            worst = min(names, key=lambda n: (direct[n], names.index(n)))
            base_worst = min(acc("cnn_a", named[n]) for n in names)
            w = sub["worst_group"][model][kind]
            assert w["worst"] == worst and w["accuracy"] == pytest.approx(direct[worst])
            assert w["gap_to_base"] == pytest.approx(direct[worst] - base_worst)

    # the student against the teacher found by its spec (cnn_a), per group, and the groups harmed
    overall = {m: float((p["pred"] == p["label"]).mean()) for m, p in preds.items()}
    kd = sub["distillation"]["kd_a"]
    assert list(sub["distillation"]) == ["kd_a"] and kd["teacher"] == "cnn_a"
    assert kd["overall_vs_teacher"] == pytest.approx(overall["kd_a"] - overall["cnn_a"])
    harmed = {n for n in named if overall["kd_a"] > overall["cnn_a"] and acc("kd_a", named[n]) < acc("cnn_a", named[n])}
    assert {h["group"] for h in kd["harmed"]} == harmed
    for name in named:
        row = got["kd_a", name]
        assert row["teacher"] == "cnn_a" and row["vs_teacher"] == pytest.approx(acc("kd_a", named[name]) - acc("cnn_a", named[name]))
        assert row["harmed_by_distillation"] == (name in harmed)
    assert table.filter(pl.col("model") != "kd_a")["teacher"].null_count() == (len(study["models"]) - 1) * len(named)

    # the imbalanced training set: a tenth of class 3's training samples (rounded, at least one), the rest whole
    card = json.loads((repo / "artifacts/models/kd_a/card.json").read_text())
    train = digits.labels[digits.split("train")]
    rare = int((train == 3).sum())
    assert card["training"]["train_samples"] == len(train) - rare + max(1, round(0.1 * rare))
    assert card["training"]["teacher"]["train_samples"] == len(train)

    # pairs whose ensemble is below its better member on a group: as pairs_per_group.parquet says
    per_group = pl.read_parquet(repo / "artifacts/pairs_per_group.parquet")
    hurt = sub["ensembles_hurt_groups"]
    assert hurt["rows"] == int((per_group["ens_vs_better"] < 0).sum()) and hurt["of"] == len(per_group)

    # the plot's data: one cell per model and group, the gap to the base
    plot = pl.read_csv(repo / "plots/subgroup_gap.csv")
    assert len(plot) == len(table)
    assert plot["value"].to_list() == pytest.approx(table["gap_to_base"].to_list())

    # in the browser: the section, its figure, and the distilled model's rows
    dom, console, requests = _chromium((repo / "reports/index.html").as_uri(), tmp_path)
    assert console == "" and requests == []
    sections = dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', dom, re.S))
    body = sections["subgroups"]
    assert body.count("<svg") == 1 and "plots/subgroup_gap.csv" in body and "artifacts/groups.parquet" in body
    assert "kd_a (distilled from cnn_a)" in body and body.count("<td>kd_a</td>") >= len(named)
    assert "Worst group and worst class of each model" in body
