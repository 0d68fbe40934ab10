"""Report sections about mistakes and biases (docs/science.md section 7), from the mistakes stage's outputs:
the mistake taxonomy, consensus errors explained by their nearest training samples, MMD-critic
prototypes and criticisms, adversarial robustness, the transfer matrix beside the error-consistency
heatmap, and adversarial examples with what the zoo predicts on them.

The builders use ``data.mistakes`` (the stage's tables and ``metrics/mistakes.json``, read by
:mod:`zooscope.report.data`); without it, or without thumbnails for the image sections, they add nothing.
The data functions here (:func:`consensus_rows`, :func:`critic_picks`, :func:`transfer_view`) shape those
tables for the sections: plain rows, ids and arrays, no HTML.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from zooscope.artifacts import ADVERSARIAL_IMAGES, pair_matrix
from zooscope.config import trained_apart
from zooscope.mistakes.taxonomy import MANY_CLASSES
from zooscope.report import figures
from zooscope.report.data import MistakesData, ReportData, model_order
from zooscope.report.page import Column, Html, Section, join, table, tag
from zooscope.report.pair_sections import image_thumb, thumb
from zooscope.report.study_sections import num, pct
from zooscope.vocab import CATEGORIES, group_rank

__all__ = ["mistake_sections", "critic_models", "consensus_rows", "critic_picks", "transfer_view"]


def consensus_rows(consensus: pl.DataFrame, models: list[str], *, top: int = 24) -> list[dict]:
    """The ``top`` consensus errors, best first, with the zoo's votes and their explanation by example.

    Args:
        consensus: the mistakes stage's ``consensus`` table; models: the ids of the models that voted, in study
            order (the order of each row's votes: :func:`zooscope.config.trained_apart`).

    Returns:
        rows ``{rank, sample_id, label, consensus_pred, share, confidence, votes: {model: predicted class},
        neighbour_ids, neighbour_labels, neighbour_sim}`` (neighbours: nearest training samples in the strongest
        model's embedding; empty beyond the stage's ``show``).
    """
    rows = consensus.head(top).to_dicts()
    for r in rows:
        if len(r["votes"]) != len(models):
            raise ValueError(f"consensus votes hold {len(r['votes'])} models but {len(models)} ids were given")
        r["votes"] = dict(zip(models, r["votes"]))
    return rows


def critic_picks(prototypes: pl.DataFrame, *, models: list[str] | None = None) -> dict[str, dict[int, dict]]:
    """MMD-critic picks of the ``prototypes`` table: ``{model: {class: {"prototypes": [sample ids], "criticisms":
    [sample ids], "witness": [criticisms' witness values]}}}``, in pick order; ``models`` limits and orders the
    models."""
    ids = models if models is not None else list(dict.fromkeys(prototypes["model"].to_list()))
    out: dict[str, dict[int, dict]] = {}
    for mid in ids:
        sub = prototypes.filter(pl.col("model") == mid).sort("class", "kind", "rank")
        out[mid] = {}
        for c in sorted(set(sub["class"].to_list())):
            cls = sub.filter(pl.col("class") == c)
            crit = cls.filter(pl.col("kind") == "criticism")
            out[mid][c] = {"prototypes": cls.filter(pl.col("kind") == "prototype")["sample_id"].to_list(),
                           "criticisms": crit["sample_id"].to_list(), "witness": crit["witness"].to_list()}
    return out


def transfer_view(transfer: pl.DataFrame, correlation: dict | None = None) -> dict:
    """The adversarial transfer matrix and the error-consistency matrix of the same pairs.

    Returns:
        ``{models, transfer: float [M, M] (transfer rate from the source row to the target column; nan diagonal),
        kappa: float [M, M] (nan diagonal), attack, eps, correlation: {pearson, spearman, n, pearson_partial,
        spearman_partial} of the transfer rate with kappa (when given)}``.
    """
    models = list(dict.fromkeys(transfer["source"].to_list()))
    view = {name: pair_matrix(transfer, models, name, rows="source", cols="target", symmetric=False)
            for name in ("transfer_rate", "kappa")}
    out = {"models": models, "transfer": view["transfer_rate"], "kappa": view["kappa"], "attack": transfer["attack"][0],
           "eps": transfer["eps"][0]}
    if correlation is not None:
        out["correlation"] = correlation
    return out


def _taxonomy(data: ReportData, mis: MistakesData) -> Section:
    metrics = mis.metrics
    tax = mis.tables["taxonomy"]
    cfg = data.study.mistakes
    robust_acc = {}
    if mis.attacks:
        robust = mis.tables["robustness"]
        at = robust.filter((pl.col("attack") == cfg.transfer_attack) & (pl.col("eps") == cfg.transfer_eps))
        robust_acc = dict(at.select("model", "accuracy").rows())
    rows = [r | {"error": (r["near_miss"] + r["far_miss"]) / r["n"], "near_share": r["near_miss"] / max(1, r["near_miss"] + r["far_miss"]),
                 "robust": robust_acc.get(r["model"])} for r in tax.to_dicts()]
    k = metrics["near_miss_k"]
    columns = (Column("model", "model"), Column("error", "top-1 error %", pct, True),
               Column("near_miss", "near misses", str, True, f"wrong, but the label is in the top {k}"),
               Column("far_miss", "far misses", str, True, f"the label is not in the top {k}"),
               Column("near_share", "near-miss share %", pct, True, "near misses among the errors"))
    if mis.attacks:
        columns += (Column("robust", f"{cfg.transfer_attack.upper()} ε={cfg.transfer_eps:g} acc %", pct, True,
                           f"accuracy under the attack on {metrics['attack_subset']} eval samples"),)
    why = ("as declared (mistakes.near_miss_k)" if cfg.near_miss_k is not None else
           f"automatic for {len(data.classes)} classes: 5 from {MANY_CLASSES} classes on, as Stock & Cisse's top 5 of "
           "ImageNet's 1,000, and 2 below, the model's second choice (a top 5 of 10 classes would hold half of them)")
    body = join([tag("ul", join(tag("li", f) for f in metrics["findings"]), class_="findings"),
                 tag("div", table(rows, columns, sortable=True), class_="scroll")])
    return Section("mistake-taxonomy", "Mistakes: taxonomy and robustness" if mis.attacks else "Mistakes: taxonomy",
                   (*mis.source("taxonomy", *(("robustness",) if mis.attacks else ())), mis.metrics_path),
                   body, f"Stock & Cisse (2018): many errors are near misses (the label is among the model's top k), "
                         f"which top-1 accuracy counts like any other mistake. Here k = {k}, {why}.")


def _consensus(data: ReportData, mis: MistakesData) -> Section:
    metrics, cls = mis.metrics, data.classes
    rows = consensus_rows(mis.tables["consensus"], trained_apart(data.study.models), top=data.study.report.thumbnails)
    cfg = data.study.mistakes
    parts = []
    if not rows:
        parts.append(tag("p", f"No eval sample has {cfg.consensus_share:.0%} of the zoo agreeing on one wrong class.",
                         class_="note"))
    else:
        def caption(r: dict) -> list[str]:
            return [f"label {cls[r['label']]}", f"zoo: {cls[r['consensus_pred']]} ({r['share']:.0%})"]
        parts.append(tag("div", join(thumb(data, r["sample_id"], caption(r)) for r in rows), class_="thumbs"))
        explained = [r for r in rows if r["neighbour_ids"]][:4]
        if explained:
            parts.append(tag("h3", f"Explanation by example: the nearest training samples in {metrics['strongest']}'s "
                                   "embedding"))
            for r in explained:
                nb = [thumb(data, i, [f"train: {cls[lab]}", f"cos {s:.2f}"])
                      for i, lab, s in zip(r["neighbour_ids"], r["neighbour_labels"], r["neighbour_sim"])]
                votes = ", ".join(f"{mid}: {cls[p]}" for mid, p in r["votes"].items())
                parts.append(tag("div", thumb(data, r["sample_id"], [f"#{r['rank']} label {cls[r['label']]}",
                                                                     f"zoo: {cls[r['consensus_pred']]}"]),
                                 Html('<span class="arrow">→</span>'), join(nb), class_="thumbs explain", title=votes))
    n = metrics["eval_samples"]
    return Section("consensus-errors", "Consensus errors", (*mis.source("consensus"), *data.source("dataset")),
                   join(parts), f"{metrics['consensus_errors']} of {n:,} eval samples have at least "
                                f"{cfg.consensus_share:.0%} of the zoo predicting the same wrong class: candidate label "
                                f"errors or genuinely ambiguous images. Shown: the {len(rows)} most confident, each with "
                                "its label and the zoo's answer.")


def critic_models(overlap: pl.DataFrame, models: pl.DataFrame, *, base: str, others: int = 2) -> list[str]:
    """The models whose MMD-critic picks the report shows side by side: the base and ``others`` models of the
    most distant methodology categories present (dataset, then framework, ...), one per category while categories
    last; within a category the model whose prototypes lie farthest from the base's (mean MMD ratio over classes), a
    model flagged weak only when its category has no other. Compressed models (no methodology category) are not
    chosen.

    Args:
        overlap: the mistakes stage's ``prototype_overlap`` table (class, model_a, model_b, ratio).
        models: one row per model with its ``category`` relative to the base and ``weak`` flag.

    Returns:
        the base, then the chosen models in category order (reinit ... dataset).
    """
    far = dict(_to_base(overlap, base).group_by("model").agg(pl.col("ratio").mean()).rows())
    rows = [r for r in models.select("model", "category", "weak").rows() if r[0] != base and r[1] in CATEGORIES]
    ranked = sorted(rows, key=lambda r: (-group_rank(r[1]), r[2], -(far.get(r[0]) or 0.0), r[0]))
    firsts = [r for i, r in enumerate(ranked) if i == 0 or ranked[i - 1][1] != r[1]]
    picks = (firsts + [r for r in ranked if r not in firsts])[:others]
    return [base, *(r[0] for r in sorted(picks, key=lambda r: (group_rank(r[1]), r[0])))]


def _to_base(overlap: pl.DataFrame, base: str) -> pl.DataFrame:
    """The ``overlap`` rows of pairs with the base: {class, model (the other one), ratio (null where undefined)}."""
    return overlap.filter((pl.col("model_a") == base) | (pl.col("model_b") == base)).select(
        "class", model=pl.when(pl.col("model_a") == base).then(pl.col("model_b")).otherwise(pl.col("model_a")),
        ratio=pl.col("ratio").fill_nan(None))


def _by_category(overlap: pl.DataFrame, pairs: pl.DataFrame) -> list[dict]:
    """Per pair category: {category, pairs, mean, low, high} of the pairs' MMD ratios (each the mean over classes)."""
    per_pair = overlap.group_by("model_a", "model_b").agg(pl.col("ratio").fill_nan(None).mean()).join(
        pairs.select("model_a", "model_b", "category"), on=["model_a", "model_b"])
    rows = per_pair.group_by("category").agg(pairs=pl.len(), mean=pl.col("ratio").mean(), low=pl.col("ratio").min(),
                                             high=pl.col("ratio").max()).to_dicts()
    return sorted(rows, key=lambda r: group_rank(r["category"]))


#: Thumbnails per model and class in the report: the first prototypes and criticisms picked (the stage keeps more,
#: which the MMD ratio uses).
_SHOWN_PROTOTYPES, _SHOWN_CRITICISMS = 4, 2


def _criticism(data: ReportData, mis: MistakesData) -> Section:
    cls, overlap, base = data.classes, mis.tables["prototype_overlap"], data.study.base
    category = data.category_of
    models = critic_models(overlap, data.models, base=base)
    picks = critic_picks(mis.tables["prototypes"], models=models)
    to_base = {(c, m): v for c, m, v in _to_base(overlap, base).rows()}
    rows = []
    for c in sorted({c for m in models for c in picks[m]}):
        cells = []
        for m in models:
            got = picks[m].get(c, {"prototypes": [], "criticisms": [], "witness": []})
            thumbs = [thumb(data, s, [f"prototype {i + 1}"])
                      for i, s in enumerate(got["prototypes"][:_SHOWN_PROTOTYPES])]
            thumbs += [thumb(data, s, [f"criticism {i + 1}", f"w {w:+.3f}"]) for i, (s, w) in
                       enumerate(zip(got["criticisms"][:_SHOWN_CRITICISMS], got["witness"]))]
            ratio = to_base.get((c, m))
            note = tag("div", f"MMD ratio to {base}: {ratio:.2f}", class_="note") if ratio is not None else Html("")
            cells.append(tag("td", tag("div", join(thumbs), class_="thumbs"), note))
        rows.append(tag("tr", tag("th", cls[c]), join(cells), class_="first"))
    head = join(tag("th", h) for h in ("class", *(f"{m} ({category[m]})" for m in models)))
    grid = tag("table", tag("thead", tag("tr", head)), tag("tbody", join(rows)), class_="critic")
    summary = table(_by_category(overlap, data.pairs), (
        Column("category", "pair category"), Column("pairs", "pairs", str, True),
        Column("mean", "MMD ratio, mean", num, True, "mean over the pairs of each pair's mean over classes"),
        Column("low", "lowest pair", num, True), Column("high", "highest pair", num, True)))
    note = (f"Shown: {', '.join(models)}: the base and, from the most distant categories present, the model whose "
            f"prototypes lie farthest from the base's; per class its first {_SHOWN_PROTOTYPES} prototypes (the "
            f"samples that summarise the class in the model's eval embedding) and first {_SHOWN_CRITICISMS} criticisms "
            "(the samples those prototypes explain worst, largest |witness| w). Two models' prototypes of a class are "
            f"compared by their MMD² in {base}'s eval embedding divided by its expectation for two random draws of as "
            "many samples of the class (the MMD ratio): 0 means the same prototypes, 1 no more alike than random "
            "samples.")
    return Section("prototypes-criticisms", "Prototypes and criticisms (MMD-critic)",
                   (*mis.source("prototypes", "prototype_overlap"), *data.source("pairs", "dataset")),
                   join([tag("p", note), summary, tag("div", grid, class_="scroll")]),
                   "Kim, Khanna & Koyejo (2016), as used by Stock & Cisse (2018) to reveal what a model sees as typical "
                   "and atypical of each class: do models trained another way see the same typical images?")


def _transfer(data: ReportData, mis: MistakesData) -> Section:
    got = transfer_view(mis.tables["transfer"], mis.metrics["transfer_kappa"])
    order = [mid for mid in model_order(data.models) if mid in got["models"]]
    idx = [got["models"].index(mid) for mid in order]
    group_of = [data.category_of[m] for m in order]
    transfer, kappa = got["transfer"][np.ix_(idx, idx)], got["kappa"][np.ix_(idx, idx)]
    attack = f"{got['attack'].upper()} ε={got['eps']:g}"
    t_scale = figures.Scale.spanning(transfer, label="transfer rate: brighter = more of the source's examples also "
                                                     "fool the target", cmap="magma")
    t_fig = figures.heatmap(transfer, order, group_of, scale=t_scale)
    category = {frozenset(ab): c for *ab, c in data.pairs.select("model_a", "model_b", "category").rows()}
    off = [(i, j) for i in range(len(order)) for j in range(len(order)) if i != j]
    k_fig = figures.category_scatter(np.array([kappa[i, j] for i, j in off]), np.array([transfer[i, j] for i, j in off]),
                                     [category[frozenset((order[i], order[j]))] for i, j in off],
                                     xlabel="error consistency (kappa) on clean eval data", ylabel="transfer rate")
    corr = got.get("correlation") or {}
    rho, partial = corr.get("spearman"), corr.get("spearman_partial")
    held = f", {partial:+.2f} with both models' accuracies held fixed" if partial is not None else ""
    text = (f"Spearman rho {rho:+.2f} between the transfer rate and kappa over {corr.get('n')} ordered pairs{held}: "
            "positive means attacks transfer more between models that make the same mistakes. The transfer rate of a "
            "pair: among the samples both models get right when clean and whose adversarial version fools the "
            "source, the share that also fools the target."
            if rho is not None else "Too few pairs to relate transfer to error consistency.")
    body = join([tag("p", text), tag("div",
                 tag("figure", t_fig, tag("figcaption", f"Adversarial transfer rate ({attack}, L∞ on [0, 1] pixels), "
                                                        "from the source (row) to the target (column).")),
                 tag("figure", k_fig, tag("figcaption", "The transfer rate of every ordered pair against the pair's "
                                                        "error consistency, coloured by category.")),
                 class_="figs" if len(order) <= 10 else "stack")])
    return Section("adversarial-transfer", "Adversarial transfer and error consistency",
                   (*mis.source("transfer"), mis.metrics_path), body,
                   "Do adversarial examples fool the models that share the source's mistakes?")


def _robustness(data: ReportData, mis: MistakesData) -> Section:
    """Accuracy under attack against the budget, one panel per attack, one line per model."""
    robust = mis.tables["robustness"]
    panels = {}
    for attack in sorted(set(robust["attack"].to_list())):
        sub = robust.filter(pl.col("attack") == attack).sort("eps")
        panels[attack.upper()] = {m: (frame["eps"].to_numpy(), 100 * frame["accuracy"].to_numpy())
                                  for (m,), frame in sub.group_by(["model"], maintain_order=True)}
    fig = figures.line_panels(panels, group_of=data.category_of, xlabel="ε (L∞ on [0, 1] pixels)",
                              ylabel="accuracy under attack (%)")
    eps = ", ".join(f"{e:g}" for e in data.study.mistakes.eps)
    return Section("robustness", "Robustness against the attack budget", mis.source("robustness"),
                   tag("figure", fig, tag("figcaption", f"Accuracy of every model on {mis.metrics['attack_subset']} "
                                                        f"attacked eval samples at ε = 0 and {eps}, coloured by "
                                                        "category.")),
                   "White-box FGSM and PGD against each model (Stock & Cisse 2018).")


def _image(pixels: np.ndarray):
    """float [C, H, W] in [0, 1] -> a PIL image."""
    from PIL import Image

    arr = (np.clip(pixels, 0.0, 1.0) * 255).round().astype(np.uint8)
    return Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))


def _adversarial(data: ReportData, mis: MistakesData) -> Section:
    metrics, cls = mis.metrics, data.classes
    rows, images = mis.tables["adversarial"].to_dicts(), mis.adversarial_images
    models = list(data.study.models)
    parts = []
    for r, img in zip(rows[:8], images):
        fooled = sum(v != r["label"] for v in r["votes"])
        adv = image_thumb(_image(img), f"adversarial version of sample {r['sample_id']}",
                          [f"adversarial: {cls[r['adv_pred']]}", f"fools {fooled}/{len(models)} models"])
        nb = [thumb(data, i, [f"train: {cls[lab]}"]) for i, lab in zip(r["adv_neighbour_ids"][:4], r["adv_neighbour_labels"][:4])]
        votes = ", ".join(f"{mid}: {cls[v]}" for mid, v in zip(models, r["votes"]))
        parts.append(tag("div", thumb(data, r["sample_id"], [f"clean: {cls[r['clean_pred']]}", f"label {cls[r['label']]}"]),
                         adv, Html('<span class="arrow">→</span>'), join(nb), class_="thumbs explain", title=votes))
    if not parts:
        parts.append(tag("p", "The attack fooled the strongest model on none of the attacked samples.", class_="note"))
    source = rows[0]["source"] if rows else metrics["strongest"]
    eps = rows[0]["eps"] if rows else data.study.mistakes.transfer_eps
    return Section("adversarial-examples", "Adversarial examples, explained by example",
                   (*mis.source("adversarial"), f"{mis.folder}/{ADVERSARIAL_IMAGES}", *data.source("dataset")),
                   join(parts), f"Examples crafted on {source} (ε={eps:g}) that fool it: the clean image, the adversarial "
                                f"one with {source}'s new answer and how many models it fools, and the adversarial "
                                f"image's nearest training samples in {source}'s embedding (hover for every model's "
                                "prediction).")


def _no_attacks(data: ReportData, mis: MistakesData) -> Section:
    """What stands where the attack sections would: the study turned the attacks off."""
    return Section("robustness", "Robustness and adversarial transfer: not measured", (mis.metrics_path,),
                   tag("p", "This study sets mistakes.attacks to false: the mistakes stage ran no FGSM or PGD attack, so "
                            "there is no accuracy under attack, no transfer matrix and no adversarial example (the stage "
                            "wrote no robustness, transfer or adversarial files). Set it to true (the default) to measure "
                            "them.", class_="note"),
                   "White-box FGSM and PGD against each model and their transfer (Stock & Cisse 2018).")


def mistake_sections(data: ReportData) -> list[Section]:
    """The mistakes sections (nothing when the report was built without the mistakes stage's outputs; without the
    attacks, one note in place of the robustness, transfer and adversarial-example sections)."""
    mis = data.mistakes
    if mis is None:
        return []
    if not mis.attacks:
        sections = [_taxonomy(data, mis), _no_attacks(data, mis)]
        if data.images is not None:
            sections[1:1] = [_consensus(data, mis), _criticism(data, mis)]
        return sections
    sections = [_taxonomy(data, mis), _robustness(data, mis), _transfer(data, mis)]
    if data.images is not None:
        sections[2:2] = [_consensus(data, mis), _criticism(data, mis)]
        sections.append(_adversarial(data, mis))
    return sections
