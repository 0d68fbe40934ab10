"""report: the study report. Writes ``--out`` (reports/index.html: one self-contained page with the
summary, the per-model and per-category tables, the figures and eval-image thumbnails, each section
naming the artifacts it comes from, the mistakes sections when ``--mistakes`` is given, the shift section when
``--shift-metrics`` is given, the compression section when ``--compression`` is given, and what changed since the ``report.compare_to`` commit) and the
data of two DVC plots: ``--kappa-heatmap`` (error consistency of every ordered pair) and
``--knn-heatmap`` (mutual k-NN alignment), rows in the report's order (by category vs the base)."""

from __future__ import annotations

import sys
import time

from zooscope.stagecli import load, parser, run


def work(args) -> None:
    from zooscope.diff import compare_with
    from zooscope.io import atomic_path, write_csv
    from zooscope.report import build_report, load_report_data
    from zooscope.report.data import heatmap_frame, load_shift, model_order

    start = time.perf_counter()
    study, _ = load(args.params)
    data = load_report_data(study, model_metrics=args.model_metrics, study_metrics=args.study_metrics, pairs=args.pairs,
                            per_class=args.per_class, predictions=args.predictions,
                            thumbnails=study.report.thumbnails > 0, changes=compare_with(".", study.report.compare_to),
                            mistakes=args.mistakes, mistakes_metrics=args.mistakes_metrics, per_group=args.per_group,
                            mixes=args.feature_mixes, groups=args.groups, subgroup_plot=args.subgroup_plot,
                            shift=load_shift(args.shift_table, args.shift_metrics, args.shift_examples)
                            if args.shift_metrics else None,
                            compression=args.compression, compression_metrics=args.compression_metrics)
    page = build_report(data)
    with atomic_path(args.out, suffix=".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    order = model_order(data.models)
    write_csv(args.kappa_heatmap, heatmap_frame(data.pairs, order, "kappa"))
    write_csv(args.knn_heatmap, heatmap_frame(data.pairs, order, "mutual_knn"))
    print(f"report: {args.out} ({len(page) / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s")


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--model-metrics", required=True, help="folder of <id>.json per-model metrics")
    p.add_argument("--study-metrics", required=True, help="the ensemble stage's metrics/study.json")
    p.add_argument("--pairs", required=True, help="the per-pair table (parquet)")
    p.add_argument("--per-class", required=True, help="the per pair and class table (parquet)")
    p.add_argument("--per-group", help="the per pair and group of classes table (parquet, optional)")
    p.add_argument("--groups", help="the per model and group of classes table (parquet, optional: the subgroups "
                                    "section)")
    p.add_argument("--subgroup-plot", help="the data file of the subgroups figure, as the section cites it (optional)")
    p.add_argument("--feature-mixes", help="the similarity stage's feature-mix table (parquet, optional)")
    p.add_argument("--predictions", required=True, help="folder of <id>/eval.parquet")
    p.add_argument("--mistakes", help="the mistakes stage's folder (optional: adds the mistakes sections)")
    p.add_argument("--mistakes-metrics", help="the mistakes stage's metrics/mistakes.json (with --mistakes)")
    p.add_argument("--shift-metrics", help="the shift stage's metrics/shift.json (optional: adds the shift section)")
    p.add_argument("--shift-table", help="the shift stage's per-model table (with --shift-metrics)")
    p.add_argument("--shift-examples", help="the shift stage's example images (with --shift-metrics)")
    p.add_argument("--compression", help="the compression stage's table (parquet, optional: the compression section)")
    p.add_argument("--compression-metrics", help="the compression stage's metrics/compression.json (with --compression)")
    p.add_argument("--out", required=True, help="the report (HTML)")
    p.add_argument("--kappa-heatmap", required=True, help="error-consistency heatmap data (CSV, a DVC plot)")
    p.add_argument("--knn-heatmap", required=True, help="mutual k-NN heatmap data (CSV, a DVC plot)")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
