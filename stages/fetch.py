"""fetch@<model>: obtain a zoo member's weights (train a recipe, or download / read a checkpoint)
and write ``<models>/<id>/weights.safetensors`` and ``<models>/<id>/card.json``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from zooscope.stagecli import load, model_id, model_parser, run, use_threads


def work(args) -> None:
    from zooscope._checks import check_finite_arrays
    from zooscope.artifacts import CARD, WEIGHTS, link_input
    from zooscope.data.datasets import load_dataset
    from zooscope.io import sha256_file, write_json, write_safetensors
    from zooscope.zoo.card import make_card
    from zooscope.zoo.sources import fetch_model

    mid = model_id(args)
    study, spec = load(args.params, mid)
    link = Path(args.inputs or ".") / "models" / mid
    if args.inputs and spec.local_file and Path(spec.local_file).expanduser().exists() and not link.is_symlink():
        # the checkpoint appeared after the inputs stage ran: link it now, so DVC tracks what this stage reads
        link_input(args.inputs, f"models/{mid}", spec.local_file)
        print(f"fetch@{mid}: {link} now links to {spec.local_file}")
    use_threads(study)
    dataset = load_dataset(study.dataset)
    t0 = time.perf_counter()
    fetched = fetch_model(spec, dataset=dataset, progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    state = fetched.model.state_dict()
    check_finite_arrays(f"model {mid}: weights", {k: v.detach().float().cpu().numpy() for k, v in state.items()
                                                 if v.is_floating_point()})
    out = Path(args.models) / mid
    weights = out / WEIGHTS
    write_safetensors(weights, {k: v.clone() for k, v in state.items()},
                      metadata={"zooscope_model": mid, "source": spec.source})
    card = make_card(mid, spec, fetched, weights_sha256=sha256_file(weights), dataset=dataset)
    write_json(out / CARD, card)
    print(f"fetch@{mid}: {card['params']:,} parameters, embedding {card['embed_dim']}-d, "
          f"{'head' if card['has_head'] else 'headless (probe)'}, obtained in {seconds:.1f}s")


def main(argv=None) -> int:
    p = model_parser(__doc__)
    p.add_argument("--models", required=True, help="folder of the zoo's models: <models>/<id>/ gets weights.safetensors "
                                                    "and card.json")
    p.add_argument("--inputs", help="the inputs stage's folder (<inputs>/models/<id> links the checkpoint; dvc.yaml gives it)")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
