"""similarity: representation similarity and overlapping features of every pair of models. Writes
``--out`` (parquet, one row per pair: linear and debiased CKA and mutual k-NN with permutation nulls,
each model's probe accuracy, the concatenated-probe accuracy), ``--mixes`` (parquet, the subsampled-mix
curves) and ``--heatmap`` (CSV, CKA of every ordered pair: a DVC plot). Per-pair results are kept in
``--cache`` between runs, so only pairs whose embeddings changed are computed."""

from __future__ import annotations

import sys

from zooscope.stagecli import load, parser, run


def work(args) -> None:
    from zooscope.artifacts import read_cards
    from zooscope.data.datasets import SPLITS, load_dataset
    from zooscope.io import write_csv, write_parquet
    from zooscope.similarity import cka_heatmap, similarity_tables

    study, _ = load(args.params)
    ids = list(study.models)
    dataset = load_dataset(study.dataset)
    tables = similarity_tables(study, read_cards(args.models, ids), embeddings=args.embeddings, probes=args.probes,
                               cache=args.cache, labels={s: dataset.labels[dataset.split(s)] for s in SPLITS},
                               num_classes=dataset.num_classes, progress=not args.no_progress)
    write_parquet(args.out, tables.frame)
    write_parquet(args.mixes, tables.mixes)
    write_csv(args.heatmap, cka_heatmap(tables.frame, ids))
    c = tables.computed
    print(f"similarity: {len(tables.frame)} pairs, {c['similarity']} computed (the rest cached); concatenated probes "
          f"{tables.frame['concat_probe_acc'].is_not_null().sum()}, {c['concat']} computed; mix curves "
          f"{tables.mixes.select('model_a', 'model_b').n_unique()}, {c['mix']} computed")


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--models", required=True, help="folder of <id>/card.json")
    p.add_argument("--embeddings", required=True, help="folder of <id>/{train,calibration,eval}.npy")
    p.add_argument("--probes", required=True, help="folder of <id>/probe.json")
    p.add_argument("--cache", required=True, help="folder of the per-pair caches (kept between runs)")
    p.add_argument("--out", required=True, help="per-pair similarity table (parquet)")
    p.add_argument("--mixes", required=True, help="subsampled-mix curves (parquet)")
    p.add_argument("--heatmap", required=True, help="CKA heatmap data (CSV, a DVC plot)")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
