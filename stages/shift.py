"""shift: the zoo on the shifted sets against the same eval images clean (docs/science.md section 9). Writes
``--table`` (parquet, per model and set: top1, nll, ece, effective robustness), ``--pairs`` (parquet, per pair and
set: category, kappa, ensemble gain; ``mean`` is the mean over the shifted sets), ``--examples`` (uint8, the first
eval images clean and under each set, for the report), ``--samples`` (parquet: the corrupted eval samples'
ids and labels, in the order of every set's rows), ``--metrics`` (JSON: mean corruption errors relative to the
base, effective robustness, the zoo's probit line per set, category means, the finding) and the data of two DVC
plots. The finding is the last line printed."""

from __future__ import annotations

import sys

from zooscope.stagecli import load, parser, run

PLOTS = ("shift_accuracy", "shift_kappa")


def work(args) -> None:
    from zooscope.data.datasets import load_dataset
    from zooscope.io import write_csv, write_json, write_npy, write_parquet
    from zooscope.shift import shift_tables

    study, _ = load(args.params)
    got = shift_tables(study, load_dataset(study.dataset), models=args.models, predictions=args.predictions,
                       shifted=args.shifted)
    write_parquet(args.table, got.models)
    write_parquet(args.pairs, got.pairs)
    write_npy(args.examples, got.examples)
    write_parquet(args.samples, got.samples)
    write_json(args.metrics, got.metrics)
    for name in PLOTS:
        write_csv(getattr(args, f"{name}_plot"), got.plots[name])
    models, corrupted, folders = got.metrics["models"], got.metrics["corrupted_sets"], got.metrics["folder_sets"]
    if corrupted:
        print(f"shift: {len(corrupted)} corrupted sets of {got.metrics['samples']} eval images")
        print(f"  {'model':<24} {'clean':>7} {'shifted':>8} {'mCE':>6} {'rel mCE':>8} {'eff rob':>8}")
        for mid, m in models.items():
            print(f"  {mid:<24} {m['clean_top1']:7.4f} {m['mean_top1']:8.4f} {_num(m['mce']):>6} "
                  f"{_num(m['relative_mce']):>8} {_num(m['effective_robustness'], signed=True):>8}")
    for name in folders:
        print(f"shift: the folder {name} ({got.metrics['folders'][name]['images']} images), against the eval split")
        for mid, m in models.items():
            f = m["folders"][name]
            print(f"  {mid:<24} {m['eval_top1']:7.4f} {f['top1']:8.4f} {_num(f['effective_robustness'], signed=True):>8}")
    print(got.metrics["finding"])


def _num(value, *, signed: bool = False) -> str:
    return "-" if value is None else (f"{value:+.4f}" if signed else f"{value:.3f}")


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--models", required=True, help="folder of <id>/card.json")
    p.add_argument("--predictions", required=True, help="the predict stage's folder (<id>/eval_probs.npy)")
    p.add_argument("--shifted", required=True, help="the shifted stage's folder (<id>/<set>.npy)")
    p.add_argument("--table", required=True, help="per model and set (parquet)")
    p.add_argument("--pairs", required=True, help="per pair and set (parquet)")
    p.add_argument("--examples", required=True, help="the first eval images under each set (npy)")
    p.add_argument("--samples", required=True, help="the eval samples the sets corrupt: sample_id, label (parquet)")
    p.add_argument("--metrics", required=True, help="the results in full (JSON)")
    for name in PLOTS:
        p.add_argument(f"--{name.replace('_', '-')}-plot", required=True, help=f"{name} plot data (CSV)")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
