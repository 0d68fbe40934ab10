"""embed@<model>: one forward pass per split; writes ``<out>/<id>/<split>.npy`` (float32 [n, d]) and, for
models with a head for the dataset's labels, ``<out>/<id>/<split>_logits.npy`` (float32 [n, C])."""

from __future__ import annotations

import sys
from pathlib import Path

from zooscope.stagecli import load, model_id, model_parser, run, use_threads


def work(args) -> None:
    from zooscope.artifacts import WEIGHTS, embedding_file, logits_file, read_card
    from zooscope.data.datasets import SPLITS, load_dataset
    from zooscope.io import write_npy
    from zooscope.models import embed_splits, pick_device
    from zooscope.zoo.sources import load_network

    mid = model_id(args)
    study, _ = load(args.params, mid)
    use_threads(study)
    model_dir, out = Path(args.models) / mid, Path(args.out) / mid
    card = read_card(model_dir)
    model = load_network(card["builder"], str(model_dir / WEIGHTS))
    device = pick_device(study.embed.device)
    for split, emb, logits in embed_splits(model, load_dataset(study.dataset), preprocess=card["preprocess"],
                                           with_logits=card["has_head"], settings=study.embed, device=device,
                                           progress=not args.no_progress, desc=f"embed {mid}"):
        write_npy(embedding_file(out, split), emb)
        if logits is not None:
            write_npy(logits_file(out, split), logits)
    print(f"embed@{mid}: {card['embed_dim']}-d embeddings for {', '.join(SPLITS)} on {device}")


def main(argv=None) -> int:
    p = model_parser(__doc__)
    p.add_argument("--models", required=True, help="folder of <id>/weights.safetensors and <id>/card.json")
    p.add_argument("--out", required=True, help="folder of the zoo's embeddings (<out>/<id>/ is written)")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
