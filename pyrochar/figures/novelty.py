"""The paper's Fig. 6 (novelty of samples), its CNN classifier, and a novelty table.

**Classifier.** A small CNN (:class:`CharacterClassifier`: 4 blocks [3x3 conv, batch
norm, ReLU, 2x2 max-pool] of 64 channels (28 -> 1, the embedding of Vinyals et al.
2016), a hidden layer of 128 units, a linear head over the characters) trained with
Adam (lr 1e-3, batches of 32, 10 epochs by default) to tell the training
characters apart (every character of the training data is a class) from the
28 x 28 canvas of the whole drawing (the renderer's, as the models see it), with
random shifts of up to 2 px. A few drawings per character are held out to measure
its accuracy. Its last hidden layer (after the ReLU) is the similarity space;
similarity is the cosine distance there (the paper's metric).

**Neighbours (Fig. 6).** For a sample, its 5 nearest drawings among the
classifier's *training drawings* (the reference set) by cosine distance. Each row
of the picture is a sample (red frame) followed by its neighbours, nearest first.

**Novelty table** (a number the paper does not give). For each model, the
distribution of the nearest-neighbour distance of its samples to the reference
set, against that of real drawings the classifier never saw:

- ``heldout_characters``: drawings of characters not in the training data (the
  split's held-out characters) -- what "a new character" looks like to this
  metric;
- ``heldout_drawings``: the classifier's held-out drawings of training characters
  -- what "another drawing of a known character" looks like (small distances).

Samples much closer to the training drawings than new real characters are
near-copies; much further, they leave the data's manifold. Each comparison gives
the medians' difference, a two-sided Mann-Whitney U test and a two-sample
Kolmogorov-Smirnov test (scipy). See :func:`novelty_table` for the JSON keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from ..atomic import atomic_write_text
from ..models.batch import CharacterBatch
from ..viz import character_grid
from .grids import GRID_MARGIN, hstack, titled

RENDER_CHUNK = 256
N_NEIGHBOURS = 5
FRAME_COLOUR = (220, 20, 20)
REFERENCES = {
    "heldout_characters": "real drawings of characters not in the training data",
    "heldout_drawings": "the classifier's held-out drawings of training characters",
}


# -------------------------------------------------------------------- canvases
@torch.no_grad()
def render_characters(characters: Sequence[Sequence[np.ndarray]], device="cpu") -> torch.Tensor:
    """The 28 x 28 canvas of each whole character (control points per stroke): (N, 28, 28).

    The canvas after the last stroke, as :func:`pyrochar.models.full_ns.stroke_canvases`
    (and the models) build it; a character without strokes is a blank canvas.
    """
    from ..models.full_ns import stroke_canvases

    out = torch.zeros(len(characters), 28, 28)
    drawn = [k for k, ch in enumerate(characters) if len(ch) > 0]
    for lo in range(0, len(drawn), RENDER_CHUNK):
        idx = drawn[lo : lo + RENDER_CHUNK]
        batch = CharacterBatch.from_control_points([characters[k] for k in idx]).to(device)
        canv = stroke_canvases(batch)  # (b, S + 1, 28, 28)
        last = canv[torch.arange(len(idx), device=canv.device), batch.n_strokes]
        out[idx] = last.float().cpu()
    return out


def dataset_characters(data) -> list[list[np.ndarray]]:
    """Every drawing of a PreparedDataset as control points per stroke."""
    return [data.strokes(d) for d in range(len(data))]


# ------------------------------------------------------------------ classifier
class CharacterClassifier(nn.Module):
    """A small CNN over 28 x 28 canvases; ``features`` is its last hidden layer."""

    def __init__(self, n_classes: int, channels: Sequence[int] = (64, 64, 64, 64), hidden: int = 128,
                 dropout: float = 0.3):
        super().__init__()
        layers, c_in, side = [], 1, 28
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in, side = c, side // 2
        self.conv = nn.Sequential(*layers)
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, hidden), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 28, 28) canvases -> (N, hidden) last-hidden-layer activations."""
        return self.hidden(self.conv(x.unsqueeze(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class TrainedClassifier:
    """A trained classifier and how it was trained."""

    net: CharacterClassifier
    classes: list[str]  # character key of each class
    train_index: np.ndarray  # drawings of the data it was trained on
    heldout_index: np.ndarray  # drawings of the data held out (accuracy)
    accuracy: float  # on the held-out drawings (nan when none)
    train_accuracy: float
    epochs: int

    @torch.no_grad()
    def features(self, canvases: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """(N, 28, 28) -> (N, hidden) features, in eval mode, on the CPU."""
        self.net.eval()
        device = next(self.net.parameters()).device
        parts = [self.net.features(canvases[lo : lo + batch_size].to(device)).cpu()
                 for lo in range(0, len(canvases), batch_size)]
        return torch.cat(parts) if parts else torch.zeros(0, self.net.hidden[1].out_features)

    @torch.no_grad()
    def predict(self, canvases: torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """Class index of each canvas."""
        self.net.eval()
        device = next(self.net.parameters()).device
        out = [self.net(canvases[lo : lo + batch_size].to(device)).argmax(-1).cpu()
               for lo in range(0, len(canvases), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros(0, np.int64)

    def info(self) -> dict:
        return {
            "n_classes": len(self.classes),
            "n_train_drawings": int(len(self.train_index)),
            "n_heldout_drawings": int(len(self.heldout_index)),
            "heldout_accuracy": None if math.isnan(self.accuracy) else round(self.accuracy, 4),
            "train_accuracy": round(self.train_accuracy, 4),
            "epochs": self.epochs,
        }


def holdout_split(keys: np.ndarray, per_character: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) drawing indices: ``per_character`` drawings of each character held out.

    A character keeps at least one training drawing (fewer are held out if needed).
    """
    rng = np.random.default_rng(seed)
    train, held = [], []
    for key in sorted(set(keys.tolist())):
        idx = rng.permutation(np.flatnonzero(keys == key))
        k = min(per_character, len(idx) - 1)
        held += idx[:k].tolist()
        train += idx[k:].tolist()
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(held, np.int64))


def _shift(x: torch.Tensor, max_shift: float, gen: torch.Generator) -> torch.Tensor:
    """Translate each canvas by a random amount in [-max_shift, max_shift] px (bilinear)."""
    n = x.shape[0]
    t = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2 * max_shift / x.shape[-1])
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = t
    grid = F.affine_grid(theta.to(x.device), (n, 1, *x.shape[-2:]), align_corners=False)
    return F.grid_sample(x.unsqueeze(1), grid, align_corners=False).squeeze(1)


def train_classifier(
    data,
    canvases: torch.Tensor | None = None,
    *,
    epochs: int = 10,
    holdout_per_character: int = 2,
    batch_size: int = 32,
    lr: float = 1e-3,
    hidden: int = 128,
    channels: Sequence[int] = (64, 64, 64, 64),
    max_shift: float = 2.0,
    seed: int = 0,
    device="cpu",
    progress: bool = False,
) -> TrainedClassifier:
    """Train the CNN classifier on every character of ``data`` (a PreparedDataset).

    ``canvases`` (N, 28, 28) are the drawings' canvases (rendered when not given).
    Deterministic given ``seed`` on the CPU.
    """
    from tqdm.auto import tqdm

    if len(data) == 0:
        raise ValueError("no training drawings for the classifier")
    if canvases is None:
        canvases = render_characters(dataset_characters(data))
    keys = data.character_keys()
    classes = sorted(set(keys.tolist()))
    label_of = {k: i for i, k in enumerate(classes)}
    labels = torch.as_tensor([label_of[k] for k in keys], dtype=torch.long)
    train_idx, held_idx = holdout_split(keys, holdout_per_character, seed)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = CharacterClassifier(len(classes), channels, hidden).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x_train, y_train = canvases[train_idx], labels[train_idx]
    n = len(train_idx)
    steps = epochs * math.ceil(n / batch_size)
    bar = tqdm(total=steps, desc="classifier", unit="batch", disable=not progress, leave=False)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(n, generator=gen)
        for lo in range(0, n, batch_size):
            idx = order[lo : lo + batch_size]
            if len(idx) < 2:  # batch norm needs two examples
                continue
            x = _shift(x_train[idx], max_shift, gen) if max_shift > 0 else x_train[idx]
            loss = F.cross_entropy(net(x.to(device)), y_train[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.update()
    bar.close()
    result = TrainedClassifier(net.eval(), classes, train_idx, held_idx, float("nan"), 0.0, epochs)
    result.train_accuracy = float((result.predict(x_train) == y_train.numpy()).mean())
    if len(held_idx):
        result.accuracy = float((result.predict(canvases[held_idx]) == labels[held_idx].numpy()).mean())
    return result


# ------------------------------------------------------------------ neighbours
def cosine_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(Na, H), (Nb, H) -> (Na, Nb) cosine distances ``1 - cos``; a zero vector is at 1."""
    a = F.normalize(a.float(), dim=-1, eps=1e-12)
    b = F.normalize(b.float(), dim=-1, eps=1e-12)
    return (1.0 - a @ b.T).clamp(min=0.0)


def nearest_neighbours(query: torch.Tensor, reference: torch.Tensor, k: int = N_NEIGHBOURS,
                       chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest reference rows of each query row by cosine distance.

    Returns (distances (Nq, k), indices (Nq, k)), nearest first.
    """
    k = min(k, len(reference))
    dists, idx = [], []
    for lo in range(0, len(query), chunk):
        d = cosine_distances(query[lo : lo + chunk], reference)
        v, i = torch.topk(d, k, dim=1, largest=False)
        dists.append(v)
        idx.append(i)
    if not dists:
        return np.zeros((0, k)), np.zeros((0, k), np.int64)
    return torch.cat(dists).numpy(), torch.cat(idx).numpy()


# ------------------------------------------------------------------ the table
def _summary(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return {"n": 0, "median": None, "mean": None, "q25": None, "q75": None}
    q25, med, q75 = np.percentile(x, [25, 50, 75])
    return {"n": int(len(x)), "median": float(med), "mean": float(x.mean()),
            "q25": float(q25), "q75": float(q75)}


def compare(samples: np.ndarray, reference: np.ndarray) -> dict:
    """Two-sample comparison of nearest-neighbour distances (samples vs a reference).

    Keys: ``median_difference`` (samples minus reference), ``mannwhitney_u``,
    ``mannwhitney_p`` (two-sided), ``ks_statistic``, ``ks_p``, ``direction``
    ("closer" / "further": the samples' median relative to the reference's).
    """
    from scipy.stats import ks_2samp, mannwhitneyu

    samples, reference = np.asarray(samples, float), np.asarray(reference, float)
    if len(samples) == 0 or len(reference) == 0:
        return {"median_difference": None, "mannwhitney_u": None, "mannwhitney_p": None,
                "ks_statistic": None, "ks_p": None, "direction": None}
    diff = float(np.median(samples) - np.median(reference))
    mw = mannwhitneyu(samples, reference, alternative="two-sided")
    ks = ks_2samp(samples, reference)
    return {
        "median_difference": diff,
        "mannwhitney_u": float(mw.statistic),
        "mannwhitney_p": float(mw.pvalue),
        "ks_statistic": float(ks.statistic),
        "ks_p": float(ks.pvalue),
        "direction": "closer" if diff < 0 else "further",
    }


def novelty_table(
    sample_distances: Mapping[str, np.ndarray],
    reference_distances: Mapping[str, np.ndarray],
    classifier: dict | None = None,
    temperatures: Mapping[str, float] | None = None,
) -> dict:
    """The novelty table as a JSON-ready dict.

    ``sample_distances``: per model, each sample's cosine distance to its nearest
    training drawing; ``reference_distances``: the same for the real reference
    sets (keys of :data:`REFERENCES`). Keys of the result:

    - ``metric``: what the numbers are;
    - ``classifier``: :meth:`TrainedClassifier.info` (n_classes, n_train_drawings,
      n_heldout_drawings, heldout_accuracy, train_accuracy, epochs);
    - ``references``: per reference set ``{description, n, median, mean, q25, q75}``;
    - ``models``: per model ``{n, median, mean, q25, q75, temperature, tests}`` with
      ``tests``: per reference set the result of :func:`compare`.
    """
    temperatures = temperatures or {}
    refs = {name: {"description": REFERENCES.get(name, name), **_summary(d)}
            for name, d in reference_distances.items()}
    models = {}
    for name, d in sample_distances.items():
        models[name] = {
            **_summary(d),
            "temperature": temperatures.get(name, 1.0),
            "tests": {ref: compare(d, rd) for ref, rd in reference_distances.items()},
        }
    return {
        "metric": "cosine distance, in the classifier's last hidden layer, from a drawing to its "
                  "nearest training drawing (the classifier's training drawings)",
        "classifier": classifier or {},
        "references": refs,
        "models": models,
    }


def _fmt(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


def table_markdown(table: dict) -> str:
    """The novelty table as markdown (one row per model, then the references)."""
    refs = list(table["references"])
    lines = ["# Novelty of samples: nearest-neighbour cosine distances", "", table["metric"] + ".", ""]
    c = table.get("classifier") or {}
    if c:
        acc = c.get("heldout_accuracy")
        lines += [f"Classifier: {c.get('n_classes')} characters, {c.get('n_train_drawings')} training "
                  f"drawings, held-out accuracy {_fmt(acc)} on {c.get('n_heldout_drawings')} "
                  f"drawings ({c.get('epochs')} epochs).", ""]
    head = ["model", "T", "n", "median", "IQR"]
    for r in refs:
        head += [f"Δ median vs {r}", "MWU p", "KS D", "KS p"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in table["models"].items():
        row = [name, _fmt(m["temperature"], "g"), str(m["n"]), _fmt(m["median"]),
               f"{_fmt(m['q25'])}-{_fmt(m['q75'])}"]
        for r in refs:
            t = m["tests"][r]
            row += [_fmt(t["median_difference"], "+.3f"), _fmt(t["mannwhitney_p"], ".2g"),
                    _fmt(t["ks_statistic"]), _fmt(t["ks_p"], ".2g")]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| reference | n | median | IQR | |", "|---|---|---|---|---|"]
    for name, r in table["references"].items():
        lines.append(f"| {name} | {r['n']} | {_fmt(r['median'])} | {_fmt(r['q25'])}-{_fmt(r['q75'])} "
                     f"| {r['description']} |")
    lines += ["", "Δ median < 0: the model's samples lie closer to the training drawings than the "
              "reference drawings do. MWU: two-sided Mann-Whitney U test; KS: two-sample "
              "Kolmogorov-Smirnov test.", ""]
    return "\n".join(lines)


def write_novelty_table(table: dict, out_dir: str | Path, stem: str = "novelty") -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``<stem>.json`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    md, js = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    atomic_write_text(md, table_markdown(table))
    atomic_write_text(js, json.dumps(table, indent=1))
    return md, js


# ------------------------------------------------------------------ the figure
def neighbour_rows(samples, neighbours, cell: int = 64) -> Image.Image:
    """Rows of [sample (red frame) | its neighbours]: samples (R,) characters, neighbours (R, k).

    Size: that of ``viz.character_grid`` with ``1 + k`` columns and R rows.
    """
    k = max((len(nb) for nb in neighbours), default=0)
    flat = []
    for s, nb in zip(samples, neighbours, strict=True):
        flat += [s, *nb, *([[]] * (k - len(nb)))]
    img = character_grid(flat, n_cols=1 + k, cell=cell, colour_strokes=False)
    draw = ImageDraw.Draw(img)
    full = cell + GRID_MARGIN
    for r in range(len(samples)):
        x0, y0 = GRID_MARGIN, GRID_MARGIN + r * full
        draw.rectangle([x0 - 2, y0 - 2, x0 + cell + 1, y0 + cell + 1], outline=FRAME_COLOUR, width=2)
    return img


def novelty_figure(rows: Mapping[str, tuple[Sequence, Sequence]], cell: int = 64) -> Image.Image:
    """Fig. 6: per model (title) a block of :func:`neighbour_rows`, blocks side by side."""
    return hstack([titled(neighbour_rows(s, nb, cell), title) for title, (s, nb) in rows.items()])
