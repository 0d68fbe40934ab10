"""Report section on choosing a partner without labels: the ensemble gain predicted from label-free features by a fit
without the model's pairs, against the measured gain, and how well that ranking picks each model's best partner
(``metrics/study.json``'s ``partners``; docs/science.md section 3)."""

from __future__ import annotations

from zooscope.ensemble.partners import ordered_partners
from zooscope.report import figures
from zooscope.report.data import ReportData
from zooscope.report.page import Column, Section, join, table, tag

__all__ = ["partners_section"]

#: How the section names each label-free feature.
_FEATURE_NAMES = {"disagreement": "top-1 disagreement", "top5_overlap": "top-5 overlap", "cka_debiased": "debiased CKA",
                  "mutual_knn": "mutual k-NN", "confidence_gap": "confidence gap", "confidence_min": "lower confidence"}


def _rho(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def _defined(value: float | None) -> float:
    """A mean Spearman for comparisons: an undefined one (None) below every defined one, 0.0 a number like any."""
    return -2.0 if value is None else value


def _share(value: float) -> str:
    return f"{100 * value:.0f}%"


def partners_section(data: ReportData) -> list[Section]:
    """The held-out predicted gain against the measured one (one point per model and partner), the sentence that
    answers "which partner should I add before I have labels?", the ranking's quality per model and the baselines."""
    results = data.study_metrics.get("partners")
    if results is None or "predicted_gain_a" not in data.pairs.columns:
        return []
    rows = ordered_partners(data.pairs)
    summary, k, n = results["summary"], results["top_k"], results["summary"]["models"]
    scatter = figures.category_scatter(100 * rows["predicted_gain"].to_numpy(), 100 * rows["gain"].to_numpy(),
                                       rows["category"].to_list(), xlabel="gain predicted without labels (points)",
                                       ylabel="measured ensemble gain (points)", hline=0.0)
    baselines = sorted(results["baselines"].items(), key=lambda kv: -_defined(kv[1]["spearman_mean"]))
    best_feature, best = baselines[0]
    answer = (f"Which partner should I add before I have labels? Rank the candidates by the gain predicted from "
              f"label-free features (top-1 disagreement, top-5 overlap, CKA, mutual k-NN, the two confidences). With "
              f"each of the {n} models left out in turn (the fit never sees its pairs), that ranking has a mean "
              f"Spearman of {_rho(summary['spearman_mean'])} with the measured gains ({summary['spearman_models']} "
              f"models where it is defined) and puts the best measured partner in its top {k} for "
              f"{_share(summary['hit_rate'])} of the models, against {_share(summary['chance'])} by chance. The best "
              f"single feature, {_FEATURE_NAMES[best_feature]}, has a mean Spearman of {_rho(best['spearman_mean'])} "
              f"and a hit rate of {_share(best['hit_rate'])}: on this zoo the fitted prediction orders partners "
              f"{'better than' if _defined(summary['spearman_mean']) > _defined(best['spearman_mean']) else 'no better than'} "
              "that feature alone.")
    note = (f"These numbers speak for these {n} models on these eval images: {n} held-out rankings of "
            f"{n - 1} partners each, whose fits share most of their pairs, so they are not independent"
            + (f"; with {n - 1} partners a top {k} holds every partner (chance 100%)." if n - 1 <= k else ".")
            + " The features read the eval images' outputs and embeddings, no eval label; the measured gain is "
              "the pair ensemble's on eval.")
    per_model = [{"model": m, "predicted": r["predicted_order"][0] if r["predicted_order"] else None,
                  "best": ", ".join(r["best"]), "rank": r["best_rank"], "spearman": r["spearman"],
                  "hit": "yes" if r["hit"] else "no"} for m, r in results["models"].items()]
    columns = [Column("model", "model"), Column("predicted", "predicted best partner"),
               Column("best", "best measured partner"),
               Column("rank", "its predicted rank", str, True), Column("spearman", "Spearman", _rho, True),
               Column("hit", f"in the predicted top {k}")]
    compare = [{"ranking": "predicted gain (each model left out)", **summary}] + [
        {"ranking": f"{_FEATURE_NAMES[f]} alone ({'larger' if results['directions'][f] > 0 else 'smaller'} first)", **b}
        for f, b in baselines]
    compare_columns = [Column("ranking", "ranking of each model's partners"),
                       Column("spearman_mean", "mean Spearman", _rho, True),
                       Column("hit_rate", f"best partner in the top {k}", _share, True),
                       Column("chance", "by chance", _share, True)]
    body = join([tag("p", answer), tag("figure", scatter, tag(
        "figcaption", f"One point per model and partner: the pair's gain as predicted for that model by the ridge fit "
                      f"on the pairs without it, against the gain its ensemble measured (pooled Spearman "
                      f"{_rho(summary['spearman_pooled'])}).")),
        tag("div", table(compare, compare_columns), class_="scroll"),
        tag("div", table(per_model, columns, sortable=True), class_="scroll"),
        tag("p", note, class_="note")])
    return [Section("partners", "Choosing a partner without labels", data.source("pairs", "study_metrics"), body,
                    "The ensemble gain of a pair predicted from quantities that need no labels, judged by leaving "
                    "each model out.")]
