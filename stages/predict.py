"""predict@<model>: temperature-scaled predictions on the calibration and eval splits, from the model's head
or, for headless models, its probe. Writes ``<out>/eval.parquet`` (sample_id, label, pred, correct, true_prob,
top5), ``<out>/eval_probs.npy`` (float32 [n, C]), the same for calibration (``calibration.parquet``,
``calibration_probs.npy``: ensembles and partners are chosen on them) and the metrics file (eval: top1, top5,
nll, ece, temperature, probe_acc, knn_acc)."""

from __future__ import annotations

import sys
from pathlib import Path

from stages._common import load, model_parser, run


def work(args) -> None:
    import numpy as np

    from zooscope.artifacts import logits_file, prediction_files, read_card, read_probe_summary
    from zooscope.data.datasets import load_dataset
    from zooscope.io import write_json, write_npy, write_parquet
    from zooscope.models import predict_splits

    study, _ = load(args.params, args.model)
    dataset = load_dataset(study.dataset)
    card, probe = read_card(args.model_dir), read_probe_summary(args.probe)
    where = args.embeddings if card["has_head"] else args.probe
    splits = ("calibration", "eval")
    pos = {s: dataset.split(s) for s in splits}
    got = predict_splits({s: np.load(logits_file(where, s)) for s in splits}, {s: dataset.labels[p] for s, p in pos.items()},
                         {s: dataset.sample_ids[p] for s, p in pos.items()}, ece_bins=study.predict.ece_bins,
                         extra={k: probe[k] for k in ("probe_acc", "knn_acc")})
    for split, predictions in got.splits.items():
        table, probs = prediction_files(args.out, split)
        write_parquet(table, predictions.table)
        write_npy(probs, predictions.probs)
    write_json(args.metrics, got.metrics)
    m = got.metrics
    if m["temperature_at_bound"]:
        print(f"predict@{args.model}: warning: the temperature {m['temperature']:.3f} sits on its search bound, so the "
              "probabilities are not calibrated; the model's logits are degenerate (near-constant or huge)")
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
