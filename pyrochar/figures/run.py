"""All the figures of the paper's qualitative analysis in one call (``pyrochar figures``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic import atomic_open
from ..models.base import CharacterModel
from ..sampling import sample_characters
from . import grids, novelty, predictions, topology

#: the names under which models appear in titles (others: their registry name)
TITLES = {"full-ns": "Full NS", "hlstm": "Hierarchical LSTM", "baseline": "Baseline LSTM",
          "bpl": "BPL-style prior"}
#: output files, by figure
FILES = {
    "fig3": "fig3_predictions.png",
    "fig5": "fig5_samples.png",
    "fig6": "fig6_novelty.png",
    "fig7": "fig7_topology.png",
    "fig8": "fig8_strokes.png",
    "novelty_md": "novelty.md",
    "novelty_json": "novelty.json",
}
FULL_NS = "full-ns"


@dataclass
class FiguresResult:
    """What :func:`make_figures` wrote, and what it skipped (with the reason)."""

    files: dict[str, Path] = field(default_factory=dict)  # keys of FILES
    skipped: list[str] = field(default_factory=list)
    novelty: dict | None = None  # the novelty table (novelty.json)
    classifier_accuracy: float | None = None


def save_png(img: Image.Image, path: Path) -> Path:
    """Write ``img`` as a PNG, atomically."""
    with atomic_open(path, "wb") as f:
        img.save(f, format="PNG")
    return path


def title_of(name: str) -> str:
    return TITLES.get(name, name)


def make_figures(
    models: Mapping[str, CharacterModel],
    data,
    heldout,
    out_dir,
    n: int = 36,
    seed: int = 0,
    progress: bool = True,
    *,
    n_novelty: int = 200,
    novelty_rows: int = 9,
    low_temperature: float = 0.5,
    grid_side: int = 10,
    classifier_epochs: int = 10,
    holdout_per_character: int = 2,
    cell: int = 64,
    device="cpu",
    log: Callable[[str], None] | None = None,
) -> FiguresResult:
    """Draw Figs. 3, 5, 6, 7 and 8 and the novelty table into ``out_dir``.

    ``models``: {registry name: model}, in the order of the panels ("full-ns",
    "hlstm", "baseline", "bpl" or any subset). ``data``: the training characters
    (a PreparedDataset): real characters of Fig. 5, the classifier's classes and
    the neighbours' reference set. ``heldout``: drawings of characters not in
    ``data`` (may be empty): Fig. 3's character and the novelty table's
    ``heldout_characters`` reference. Figures that need Full NS (3, 7, 8) are
    skipped (and said so in the result) without it.

    ``n`` samples per model for Figs. 5 and 8; ``n_novelty`` per model for the
    novelty table (the first ``novelty_rows`` of them make Fig. 6);
    ``grid_side ** 2`` Full NS samples at ``low_temperature`` for Fig. 7.
    Seeds: Fig. 5 (and Fig. 8 at T = 1) use ``seed``, Fig. 8 at the low temperature
    ``seed + 1``, the novelty samples ``seed + 2``, Fig. 7 ``seed + 3`` (each
    model sampled from that seed); the classifier, Fig. 3's and the real
    characters' choices use ``seed``.
    """
    from tqdm.auto import tqdm

    say = log or (lambda msg: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not models:
        raise ValueError("no model to draw figures of")
    if len(data) == 0:
        raise ValueError("no training drawings")
    result = FiguresResult()
    full_ns = models.get(FULL_NS)
    steps = ["Fig. 3", "Fig. 5", "Fig. 8", "classifier", "Fig. 6 + novelty table", "Fig. 7"]
    bar = tqdm(steps, desc="figures", unit="figure", disable=not progress)

    def skip(what: str, why: str) -> None:
        result.skipped.append(f"{what}: {why}")
        say(f"skipping {what}: {why}")

    def done(key: str, img: Image.Image) -> None:
        result.files[key] = save_png(img, out_dir / FILES[key])

    samples: dict[str, list] = {}
    for step in bar:
        bar.set_postfix_str(step)
        if step == "Fig. 3":
            if full_ns is None:
                skip("Fig. 3", "it shows Full NS's predictions; Full NS is not among the models")
                continue
            source, what = (heldout, "held-out") if len(heldout) else (data, "training")
            d = predictions.pick_drawing(source, seed)
            pred = predictions.stroke_predictions(full_ns, source.strokes(d), size=2 * cell)
            done("fig3", predictions.prediction_figure(
                pred, cell=2 * cell, title=f"Full NS predictions for a {what} character: {source.key(d)}"))
        elif step == "Fig. 5":
            for name, model in models.items():
                samples[name] = sample_characters(model, n, temperature=1.0, seed=seed)
            panels = {}
            for name, chars in samples.items():
                if name == "bpl":
                    panels[f"{title_of(name)} (centred)"] = grids.center_characters(chars)
                else:
                    panels[title_of(name)] = chars
            panels["Ground truth (Omniglot)"] = grids.real_characters(data, n, seed)
            done("fig5", grids.side_by_side(panels, n_cols=_cols(n), cell=cell))
        elif step == "Fig. 8":
            if full_ns is None:
                skip("Fig. 8", "it shows Full NS samples; Full NS is not among the models")
                continue
            low = sample_characters(full_ns, n, temperature=low_temperature, seed=seed + 1)
            done("fig8", grids.stroke_decomposition(
                {"T = 1.0 (default)": samples[FULL_NS],
                 f"T = {low_temperature:g} (less random)": low},
                n_cols=_cols(n), cell=cell))
        elif step == "classifier":
            train_chars = novelty.dataset_characters(data)
            canvases = novelty.render_characters(train_chars)
            clf = novelty.train_classifier(
                data, canvases, epochs=classifier_epochs,
                holdout_per_character=holdout_per_character, seed=seed, device=device,
                progress=progress)
            result.classifier_accuracy = clf.accuracy
            say(f"classifier: {len(clf.classes)} characters, held-out accuracy "
                f"{clf.accuracy:.3f} on {len(clf.heldout_index)} drawings")
            ref_index = clf.train_index  # the neighbours' reference set
            ref_chars = [train_chars[i] for i in ref_index]
            ref_feats = clf.features(canvases[ref_index])
        elif step == "Fig. 6 + novelty table":
            references = {
                "heldout_characters": _nn_distance(
                    clf, novelty.dataset_characters(heldout), ref_feats),
                "heldout_drawings": novelty.nearest_neighbours(
                    clf.features(canvases[clf.heldout_index]), ref_feats, k=1)[0][:, 0],
            }
            distances, rows = {}, {}
            for name, model in models.items():
                chars = sample_characters(model, n_novelty, temperature=1.0, seed=seed + 2)
                feats = clf.features(novelty.render_characters(chars))
                dist, idx = novelty.nearest_neighbours(feats, ref_feats)
                distances[name] = dist[:, 0]
                m = min(novelty_rows, len(chars))
                rows[title_of(name)] = (chars[:m], [[ref_chars[j] for j in idx[r]] for r in range(m)])
            table = novelty.novelty_table(distances, references, clf.info())
            md, js = novelty.write_novelty_table(table, out_dir)
            result.files["novelty_md"], result.files["novelty_json"] = md, js
            result.novelty = table
            done("fig6", novelty.novelty_figure(rows, cell=cell))
        elif step == "Fig. 7":
            if full_ns is None:
                skip("Fig. 7", "it shows Full NS samples; Full NS is not among the models")
                continue
            chars = sample_characters(full_ns, grid_side * grid_side, temperature=low_temperature,
                                      seed=seed + 3)
            feats = clf.features(novelty.render_characters(chars))
            cells = topology.grid_assignment(topology.embed_2d(feats), grid_side, grid_side)
            _, idx = novelty.nearest_neighbours(feats, ref_feats, k=1)
            nearest = [ref_chars[j] for j in idx[:, 0]]
            done("fig7", topology.topology_figure(chars, nearest, cells, grid_side, grid_side,
                                                  cell=cell, temperature=low_temperature))
    bar.close()
    return result


def _cols(n: int) -> int:
    """Columns of an n-character grid: a square when n is one (36 -> 6)."""
    return max(1, int(np.ceil(np.sqrt(n))))


def _nn_distance(clf, characters, ref_feats: torch.Tensor) -> np.ndarray:
    if not characters:
        return np.zeros(0)
    feats = clf.features(novelty.render_characters(characters))
    return novelty.nearest_neighbours(feats, ref_feats, k=1)[0][:, 0]
