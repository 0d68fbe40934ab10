"""The page ``zooscope explain`` writes: one sample, what a model predicts for it and how confidently, and its
nearest training samples in that model's embedding, with their images. Built from the report's blocks
(:mod:`zooscope.report.page`, the thumbnails of :mod:`zooscope.report.pair_sections`), so it is self-contained
too: images are ``data:`` URIs, styles inline, nothing is loaded from elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

from zooscope.mistakes.explain import describe_prediction
from zooscope.mistakes.samples import sample_position
from zooscope.report.page import Column, Html, Section, fact, join, render_page, table, tag
from zooscope.report.pair_sections import image_thumb

__all__ = ["explain_page"]


def explain_page(dataset, *, model: str, query: dict, neighbours: Sequence[dict], prediction: dict | None,
                 embeddings: str) -> str:
    """The whole HTML page.

    Args:
        dataset: the study's :class:`zooscope.data.datasets.Dataset` (images, class names).
        model: the model id.
        query, neighbours: :func:`zooscope.mistakes.explain.explain_sample`'s result (the sample; its nearest
            training samples, most similar first).
        prediction: :func:`zooscope.mistakes.explain.sample_prediction`'s result; None: the model predicts nothing
            for this split (shown as such).
        embeddings: the model's embed folder, as the page cites it.
    """
    sid, cls = query["sample_id"], dataset.classes

    def image(sample_id: int, lines: list[str]) -> Html:
        return image_thumb(dataset.pil(sample_position(dataset, sample_id)), f"sample {sample_id}", lines)

    facts = [("sample id", str(sid)), ("split", query["split"]), ("label", query["class"])]
    if prediction is not None:
        pred = prediction["pred"]
        facts += [(f"{model} predicts", f"{cls[pred]} ({'right' if pred == query['label'] else 'wrong'})"),
                  ("confidence", f"{prediction['confidence']:.3f}")]
    boxes = join(fact(value, name) for name, value in facts)
    sample = tag("div", image(sid, [f"sample {sid}", f"label {query['class']}"]), tag("div", boxes, class_="facts"),
                 class_="thumbs explain")
    said = tag("p", describe_prediction(model, query, prediction, cls), class_="note")
    sample_section = Section("sample", f"Sample {sid}", (f"dataset {dataset.name}",), join([sample, said]),
                             f"Sample {sid} of the {query['split']} split and what {model} predicts for it.")

    agree = sum(r["label"] == query["label"] for r in neighbours)
    thumbs = join(image(r["sample_id"], [f"#{r['rank']}: {r['sample_id']}", r["class"], f"sim {r['similarity']:.3f}"])
                  for r in neighbours)
    columns = [Column("rank", "rank", str, True), Column("sample_id", "sample id", str, True),
               Column("label", "label", str, True), Column("class", "class"),
               Column("similarity", "cosine similarity", lambda v: f"{v:.4f}", True)]
    body = join([tag("div", thumbs, class_="thumbs"), tag("div", table(neighbours, columns), class_="scroll"),
                 tag("p", f"{agree} of {len(neighbours)} neighbours share the sample's label ({query['class']}).")])
    files = tuple(dict.fromkeys((f"{embeddings}/train.npy", f"{embeddings}/{query['split']}.npy")))
    neighbour_section = Section("neighbours", "Its nearest training samples", files, body,
                                f"The {len(neighbours)} training samples most similar (cosine) to sample {sid} in "
                                f"{model}'s embedding: the examples that explain it.")
    return render_page(f"Sample {sid} in {model}'s embedding",
                       f"zooscope explain: {dataset.name}, {query['split']} split, {len(neighbours)} nearest training "
                       "samples", [sample_section, neighbour_section])
