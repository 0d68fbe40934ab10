"""inputs: the study resolved, and the local files it reads as links DVC can hash.

Writes ``<settings>``: the validated study with every default filled in (a section the study file leaves out
included), which the other stages read and whose sections DVC tracks as their params, so a stage re-runs when a
value it uses changes, a changed default included; each model's resolved entry is a file of its own, in the folder
of the same name (``artifacts/settings/<id>.json``), which that model's ``fetch`` depends on. Writes
``<out>/models/<id>`` for each model (a link to its ``file:`` checkpoint or ``pretrained_file``, else a note) and
``<out>/dataset`` (a link to the dataset's folder: the Fashion-MNIST root, an image folder) and
``<out>/shifts/<name>`` for each shifted folder of ``shift.folders`` (a note when there is none). The stages that read
them list these links as dependencies, so a checkpoint or an image folder whose contents change re-runs exactly
the stages that read it, and ``dvc status`` says so."""

from __future__ import annotations

import sys
from pathlib import Path

from zooscope.stagecli import load, parser, run


def work(args) -> None:
    from zooscope.artifacts import link_inputs
    from zooscope.config import write_study
    from zooscope.data.datasets import FASHION_MNIST_HINT, dataset_root

    study, _ = load(args.params)
    inputs = {f"models/{mid}": spec.local_file for mid, spec in study.models.items()}
    for mid, spec in study.models.items():
        if spec.local_file and not Path(spec.local_file).expanduser().exists():
            # the other models go on; fetch@<id> fails on it, and links it once it exists
            print(f"inputs: warning: {args.params}: models.{mid}: {spec.local_file}: checkpoint not found; fetch@{mid} "
                  "fails until it exists")
            inputs[f"models/{mid}"] = None
    root = dataset_root(study.dataset)
    if root is not None and not root.exists():
        if not study.dataset.source.startswith("torchvision:"):  # a folder the user names is never created
            raise FileNotFoundError(f"{args.params}: dataset {study.dataset.source!r}: the folder {root} does not exist "
                                    f"({'dataset.source' if study.dataset.source.startswith('imagefolder:') else FASHION_MNIST_HINT})")
        root.mkdir(parents=True)  # torchvision downloads into it: the link follows what arrives
    shifts = {f"shifts/{name}": Path(path).expanduser() for name, path in study.shift.folders.items()}
    for name, path in shifts.items():
        if not path.is_dir():
            raise FileNotFoundError(f"{args.params}: shift.folders.{name.partition('/')[2]}: {path} is not a folder "
                                    "(one sub-folder of images per class)")
    link_inputs(args.out, inputs | {"dataset": root} | (shifts or {"shifts/none": None}))
    write_study(args.settings, study)
    local = sorted(name for name, path in inputs.items() if path)
    print(f"inputs: {len(study.models)} models ({len(local)} from local files), dataset {study.dataset.source}")


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--out", required=True, help="folder of the input links")
    p.add_argument("--settings", required=True, help="the resolved study (JSON) the other stages read; its models' files go in "
                   "the folder of the same name")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
