"""Score a drawing with the shipped Full NS model and print its per-site breakdown.

Run: python examples/score_drawing.py [drawing.json | IIII_DD.txt]

Without an argument it scores a character the model draws itself. The NLL is in
nats, summed over every site of the drawing (docs/model.md lists the sites).
"""

import sys

import pyro
import pyro.poutine as poutine
import torch

from pyrochar import load_pretrained, splines
from pyrochar.data.jsonio import read_drawing_file
from pyrochar.models.batch import CharacterBatch
from pyrochar.models.sites import site_variable
from pyrochar.sampling import sample_batch

model = load_pretrained("full-ns")
if len(sys.argv) > 1:
    drawing = read_drawing_file(sys.argv[1])[0]
    controls = [splines.to_normalized(cp) for cp in splines.preprocess_drawing(drawing.strokes)]
    batch = CharacterBatch.from_control_points([controls])
else:
    pyro.set_rng_seed(0)
    batch = sample_batch(model, 1)

# Condition the per-step Pyro model on every site of the drawing and trace it.
conditioned = poutine.condition(model.model, data=batch.condition_dict())
with torch.no_grad():
    trace = poutine.trace(conditioned).get_trace(batch_size=1)
trace.compute_log_prob()
totals = {}
print(f"{'site':<18} {'log p':>9}")
for name, site in trace.nodes.items():
    # the drawing's sites; the masked padding sites up to the model's caps score 0
    if site["type"] == "sample" and site_variable(name) and not site["infer"].get("padding"):
        lp = float(site["log_prob"].sum())
        totals[site_variable(name)] = totals.get(site_variable(name), 0.0) + lp
        print(f"{name:<18} {lp:9.3f}")
print(f"\n{int(batch.n_strokes[0])} strokes; NLL {-sum(totals.values()):.3f} nats")
for kind, lp in totals.items():
    print(f"  {kind:<12} {-lp:8.3f}")
