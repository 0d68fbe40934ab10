"""The GPU paths against the CPU, on one machine: what a study computes on a CUDA GPU, compared with the same
computation on the CPU in float32 (the reference), and how fast each is.

    python bench/gpu_check.py                      # needs a CUDA GPU (make gpu-check); a few minutes
    python bench/gpu_check.py --dry                # the same comparisons, the CPU on both sides, small (the tests)
    python bench/gpu_check.py --out gpu.json       # the figures as JSON too

Parts (each prints a table; the figures go to ``--out``):

- embed: three timm families (resnet18, vit_tiny_patch16_224, convnext_atto), randomly initialised with a fixed
  seed, on ``--images`` seeded random 224 px inputs, through the embed stage's ``extract``: CPU float32 against
  the GPU in float32 and in bfloat16 (``embed.precision: auto`` on a GPU). Largest embedding difference relative
  to the reference's largest magnitude, worst cosine between a sample's two embeddings, the share of samples
  whose top class is the same, and images per second. Random weights make near-ties between classes common, so
  the top-class agreement is a lower bound of what trained weights give.
- knn: FAISS exact inner-product k-NN (k = 10) of unit-normalised random embeddings, GPU index against CPU
  index: the share of rows whose neighbour sets are identical, and seconds.
- pgd: the mistakes stage's PGD (L_inf, eps 4/255) against resnet18 on the GPU and on the CPU from the same
  random start: robust accuracy on each, the share of adversarial predictions that agree, and seconds.

CKA is not here: the similarity stage computes it with numpy on the CPU (there is no GPU path to check).
Exit status 2, with one line, when no CUDA GPU is visible and ``--dry`` is not given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from zooscope.mistakes.adversarial import classifier, pgd, predict  # noqa: E402
from zooscope.models.embed import extract  # noqa: E402
from zooscope.models.knn import l2_normalize, search  # noqa: E402

ARCHS = ("resnet18", "vit_tiny_patch16_224", "convnext_atto")
NUM_CLASSES = 10


def _network(arch: str) -> torch.nn.Module:
    import timm

    torch.manual_seed(0)
    return timm.create_model(arch, pretrained=False, num_classes=NUM_CLASSES).eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: torch.device):
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def _embed(arch: str, x: torch.Tensor, device: torch.device, dtype: torch.dtype, batch: int) -> tuple:
    """(embeddings float32 [n, d], logits float32 [n, C], seconds) of ``arch`` on ``x`` [n, 3, 224, 224]."""
    net = _network(arch)
    batches = lambda: (x[i:i + batch].pin_memory() if device.type == "cuda" else x[i:i + batch]  # noqa: E731
                       for i in range(0, len(x), batch))
    extract(net, batches(), n=len(x), with_logits=True, device=device, dtype=dtype, progress=False)  # warm-up
    (emb, logits), seconds = _timed(lambda: extract(net, batches(), n=len(x), with_logits=True, device=device,
                                                    dtype=dtype, progress=False), device)
    return emb, logits, seconds


def _compare(ref: tuple, other: tuple) -> dict:
    (e0, l0, _), (e1, l1, s1) = ref, other
    cos = (e0 * e1).sum(1) / np.maximum(np.linalg.norm(e0, axis=1) * np.linalg.norm(e1, axis=1), 1e-12)
    return {"max_rel_diff": float(np.abs(e0 - e1).max() / max(np.abs(e0).max(), 1e-12)),
            "min_cosine": float(cos.min()), "top1_agreement": float((l0.argmax(1) == l1.argmax(1)).mean()),
            "images_per_s": len(e1) / s1}


def check_embed(device: torch.device, *, images: int, batch: int) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(images, 3, 224, 224, generator=gen)
    rows = []
    for arch in ARCHS:
        ref = _embed(arch, x, torch.device("cpu"), torch.float32, batch)
        rows.append({"arch": arch, "cpu_images_per_s": images / ref[2],
                     "float32": _compare(ref, _embed(arch, x, device, torch.float32, batch)),
                     "bfloat16": _compare(ref, _embed(arch, x, device, torch.bfloat16, batch))})
    return rows


def check_knn(use_gpu: bool, *, rows: int, dim: int, k: int = 10) -> dict:
    rng = np.random.default_rng(0)
    x = l2_normalize(rng.standard_normal((rows, dim), dtype=np.float32))
    (_, cpu), cpu_s = _timed(lambda: search(x, x, k=k, exclude_self=True, use_gpu=False), torch.device("cpu"))
    (_, dev), dev_s = _timed(lambda: search(x, x, k=k, exclude_self=True, use_gpu=use_gpu), torch.device("cpu"))
    same = np.array([set(a) == set(b) for a, b in zip(cpu.tolist(), dev.tolist())])
    return {"rows": rows, "dim": dim, "k": k, "same_neighbour_sets": float(same.mean()), "cpu_s": cpu_s,
            "device_s": dev_s, "device_is_gpu": use_gpu}


def check_pgd(device: torch.device, *, images: int, steps: int, eps: float = 4 / 255) -> dict:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(images, 3, 224, 224, generator=gen)
    out, y = {}, None
    for side, where in (("cpu", torch.device("cpu")), ("device", device)):
        fn = classifier(_network("resnet18"), mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], device=where)
        if y is None:
            y = torch.as_tensor(predict(fn, x))  # the CPU network's clean predictions: the labels of both sides
        adv, seconds = _timed(lambda: pgd(fn, x, y, eps=eps, steps=steps, seed=0), where)
        pred = predict(fn, adv)
        out[side] = {"robust_accuracy": float((pred == y.numpy()).mean()), "pred": pred, "seconds": seconds}
    cpu, dev = out["cpu"], out["device"]
    return {"images": images, "steps": steps, "eps": eps, "cpu_robust_accuracy": cpu["robust_accuracy"],
            "device_robust_accuracy": dev["robust_accuracy"],
            "adversarial_agreement": float((cpu["pred"] == dev["pred"]).mean()),
            "cpu_s": cpu["seconds"], "device_s": dev["seconds"]}


def _print(results: dict) -> None:
    print(f"device: {results['device']}{' (dry: the CPU on both sides)' if results['dry'] else ''}\n")
    print("| embed | CPU img/s | device fp32: max rel. diff, min cosine, top-1 agreement, img/s "
          "| device bf16: the same |\n|---|---|---|---|")
    for r in results["embed"]:
        f, b = r["float32"], r["bfloat16"]
        print(f"| {r['arch']} | {r['cpu_images_per_s']:.1f} | {f['max_rel_diff']:.2e}, {f['min_cosine']:.6f}, "
              f"{f['top1_agreement']:.3f}, {f['images_per_s']:.1f} | {b['max_rel_diff']:.2e}, {b['min_cosine']:.6f}, "
              f"{b['top1_agreement']:.3f}, {b['images_per_s']:.1f} |")
    k, p = results["knn"], results["pgd"]
    print(f"\nknn {k['rows']} x {k['dim']}, k={k['k']}: identical neighbour sets {k['same_neighbour_sets']:.5f}; "
          f"CPU {k['cpu_s']:.2f} s, device {k['device_s']:.2f} s")
    print(f"pgd {p['images']} images, {p['steps']} steps, eps {p['eps']:.4f}: robust accuracy CPU "
          f"{p['cpu_robust_accuracy']:.3f}, device {p['device_robust_accuracy']:.3f}; adversarial predictions agree "
          f"{p['adversarial_agreement']:.3f}; CPU {p['cpu_s']:.1f} s, device {p['device_s']:.1f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/gpu_check.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry", action="store_true", help="the CPU on both sides, small sizes: checks the script itself")
    p.add_argument("--images", type=int, default=None, help="images per embed model (default 512; dry 6)")
    p.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if not args.dry and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA GPU; run it on a GPU machine, or with --dry to check it on the CPU",
              file=sys.stderr)
        return 2
    from zooscope.models.knn import faiss_uses_gpu

    device = torch.device("cpu" if args.dry else "cuda")
    images = args.images or (6 if args.dry else 512)
    results = {"device": torch.cuda.get_device_name() if not args.dry else "cpu", "dry": args.dry,
               "embed": check_embed(device, images=images, batch=64),
               "knn": check_knn(not args.dry and faiss_uses_gpu(), rows=2_000 if args.dry else 50_000,
                                dim=64 if args.dry else 512),
               "pgd": check_pgd(device, images=4 if args.dry else 64, steps=2 if args.dry else 10)}
    if not args.dry and not results["knn"]["device_is_gpu"]:
        print("warning: FAISS sees no GPU (install zooscope[gpu], i.e. faiss-gpu): knn compared CPU with CPU",
              file=sys.stderr)
    _print(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
