"""Report sections about pairs of models: the heatmaps of error consistency and representation
similarity, the per-class specialisation of the most complementary pair, and the eval images behind
the numbers (where that pair disagrees, and what every model gets wrong)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from zooscope.report import figures
from zooscope.artifacts import pair_matrix
from zooscope.ensemble.partners import spearman
from zooscope.report.data import ReportData, model_order
from zooscope.report.page import Column, Html, Section, join, png_img, table, tag

__all__ = ["heatmap_sections", "pairs_section", "complementary_section", "consensus_errors_section", "most_complementary",
           "thumb", "image_thumb"]

_THUMB_PX = 72


#: What the colour of each per-pair quantity shows, and its colour map: one scale per quantity on the page.
_SCALES = {"kappa": ("error consistency (kappa): brighter = more of the same mistakes", "magma"),
           "cka_debiased": ("debiased linear CKA: brighter = more similar representations", "viridis"),
           "mutual_knn": ("mutual k-NN alignment: brighter = more shared neighbours", "viridis")}


def _pair_scale(data: ReportData, column: str) -> figures.Scale:
    """The colour scale of a per-pair quantity, spanning its values over every pair of the study (so each heatmap of
    the page that shows it uses the same colours)."""
    label, cmap = _SCALES[column]
    return figures.Scale.spanning(data.pairs[column].to_numpy(), label=label, cmap=cmap)


def heatmap_sections(data: ReportData) -> list[Section]:
    order = model_order(data.models)
    group_of = [data.category_of[m] for m in order]

    def draw(column: str) -> Html:
        return figures.heatmap(pair_matrix(data.pairs, order, column), order, group_of, scale=_pair_scale(data, column))

    order_note = ("Rows and columns are ordered by each model's category relative to the base model "
                  f"({data.study.base} first, then reinit, hyperparameters, architecture, framework, dataset); white lines "
                  "separate the groups; the diagonal (a model with itself) is grey. The colour spans the values of the "
                  "pairs, not 0 to 1.")
    errors = Section("error-consistency", "Error consistency of every pair", data.source("pairs"),
                     tag("figure", draw("kappa"), tag("figcaption", "Cohen's kappa of the two models' correct/incorrect "
                                                                    "indicators (1: the same mistakes; 0: as related as "
                                                                    "chance). " + order_note)))
    kappa, cka = data.pairs["kappa"].to_numpy(), data.pairs["cka_debiased"].to_numpy()
    scatter = figures.category_scatter(cka, kappa, data.pairs["category"].to_list(), xlabel="debiased linear CKA",
                                       ylabel="error consistency (kappa)")
    ok = np.isfinite(kappa) & np.isfinite(cka)
    rho = spearman(cka[ok], kappa[ok]) if ok.sum() >= 3 else float("nan")
    similarity = Section("similarity", "Representation similarity (CKA and mutual k-NN)", data.source("pairs"), join([tag(
        "div", tag("figure", draw("cka_debiased"), tag("figcaption", "Debiased linear CKA of the eval embeddings "
                                                                     "(Kornblith et al. 2019).")),
        tag("figure", draw("mutual_knn"), tag("figcaption", f"Mutual k-NN alignment (Huh et al. 2024, "
                                                            f"k={data.study.similarity.knn_k}): the share of nearest "
                                                            "neighbours two embeddings have in common. " + order_note)),
        class_="figs" if len(order) <= 10 else "stack"),  # a larger zoo: one heatmap per row, so names stay legible
        tag("figure", scatter, tag("figcaption", f"Does representation similarity predict error consistency? One point "
                                                 f"per pair, coloured by category; Spearman rho {rho:+.2f} over "
                                                 f"{int(ok.sum())} pairs (grey: least-squares line)."))]))
    return [errors, similarity, *_overlap_section(data)]


def _overlap_section(data: ReportData) -> list[Section]:
    """The concatenated-probe gains and the feature-mix curves (docs/science.md, overlapping features)."""
    rows = data.pairs.drop_nulls("concat_probe_acc") if "concat_probe_acc" in data.pairs.columns else data.pairs.clear()
    if not len(rows):
        return []
    best = np.maximum(rows["probe_acc_a"].to_numpy(), rows["probe_acc_b"].to_numpy())
    names = [f"{a} + {b}" for a, b in rows.select("model_a", "model_b").rows()]
    gain = 100 * rows["concat_gain"].to_numpy()
    scatter = figures.category_scatter(rows["cka_debiased"].to_numpy(), gain, rows["category"].to_list(),
                                       xlabel="debiased linear CKA", ylabel="concatenated probe minus the better probe (points)",
                                       names=names, labelled=[int(np.argmax(gain))], hline=0.0)
    parts = [tag("figure", scatter, tag("figcaption", f"{len(rows)} pairs: a linear probe on both embeddings side by side "
                                                      "against the better single probe (labelled: the largest gain). "
                                                      f"Mean gain {gain.mean():+.2f} points; better single probe "
                                                      f"{100 * best.mean():.2f}% on average."))]
    if data.mixes is not None and len(data.mixes):
        lines = {}
        group_of = {}
        for (a, b, cat), frame in data.mixes.group_by(["model_a", "model_b", "category"], maintain_order=True):
            frame = frame.sort("share_a")
            lines[f"{a} + {b}"] = (frame["share_a"].to_numpy(), 100 * frame["probe_acc"].to_numpy())
            group_of[f"{a} + {b}"] = cat
        dims = ", ".join(str(d) for d in data.mixes["dim"].unique().sort().to_list())
        fig = figures.line_panels({"probe on a fixed budget of features": lines}, group_of=group_of,
                                  xlabel="share of the features taken from the first model", ylabel="probe accuracy (%)")
        parts.append(tag("figure", fig, tag("figcaption", f"Feature mixes: a probe on {dims} features, a share from the "
                                                          "first model and the rest from the second ("
                                                          + "; ".join(lines) + "). A mix above both ends means "
                                                          "neither model's features contain the other's.")))
    return [Section("overlap", "Overlapping features: concatenated probes and feature mixes",
                    data.source("pairs", *(["mixes"] if data.mixes is not None else [])), tag("div", join(parts), class_="figs"),
                    "Do two models' embeddings hold information the other lacks? A probe on both at once, and on a "
                    "fixed budget split between them.")]


def most_complementary(data: ReportData) -> dict:
    """The pair whose ensemble gains most over its better member on the calibration split (ties: the lower kappa);
    the report shows its eval numbers."""
    rows = data.pairs.sort(["cal_gain", "kappa"], descending=[True, False], maintain_order=True)
    return rows.row(0, named=True)


def image_thumb(image, alt: str, lines: Sequence[str]) -> Html:
    """A PIL image as a thumbnail with caption ``lines`` (also its tooltip)."""
    image = image.resize((_THUMB_PX, _THUMB_PX), resample=0)
    return tag("div", png_img(image, alt=f"{alt}: " + "; ".join(lines), title="\n".join(lines)),
               join([join(lines[:1]), *(join([Html("<br>"), line]) for line in lines[1:])]), class_="thumb")


def thumb(data: ReportData, sample_id: int, lines: Sequence[str]) -> Html:
    """The thumbnail of a dataset sample (any split) with caption ``lines``."""
    return image_thumb(data.images(sample_id), f"sample {sample_id}", lines)


def _grid(data: ReportData, idx: np.ndarray, caption) -> Html:
    ids = data.predictions.sample_ids
    return tag("div", join(thumb(data, int(ids[i]), caption(int(i))) for i in idx), class_="thumbs")


def _spread(idx: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` of ``idx``, evenly spread over it (deterministic)."""
    if len(idx) <= k:
        return idx
    return idx[np.linspace(0, len(idx) - 1, k).round().astype(int)]


def complementary_section(data: ReportData) -> list[Section]:
    pair = most_complementary(data)
    a, b = pair["model_a"], pair["model_b"]
    rows = data.per_class.filter((data.per_class["model_a"] == a) & (data.per_class["model_b"] == b)).sort("class")
    classes = [data.classes[c] for c in rows["class"].to_list()]
    fig = figures.specialisation(classes, rows["acc_a"].to_numpy(), rows["acc_b"].to_numpy(), rows["acc_ens"].to_numpy(),
                                 name_a=a, name_b=b)
    wins = {m: [data.classes[c] for c, w in rows.select("class", "winner").rows() if w == m] for m in (a, b)}
    text = (f"{a} and {b} ({pair['category']} pair): kappa {pair['kappa']:.3f}, accuracies {100 * pair['acc_a']:.2f}% and "
            f"{100 * pair['acc_b']:.2f}%, ensemble {100 * pair['ens_acc']:.2f}% (gain {100 * pair['gain']:+.2f} points, "
            f"95% CI [{100 * pair['gain_lo']:+.2f}, {100 * pair['gain_hi']:+.2f}]). {a} is better on "
            f"{len(wins[a])} classes, {b} on {len(wins[b])}.")
    parts = [tag("p", text), tag("figure", fig, tag("figcaption", "Per-class accuracy of the two members and their ensemble."))]
    groups = data.per_group.filter((pl.col("model_a") == a) & (pl.col("model_b") == b)) if data.per_group is not None else None
    if groups is not None and len(groups):
        cols = [Column("group", "group of classes"), Column("support", "samples", str, True),
                Column("acc_a", f"{a} %", lambda v: f"{100 * v:.2f}", True),
                Column("acc_b", f"{b} %", lambda v: f"{100 * v:.2f}", True),
                Column("acc_ens", "ensemble %", lambda v: f"{100 * v:.2f}", True), Column("winner", "better member")]
        parts.append(tag("div", table(groups.to_dicts(), cols), class_="scroll"))
    sources = data.source("pairs", "per_class")
    if data.images is not None:
        models = list(data.predictions.models)
        pred, labels = data.predictions.pred, data.predictions.labels
        ia, ib = models.index(a), models.index(b)
        right_a, right_b = pred[ia] == labels, pred[ib] == labels
        k = data.study.report.thumbnails // 2
        cls = data.classes

        def caption(i: int) -> list[str]:
            return [f"label {cls[labels[i]]}", f"{a}: {cls[pred[ia, i]]}", f"{b}: {cls[pred[ib, i]]}"]

        for who, mask in ((a, right_a & ~right_b), (b, right_b & ~right_a)):
            idx = np.flatnonzero(mask)
            parts += [tag("h3", f"Only {who} is right ({len(idx)} samples; {min(k, len(idx))} shown)"),
                      _grid(data, _spread(idx, k), caption)]
        sources += data.source("predictions", "dataset")
    return [Section("complementary", "The most complementary pair", sources, join(parts),
                    "The pair whose ensemble gains most over its better member, chosen on the calibration split and "
                    "shown on eval: where each member is right alone.")]


def consensus_errors_section(data: ReportData) -> list[Section]:
    """The eval samples every model gets wrong. With the mistakes stage's consensus errors (most of the zoo agreeing on
    one wrong class, shown in their own section), only the others: every model wrong and in disagreement, the most
    disagreement first (hard or ambiguous images rather than candidate label errors)."""
    if data.images is None:
        return []
    pred, labels, cls = data.predictions.pred, data.predictions.labels, data.classes
    wrong = np.flatnonzero((pred != labels).all(0))
    k = data.study.report.thumbnails
    agreement = np.array([np.unique(pred[:, i], return_counts=True)[1].max() for i in wrong], dtype=np.int64)

    def caption(i: int) -> list[str]:
        values, counts = np.unique(pred[:, i], return_counts=True)
        return [f"label {cls[labels[i]]}", f"most say {cls[values[counts.argmax()]]} ({counts.max()}/{len(pred)})",
                f"{len(values)} different answers"]

    n, total = len(labels), len(wrong)
    if data.mistakes is not None:
        consensus = np.isin(data.predictions.sample_ids[wrong], data.mistakes.tables["consensus"]["sample_id"].to_numpy())
        wrong, agreement = wrong[~consensus], agreement[~consensus]
        ranked = wrong[np.argsort(agreement, kind="stable")][:k]  # the most disagreement first
        what = (f"{total} of {n:,} eval samples ({100 * total / n:.2f}%) are misclassified by all {len(pred)} models; "
                f"{len(wrong)} of them are not consensus errors (the zoo disagrees on the answer). Shown: up to {k} of "
                "those, the most disagreement first.")
        sources = (*data.source("predictions", "dataset"), *data.mistakes.source("consensus"))
    else:  # the most agreed-upon mistakes first: candidate label errors or genuinely ambiguous images
        ranked = wrong[np.argsort(-agreement, kind="stable")][:k]
        what = (f"{total} of {n:,} eval samples ({100 * total / n:.2f}%) are misclassified by all {len(pred)} models; "
                f"shown: up to {k}, those where the most models agree on the wrong class first.")
        sources = data.source("predictions", "dataset")
    body = (_grid(data, ranked, caption) if len(ranked)
            else tag("p", "No such eval sample.", class_="note"))
    return [Section("all-wrong", "Samples every model gets wrong", sources, body, what)]


#: A larger zoo's pair table lists the pairs whose ensembles gain most on calibration, up to this many.
_PAIR_ROWS = 500


def _num3(value: float) -> str:
    return f"{value:.3f}"


def _degrees(value: float) -> str:
    return f"{np.degrees(value):.1f}°"


_PAIR_COLUMNS = (
    Column("pair", "pair"), Column("category", "category"),
    Column("kappa", "kappa", _num3, True), Column("kappa_min", "min", _num3, True, "lowest kappa the two accuracies allow"),
    Column("kappa_max", "max", _num3, True, "highest kappa the two accuracies allow"),
    Column("kappa_ratio", "κ/κmax", _num3, True), Column("kappa_position", "position", _num3, True,
                                                          "where kappa sits between its min (0) and max (1)"),
    Column("gain", "gain (pts)", lambda v: f"{100 * v:+.2f}", True, "ensemble minus the better member, eval"),
    Column("cka_debiased", "CKA", _num3, True, "debiased linear CKA"),
    Column("cka_debiased_null", "CKA null", _num3, True, "mean over shuffled sample orders"),
    Column("cka_debiased_corrected", "CKA − null", _num3, True),
    Column("mutual_knn", "k-NN", _num3, True, "mutual k-NN alignment"),
    Column("mutual_knn_null", "k-NN null", _num3, True), Column("mutual_knn_corrected", "k-NN − null", _num3, True),
    Column("theta_mean", "θ", _degrees, True, "mean angle atan2(p_a(y), p_b(y)): 45° = equal confidence in the label"),
)


def pairs_section(data: ReportData) -> list[Section]:
    """Every pair's numbers that the headline averages: kappa in its feasible range, the similarity scores with
    their permutation nulls, and the specialisation angle."""
    rows = data.pairs.sort("cal_gain", descending=True, maintain_order=True).head(_PAIR_ROWS)
    shown = [r | {"pair": f"{r['model_a']} + {r['model_b']}"} for r in rows.iter_rows(named=True)]
    note = ("" if len(data.pairs) <= _PAIR_ROWS
            else f" Shown: the {_PAIR_ROWS} of {len(data.pairs)} pairs whose ensembles gain most on calibration.")
    return [Section("pairs", "Every pair", data.source("pairs"),
                    tag("div", table(shown, _PAIR_COLUMNS, sortable=True), class_="scroll tall"),
                    "Kappa with the range its two accuracies allow, representation similarity against its permutation "
                    "null, and the specialisation angle. Click a column header to sort." + note)]
