"""ensemble: agreement of errors and two-model ensembles of every pair, the per-category headline tables
and the finding. Writes ``--pairs`` (parquet, one row per pair, with the similarity stage's columns),
``--per-class`` (parquet, per pair and class: which member wins, where the ensemble is worse than the
better member), ``--per-group`` (parquet, the same per group of ``ensemble.class_groups``), ``--groups``
(parquet, per model and group of classes or single class: accuracy, the gap to the base, a distilled model
against its teacher), ``--study`` (JSON, the results in full: per-category tables over all, accuracy-matched
and strong pairs with bootstrap intervals, best partners, the greedy ensemble, partner choice without labels, the
findings, the subgroups), ``--category-metrics`` (the DVC metrics: ``<category>.json`` per methodology category,
flat: pairs, kappa and gain with both intervals) and the data of five DVC plots.
Per-pair results are kept in ``--cache`` between runs, so only pairs whose predictions changed are
computed. The finding is the last line printed."""

from __future__ import annotations

import sys
from pathlib import Path

from zooscope.stagecli import load, parser, run

PLOTS = ("kappa_by_category", "gain_vs_kappa", "greedy_curve", "partner_gain", "subgroup_gap")


def work(args) -> None:
    import polars as pl

    from zooscope.ensemble import category_metrics, ensemble_tables
    from zooscope.io import write_csv, write_json, write_parquet

    study, _ = load(args.params)
    got = ensemble_tables(study, models=args.models, predictions=args.predictions,
                          similarity=pl.read_parquet(args.similarity), cache=args.cache, progress=not args.no_progress)
    write_parquet(args.pairs, got.pairs)
    write_parquet(args.per_class, got.per_class)
    write_parquet(args.per_group, got.per_group)
    write_parquet(args.groups, got.groups)
    write_json(args.study, got.metrics)
    for category, metrics in category_metrics(got.metrics["categories"]).items():
        write_json(Path(args.category_metrics) / f"{category}.json", metrics)
    for name in PLOTS:
        write_csv(getattr(args, f"{name}_plot"), got.plots[name])
    print(f"ensemble: {len(got.pairs)} pairs, {got.computed} computed (the rest cached)")
    print(got.categories)
    for sentence in got.metrics["headline"]:
        print(sentence)
    partners = got.metrics["partners"]
    summary = partners["summary"]
    rho = "undefined" if summary["spearman_mean"] is None else f"{summary['spearman_mean']:+.2f}"
    print(f"partners without labels, each model left out: mean Spearman {rho} over {summary['spearman_models']} models, "
          f"best partner in the predicted top {partners['top_k']} for {summary['hit_rate']:.0%} "
          f"(chance {summary['chance']:.0%})")
    print(got.metrics["finding"])


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--models", required=True, help="folder of <id>/card.json")
    p.add_argument("--predictions", required=True, help="folder of <id>/eval.parquet and <id>/eval_probs.npy")
    p.add_argument("--similarity", required=True, help="the similarity stage's per-pair table (parquet)")
    p.add_argument("--cache", required=True, help="folder of the per-pair cache (kept between runs)")
    p.add_argument("--pairs", required=True, help="per-pair table (parquet)")
    p.add_argument("--per-class", required=True, help="per pair and class table (parquet)")
    p.add_argument("--per-group", required=True, help="per pair and group of classes table (parquet)")
    p.add_argument("--groups", required=True, help="per model and group of classes, or class, table (parquet)")
    p.add_argument("--study", required=True, help="the study's results in full (JSON)")
    p.add_argument("--category-metrics", required=True, help="folder of <category>.json, the DVC metrics per category")
    for name in PLOTS:
        p.add_argument(f"--{name.replace('_', '-')}-plot", required=True, help=f"{name} plot data (CSV)")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
