"""ensemble: agreement of errors and two-model ensembles of every pair, the per-category headline tables
and the finding. Writes ``--pairs`` (parquet, one row per pair, with the similarity stage's columns),
``--per-class`` (parquet, per pair and class: which member wins, where the ensemble is worse than the
better member), ``--metrics`` (JSON: per-category tables over all and accuracy-matched pairs with
bootstrap intervals, best partners, the greedy ensemble, the finding) and the data of three DVC plots.
Per-pair results are kept in ``--cache`` between runs, so only pairs whose predictions changed are
computed. The finding is the last line printed."""

from __future__ import annotations

import sys
from pathlib import Path

from stages._common import load, parser, run


def work(args) -> None:
    import numpy as np
    import polars as pl

    from zooscope.agreement import greedy_ensemble
    from zooscope.ensemble_table import ensemble_keys, ensemble_rows, ensemble_table
    from zooscope.headline import category_tables, format_categories, pairs_table, plot_frames, study_metrics
    from zooscope.io import write_csv, write_json, write_parquet
    from zooscope.paircache import cached_pairs
    from zooscope.zooartifacts import read_cards, read_predictions, unordered_pairs

    study, _ = load(args.params)
    settings, ids = study.ensemble, list(study.models)
    pairs = unordered_pairs(ids)
    preds = read_predictions(args.predictions, ids)
    boot = {"n_boot": settings.n_boot, "seed": settings.seed}
    rows, computed = cached_pairs(Path(args.cache) / "ensemble.parquet", ensemble_keys(preds, pairs, **boot),
                                  lambda todo: ensemble_rows(preds, todo, **boot), desc="pair ensembles",
                                  progress=not args.no_progress)
    table = ensemble_table(preds, read_cards(args.models, ids), pairs, rows, matched_band=settings.matched_band, **boot)
    frame = pairs_table(table.frame, pl.read_parquet(args.similarity))
    greedy = greedy_ensemble(lambda m: np.load(preds.probs[m], mmap_mode="r"), preds.labels,
                             max_size=min(settings.greedy_max_size, len(ids)), n_models=len(ids))
    tables = category_tables(frame, table.draws)
    metrics = study_metrics(frame, table.draws, tables, table.per_class, greedy, ids, matched_band=settings.matched_band,
                            n_boot=settings.n_boot, strongest=settings.strongest)
    write_parquet(args.pairs, frame)
    write_parquet(args.per_class, table.per_class)
    write_json(args.metrics, metrics)
    for name, data in plot_frames(frame, tables, greedy, ids).items():
        write_csv(getattr(args, f"{name}_plot"), data)
    print(f"ensemble: {len(pairs)} pairs, {computed} computed (the rest cached)")
    print(format_categories(tables))
    print(metrics["finding"])


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--models", required=True, help="folder of <id>/card.json")
    p.add_argument("--predictions", required=True, help="folder of <id>/eval.parquet and <id>/eval_probs.npy")
    p.add_argument("--similarity", required=True, help="the similarity stage's per-pair table (parquet)")
    p.add_argument("--cache", required=True, help="folder of the per-pair cache (kept between runs)")
    p.add_argument("--pairs", required=True, help="per-pair table (parquet)")
    p.add_argument("--per-class", required=True, help="per pair and class table (parquet)")
    p.add_argument("--metrics", required=True, help="study metrics (JSON, a DVC metric)")
    for name in ("kappa_by_category", "gain_vs_kappa", "greedy_curve"):
        p.add_argument(f"--{name.replace('_', '-')}-plot", required=True, help=f"{name} plot data (CSV)")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
