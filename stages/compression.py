"""compression: every compressed model (recipe:prune, recipe:quantize) against its parent in the zoo
(docs/science.md section 10). Writes ``--table`` (parquet, one row per compressed model: sparsity counted from its
weights, accuracy and its difference from the parent's with a 95% interval over images, kappa and churn with the
parent, the flips, accuracy and churn on the corrupted sets, effective robustness, the group and class it loses most
on), ``--metrics`` (JSON: the rows and the finding) and ``--plot`` (CSV: each statistic against sparsity, the parent
at 0). A zoo without compressed models gets empty ones. The finding is the last line printed."""

from __future__ import annotations

import sys

from zooscope.stagecli import load, parser, run


def work(args) -> None:
    import polars as pl

    from zooscope.compression import compression_tables
    from zooscope.io import read_json, write_csv, write_json, write_parquet

    study, _ = load(args.params)
    got = compression_tables(study, models=args.models, predictions=args.predictions, shift=read_json(args.shift),
                             shifted=args.shifted, groups=pl.read_parquet(args.groups))
    write_parquet(args.table, got.table)
    write_json(args.metrics, got.metrics)
    write_csv(args.plot, got.plot)
    if len(got.table):
        print(f"  {'model':<24} {'parent':<16} {'sparsity':>8} {'top1':>7} {'delta':>7} {'kappa':>6} {'churn':>6}")
        for r in got.table.iter_rows(named=True):
            print(f"  {r['model']:<24} {r['parent']:<16} {r['sparsity']:8.3f} {r['top1']:7.4f} {r['top1_delta']:+7.4f} "
                  f"{r['kappa']:6.3f} {r['churn']:6.3f}")
    for mid in got.metrics["rebuilt_parent_differs"]:
        print(f"compression: warning: {mid}'s parent, rebuilt in fetch@{mid}, has other weights than the zoo's "
              "(another machine or library version trained it): its churn includes that difference")
    print(got.metrics["finding"])


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--models", required=True, help="folder of <id>/card.json and weights.safetensors")
    p.add_argument("--predictions", required=True, help="the predict stage's folder (<id>/eval.parquet)")
    p.add_argument("--shift", required=True, help="the shift stage's metrics (metrics/shift.json)")
    p.add_argument("--shifted", required=True, help="the shifted stage's folder (<id>/<set>.npy)")
    p.add_argument("--groups", required=True, help="accuracy per model and group (artifacts/groups.parquet)")
    p.add_argument("--table", required=True, help="one row per compressed model (parquet)")
    p.add_argument("--metrics", required=True, help="the rows and the finding (JSON)")
    p.add_argument("--plot", required=True, help="each statistic against sparsity (CSV)")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
