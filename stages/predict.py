"""predict@<model>: temperature-scaled predictions on the eval split, from the model's head or, for
headless models, its probe. Writes ``<out>/eval.parquet`` (sample_id, label, pred, correct, true_prob,
top5), ``<out>/eval_probs.npy`` (float32 [n, C]) and the metrics file (top1, top5, nll, ece,
temperature, probe_acc, knn_acc)."""

from __future__ import annotations

import sys
from pathlib import Path

from stages._common import load, model_parser, run


def work(args) -> None:
    import numpy as np

    from zooscope.artifacts import PREDICTIONS, PROBS, logits_file, read_card, read_probe_summary
    from zooscope.data.datasets import load_dataset
    from zooscope.io import write_json, write_npy, write_parquet
    from zooscope.models import predict_eval

    study, _ = load(args.params, args.model)
    dataset = load_dataset(study.dataset)
    card, probe = read_card(args.model_dir), read_probe_summary(args.probe)
    where = args.embeddings if card["has_head"] else args.probe
    pos = dataset.split("eval")
    got = predict_eval(np.load(logits_file(where, "calibration")), dataset.labels[dataset.split("calibration")],
                       np.load(logits_file(where, "eval")), dataset.labels[pos], dataset.sample_ids[pos],
                       ece_bins=study.predict.ece_bins, extra={k: probe[k] for k in ("probe_acc", "knn_acc")})
    write_parquet(Path(args.out) / PREDICTIONS, got.table)
    write_npy(Path(args.out) / PROBS, got.probs)
    write_json(args.metrics, got.metrics)
    m = got.metrics
    print(f"predict@{args.model}: top1 {m['top1']:.4f}, nll {m['nll']:.4f}, ece {m['ece']:.4f}, T {m['temperature']:.3f}")


def main(argv=None) -> int:
    p = model_parser(__doc__)
    p.add_argument("--model-dir", required=True, help="folder with card.json")
    p.add_argument("--embeddings", required=True, help="embeddings folder (head logits)")
    p.add_argument("--probe", required=True, help="probe folder (probe.json, probe logits)")
    p.add_argument("--out", required=True, help="predictions folder")
    p.add_argument("--metrics", required=True, help="metrics JSON file (a DVC metric)")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
