"""probe@<model>: a multinomial linear probe on the embedding (L2 strength chosen on the calibration
split) and cosine k-NN accuracy (FAISS). Writes ``<out>/<id>/probe.json``, the probe's weights
``<out>/<id>/probe.safetensors`` (mean, scale, weight, bias: the mistakes stage attacks headless models
through them), and the probe's logits ``<out>/calibration_logits.npy`` and ``<out>/eval_logits.npy``
(float32 [n, C]; the predictions of headless models)."""

from __future__ import annotations

import sys
from pathlib import Path

from zooscope.stagecli import load, model_id, model_parser, run


def work(args) -> None:
    from zooscope.artifacts import PROBE_SUMMARY, PROBE_WEIGHTS, load_embeddings, logits_file
    from zooscope.data.datasets import SPLITS, load_dataset
    from zooscope.io import write_json, write_npy
    from zooscope.models import probe_embeddings, save_probe

    mid = model_id(args)
    study, _ = load(args.params, mid)
    dataset = load_dataset(study.dataset)
    y = {s: dataset.labels[dataset.split(s)] for s in SPLITS}
    x = load_embeddings(Path(args.embeddings) / mid, rows={s: len(v) for s, v in y.items()})
    got = probe_embeddings(x, y, num_classes=dataset.num_classes, settings=study.probe)
    out = Path(args.out) / mid
    save_probe(out / PROBE_WEIGHTS, got.probe)
    for split, logits in got.logits.items():
        write_npy(logits_file(out, split), logits)
    write_json(out / PROBE_SUMMARY, got.summary)
    s = got.summary
    print(f"probe@{mid}: probe {s['probe_acc']:.4f} (l2 {s['l2']:g}), {s['knn_k']}-NN {s['knn_acc']:.4f}")


def main(argv=None) -> int:
    p = model_parser(__doc__)
    p.add_argument("--embeddings", required=True, help="folder of the zoo's embeddings (<id>/<split>.npy)")
    p.add_argument("--out", required=True, help="folder of the zoo's probes (<out>/<id>/ is written)")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
