"""predict@<model>: temperature-scaled predictions on the calibration and eval splits, from the model's head
or, for headless models, its probe. Writes ``<out>/eval.parquet`` (sample_id, label, pred, correct, true_prob,
top5), ``<out>/eval_probs.npy`` (float32 [n, C]), the same for calibration (``calibration.parquet``,
``calibration_probs.npy``: ensembles and partners are chosen on them) and the metrics file (eval: top1, top5,
nll, ece, temperature, probe_acc, knn_acc)."""

from __future__ import annotations

import sys
from pathlib import Path

from zooscope.stagecli import load, model_id, model_parser, run


def work(args) -> None:
    import numpy as np

    from zooscope.artifacts import logits_file, model_metrics_file, prediction_files, read_card, read_probe_summary
    from zooscope.data.datasets import load_dataset
    from zooscope.io import write_json, write_npy, write_parquet
    from zooscope.models import predict_splits
    from zooscope.models.calibration import at_bound

    mid = model_id(args)
    study, _ = load(args.params, mid)
    dataset = load_dataset(study.dataset)
    card, probe = read_card(Path(args.models) / mid), read_probe_summary(Path(args.probes) / mid)
    where = Path(args.embeddings if card["has_head"] else args.probes) / mid
    splits = ("calibration", "eval")
    pos = {s: dataset.split(s) for s in splits}
    got = predict_splits({s: np.load(logits_file(where, s)) for s in splits}, {s: dataset.labels[p] for s, p in pos.items()},
                         {s: dataset.sample_ids[p] for s, p in pos.items()}, ece_bins=study.predict.ece_bins,
                         extra={k: probe[k] for k in ("probe_acc", "knn_acc")})
    for split, predictions in got.splits.items():
        table, probs = prediction_files(Path(args.out) / mid, split)
        write_parquet(table, predictions.table)
        write_npy(probs, predictions.probs)
    write_json(model_metrics_file(args.metrics, mid), got.metrics)
    m = got.metrics
    if m["temperature"] is not None and at_bound(m["temperature"]):
        print(f"predict@{mid}: warning: the temperature {m['temperature']:.3f} sits on its search bound, so the "
              "probabilities are not calibrated; the model's logits are degenerate (near-constant or huge)")
    if m["temperature"] is None:
        print(f"predict@{mid}: warning: every sample's logits are equal across classes, so no temperature changes the "
              "probabilities (uniform); the temperature is written as missing")
    temperature = "missing" if m["temperature"] is None else f"{m['temperature']:.3f}"
    print(f"predict@{mid}: top1 {m['top1']:.4f}, nll {m['nll']:.4f}, ece {m['ece']:.4f}, T {temperature}")


def main(argv=None) -> int:
    p = model_parser(__doc__)
    p.add_argument("--models", required=True, help="folder of <id>/card.json")
    p.add_argument("--embeddings", required=True, help="folder of <id>/<split>_logits.npy (head logits)")
    p.add_argument("--probes", required=True, help="folder of <id>/probe.json and probe logits")
    p.add_argument("--out", required=True, help="folder of the zoo's predictions (<out>/<id>/ is written)")
    p.add_argument("--metrics", required=True, help="folder of per-model metrics (<metrics>/<id>.json, a DVC metric)")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
