"""fetch@<model>: obtain a zoo member's weights (train a recipe, or download / read a checkpoint)
and write ``<out>/weights.safetensors`` and ``<out>/card.json``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from stages._common import load, model_parser, run, use_threads


def work(args) -> None:
    from zooscope.artifacts import CARD, WEIGHTS
    from zooscope.data.datasets import load_dataset
    from zooscope.io import sha256_file, write_json, write_safetensors
    from zooscope.zoo.card import make_card
    from zooscope.zoo.sources import fetch_model

    study, spec = load(args.params, args.model)
    use_threads(study)
    dataset = load_dataset(study.dataset)
    t0 = time.perf_counter()
    fetched = fetch_model(spec, dataset=dataset, progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    weights = Path(args.out) / WEIGHTS
    write_safetensors(weights, {k: v.clone() for k, v in fetched.model.state_dict().items()},
                      metadata={"zooscope_model": args.model, "source": spec.source})
    card = make_card(args.model, spec, fetched, weights_sha256=sha256_file(weights), dataset=dataset)
    write_json(Path(args.out) / CARD, card)
    print(f"fetch@{args.model}: {card['params']:,} parameters, embedding {card['embed_dim']}-d, "
          f"{'head' if card['has_head'] else 'headless (probe)'}, obtained in {seconds:.1f}s")


def main(argv=None) -> int:
    p = model_parser(__doc__)
    p.add_argument("--out", required=True, help="model folder: weights.safetensors and card.json are written here")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
