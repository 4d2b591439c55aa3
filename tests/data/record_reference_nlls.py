"""Record the NLL of every fixture drawing under the four shipped models.

tests/test_reference_nlls.py compares the current code against the values this
script wrote (tests/data/reference_nlls.json) to 1e-4 nats per drawing: a
refactoring of the models must not change what they compute. Rerun it only when
a change of the numbers is intended, and say so in the commit:

    python tests/data/record_reference_nlls.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
MODELS = ("full-ns", "hlstm", "baseline", "bpl")


def main() -> None:
    from pyrochar.checkpoint import load_pretrained
    from pyrochar.data.loader import BatchSource
    from pyrochar.data.prepare import prepare_dataset
    from pyrochar.scoring import score

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as cache:
        ds = prepare_dataset(HERE / "omniglot", cache_dir=cache)
    keys = [ds.key(d) for d in range(len(ds))]
    out = {"drawings": keys, "models": {}}
    for name in MODELS:
        model = load_pretrained(name).eval()
        source = BatchSource(ds, with_canvases=model.uses_canvases)
        scores = score(model, source, batch_size=len(ds))
        out["models"][name] = {
            "nll": [round(float(v), 6) for v in scores.nll],
            "breakdown": {k: [round(float(x), 6) for x in v] for k, v in scores.breakdown.items()},
        }
        print(f"{name}: mean NLL {scores.mean:.4f} over {len(keys)} drawings")
    (HERE / "reference_nlls.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
