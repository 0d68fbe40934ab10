"""embed@<model>: one forward pass per split; writes ``<out>/<split>.npy`` (float32 [n, d]) and, for
models with a head for the dataset's labels, ``<out>/<split>_logits.npy`` (float32 [n, C])."""

from __future__ import annotations

import sys
from pathlib import Path

from stages._common import load, model_parser, run, use_threads


def work(args) -> None:
    from zooscope.artifacts import WEIGHTS, embedding_file, logits_file, read_card
    from zooscope.data.datasets import SPLITS, load_dataset
    from zooscope.io import write_npy
    from zooscope.models import embed_splits, pick_device
    from zooscope.zoo.sources import load_network

    study, _ = load(args.params, args.model)
    use_threads(study)
    card = read_card(args.model_dir)
    model = load_network(card["builder"], str(Path(args.model_dir) / WEIGHTS))
    device = pick_device(study.embed.device)
    for split, emb, logits in embed_splits(model, load_dataset(study.dataset), preprocess=card["preprocess"],
                                           with_logits=card["has_head"], settings=study.embed, device=device,
                                           progress=not args.no_progress, desc=f"embed {args.model}"):
        write_npy(embedding_file(args.out, split), emb)
        if logits is not None:
            write_npy(logits_file(args.out, split), logits)
    print(f"embed@{args.model}: {card['embed_dim']}-d embeddings for {', '.join(SPLITS)} on {device}")


def main(argv=None) -> int:
    p = model_parser(__doc__)
    p.add_argument("--model-dir", required=True, help="folder with weights.safetensors and card.json")
    p.add_argument("--out", required=True, help="embeddings folder")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
