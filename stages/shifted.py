"""shifted@<model>: the model on every shifted set of ``shift`` (params.yaml): the eval images (or a seeded subset
of them, ``shift.eval_size``) corrupted, then fed through the model's own preprocessing and network, its head's
logits or, for a headless model, its probe's. Writes ``<out>/<id>/<set>.npy`` (float32 [n, C], probabilities scaled
by the model's clean temperature from ``--metrics``) and ``<out>/<id>/shifted.json`` (per set: top1, nll, ece).
Each set's logits are kept in ``--cache`` keyed by the weights, probe, preprocessing, set and code, so adding a set
computes only that set."""

from __future__ import annotations

import sys
from pathlib import Path

from zooscope.stagecli import load, model_id, model_parser, run, use_threads


def work(args) -> None:
    from zooscope.artifacts import (PROBE_WEIGHTS, SHIFTED_SUMMARY, WEIGHTS, read_card, read_model_metrics,
                                    shifted_file)
    from zooscope.data.datasets import load_dataset
    from zooscope.io import sha256_file, write_json, write_npy
    from zooscope.models import load_probe, pick_device
    from zooscope.shift import set_predictions, shift_positions, shifted_logits, shifted_sets
    from zooscope.zoo.sources import load_network

    mid = model_id(args)
    study, _ = load(args.params, mid)
    out, settings = Path(args.out) / mid, study.shift
    sets = shifted_sets(settings)
    metrics = read_model_metrics(args.metrics, mid)
    if metrics is None:
        raise FileNotFoundError(f"{args.metrics}/{mid}.json: the model's metrics (its temperature) are missing; "
                                f"run predict@{mid} first")
    temperature = metrics.get("temperature")
    summary: dict = {"temperature": temperature, "sets": {}}
    cache = Path(args.cache) / mid
    cache.mkdir(parents=True, exist_ok=True)  # a DVC output, even when the study declares no set
    if sets:
        use_threads(study)
        dataset = load_dataset(study.dataset)
        model_dir = Path(args.models) / mid
        card = read_card(model_dir)
        probe_file = Path(args.probes) / mid / PROBE_WEIGHTS
        probe = None if card["has_head"] else load_probe(probe_file)
        device = pick_device(study.embed.device)
        # the card's sha256 is the weights file's (fetch writes both): the weights are not read twice to hash them
        identity = {"weights": card["sha256"], "preprocess": card["preprocess"],
                    "probe": None if probe is None else sha256_file(probe_file), "device": device.type,
                    "threads": study.threads}
        positions = shift_positions(dataset, size=settings.eval_size, seed=settings.seed)
        logits, labels, computed = shifted_logits(load_network(card["builder"], str(model_dir / WEIGHTS)), dataset, positions,
                                          sets, preprocess=card["preprocess"], probe=probe, settings=study.embed,
                                          seed=settings.seed, device=device, identity=identity, cache=cache,
                                          progress=not args.no_progress, desc=f"shifted {mid}")
        for name, lg in logits.items():
            probs, summary["sets"][name] = set_predictions(lg, labels[name], temperature=temperature,
                                                           ece_bins=study.predict.ece_bins)
            write_npy(shifted_file(out, name), probs)
        print(f"shifted@{mid}: {len(sets)} sets ({computed} computed, the rest cached)")
    write_json(out / SHIFTED_SUMMARY, summary)
    for name, m in summary["sets"].items():
        print(f"  {name:<20} top1 {m['top1']:.4f}  nll {m['nll']:.4f}  ece {m['ece']:.4f}")


def main(argv=None) -> int:
    p = model_parser(__doc__)
    p.add_argument("--models", required=True, help="folder of <id>/weights.safetensors and <id>/card.json")
    p.add_argument("--probes", required=True, help="folder of <id>/probe.safetensors (headless models)")
    p.add_argument("--metrics", required=True, help="folder of <id>.json, the predict stage's metrics (the temperature)")
    p.add_argument("--cache", required=True, help="folder of the cached logits (<cache>/<id>/, kept between runs)")
    p.add_argument("--out", required=True, help="folder of the zoo's shifted predictions (<out>/<id>/ is written)")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
