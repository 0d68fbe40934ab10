"""mistakes: the mistake taxonomy, consensus errors, neighbour disagreement, MMD-critic prototypes and
criticisms, and adversarial robustness and transfer (docs/science.md section 7). Writes under ``--out``:

- ``taxonomy.parquet`` (per model: correct, near misses (label in the top ``near_miss_k``), far misses),
  ``confusions.parquet`` (top pairs),
- ``consensus.parquet`` (ranked consensus errors with the zoo's votes and nearest training samples),
- ``neighbours.parquet`` (ranked neighbour disagreement in the strongest model's eval embedding),
- ``prototypes.parquet`` (MMD-critic picks per model and class), ``prototype_overlap.parquet`` (per class and
  pair of models, the MMD^2 between their prototypes in the base model's embedding against random draws),
- ``robustness.parquet`` (accuracy under FGSM / PGD per eps), ``transfer.parquet`` (every ordered pair,
  with the pair's kappa from ``--pairs``), ``adversarial.parquet`` and ``adversarial_images.npy``
  (examples crafted on the strongest model, explained by their nearest training samples);

``--metrics`` (JSON, a DVC metric: counts per category and the transfer / kappa correlation; the
ensemble stage owns metrics/study.json, so this stage writes its own file) and ``--transfer-plot``
(CSV heatmap data). With ``mistakes.attacks: false`` the robustness, transfer and adversarial files are not written
(and earlier ones are removed); the plot data is then its header only.

MMD-critic per model, the attacks per model and the transfer per ordered pair are kept in ``--cache`` between runs
(``zooscope.mistakes.parts``), so a changed model recomputes its own parts and its pairs only. The stage prints the
attack work first (what it computes, what is cached), shows a progress bar per part, and prints the finding lines
last."""

from __future__ import annotations

import sys
from pathlib import Path

from zooscope.stagecli import load, parser, run, use_threads


def work(args) -> None:
    import polars as pl

    from zooscope.artifacts import ADVERSARIAL_IMAGES, ATTACK_TABLES, mistakes_file
    from zooscope.data.datasets import load_dataset
    from zooscope.io import write_csv, write_json, write_npy, write_parquet
    from zooscope.mistakes import mistakes_tables

    study, _ = load(args.params)
    use_threads(study)
    got = mistakes_tables(study, load_dataset(study.dataset), models=args.models, embeddings=args.embeddings,
                          probes=args.probes, predictions=args.predictions, pairs=pl.read_parquet(args.pairs),
                          cache=args.cache, progress=not args.no_progress, log=lambda line: print(line, flush=True))
    for name, frame in got.tables.items():
        write_parquet(mistakes_file(args.out, name), frame)
    plot = pl.DataFrame(schema={"source": pl.String, "target": pl.String, "accuracy": pl.Float64})
    if got.adversarial_images is not None:
        write_npy(Path(args.out) / ADVERSARIAL_IMAGES, got.adversarial_images)
        plot = got.tables["transfer"].select("source", "target", "accuracy")
    else:  # attacks off: what an earlier run with attacks wrote is no result of this study
        for stale in [mistakes_file(args.out, name) for name in ATTACK_TABLES] + [Path(args.out) / ADVERSARIAL_IMAGES]:
            stale.unlink(missing_ok=True)
    write_csv(args.transfer_plot, plot)
    write_json(args.metrics, got.metrics)
    print(got.summary)
    print("\n".join(got.findings))


def main(argv=None) -> int:
    p = parser(__doc__)
    for name, what in (("models", "folder of <id>/card.json and weights.safetensors"),
                       ("embeddings", "folder of <id>/{train,eval}.npy"),
                       ("probes", "folder of <id>/probe.safetensors (headless models)"),
                       ("predictions", "folder of <id>/eval.parquet and eval_probs.npy"),
                       ("pairs", "the ensemble stage's per-pair table (kappa)"),
                       ("cache", "folder of the per-model and per-pair caches (kept between runs)"),
                       ("out", "folder of the mistakes tables"),
                       ("metrics", "mistakes metrics (JSON, a DVC metric)"),
                       ("transfer-plot", "transfer matrix heatmap data (CSV)")):
        p.add_argument(f"--{name}", required=True, help=what)
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
