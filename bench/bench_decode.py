"""Decode once: a timm model's embedding throughput at 224 px, from the memoised decoded crops, against the raw
forward pass on the same tensors and against decoding every image again for the model (what each model paid
before the crops were shared), in one run.

    python bench/bench_decode.py                 # 256 images, resnet18 (randomly initialised)
    python bench/bench_decode.py --images 512 --arch vit_tiny_patch16_224

The images are seeded random RGB PNGs of 320 x 256 in four class folders (real photos decode somewhat slower:
JPEG, larger files), resized and centre-cropped by timm's default configuration for the architecture.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/bench_decode.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=256, help="images in the folder (default 256)")
    p.add_argument("--arch", default="resnet18", help="timm architecture (default resnet18)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ZOOSCOPE_CACHE"] = str(Path(tmp) / "cache")
        import timm
        from timm.data import create_transform, resolve_model_data_config

        from tests.datafiles import write_image_folder
        from zooscope.config import DatasetSpec
        from zooscope.data.datasets import load_dataset
        from zooscope.data.transforms import decoded_inputs, iter_batches, timm_preprocess
        from zooscope.models.embed import extract

        per_class = -(-args.images // 4)
        write_image_folder(Path(tmp) / "images", {c: per_class for c in "abcd"}, size=(320, 256))
        dataset = load_dataset(DatasetSpec(source=f"imagefolder:{Path(tmp) / 'images'}", seed=0, eval_size=0.3,
                                           calibration_size=0.2))
        torch.manual_seed(0)
        model = timm.create_model(args.arch, pretrained=False, num_classes=4).eval()
        pre = timm_preprocess(resolve_model_data_config(model))
        everything = np.arange(len(dataset.labels))
        n = len(everything)

        def timed(fn) -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        decode_s = timed(lambda: decoded_inputs(dataset, pre))  # the first model with this configuration
        x = torch.cat(list(iter_batches(dataset, everything, pre, batch_size=args.batch)))
        forward = lambda: extract(model, (x[i:i + args.batch] for i in range(0, n, args.batch)), n=n,  # noqa: E731
                                  with_logits=True, device=torch.device("cpu"), progress=False)
        shared = lambda: extract(model, iter_batches(dataset, everything, pre, batch_size=args.batch), n=n,  # noqa: E731
                                 with_logits=True, device=torch.device("cpu"), progress=False)
        tf = create_transform(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in pre.items() if k != "kind"},
                              is_training=False)
        again = lambda: extract(model, (torch.stack([tf(dataset.pil(int(i))) for i in everything[s:s + args.batch]])  # noqa: E731
                                        for s in range(0, n, args.batch)), n=n, with_logits=True,
                                device=torch.device("cpu"), progress=False)
        forward()  # warm-up
        times = {"forward": [], "shared": [], "again": []}
        for _ in range(3):  # alternated, best of 3 each
            for name, fn in (("forward", forward), ("shared", shared), ("again", again)):
                times[name].append(timed(fn))
        best = {k: min(v) for k, v in times.items()}
    print(f"{args.arch} at {pre['input_size'][-1]} px, {n} images, batch {args.batch}, {torch.get_num_threads()} threads "
          f"(best of 3, alternated)")
    print(f"| path | images/s | of the raw forward |\n|---|---|---|")
    for name, label in (("forward", "raw forward on tensors in memory"),
                        ("shared", "embedding from the shared decoded crops (ToTensor, Normalize per batch)"),
                        ("again", "embedding decoding every image again (each model, before)")):
        print(f"| {label} | {n / best[name]:.1f} | {best['forward'] / best[name]:.2f} |")
    print(f"decoding the folder once: {decode_s:.2f} s ({n / decode_s:.0f} images/s); every further model with the same "
          f"configuration saves it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
