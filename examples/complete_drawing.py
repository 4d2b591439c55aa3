"""Complete a drawing from its first stroke with the shipped Full NS model.

Run: python examples/complete_drawing.py [drawing.json | IIII_DD.txt]
Writes completions.png: the kept first stroke in black, each completion's new
strokes in colour. Without an argument, the drawing to complete is one the model
draws itself (so the example needs no data).
"""

import sys

import pyro

from pyrochar import load_pretrained, splines
from pyrochar.complete import complete, log_likelihood_partial
from pyrochar.data.jsonio import read_drawing_file
from pyrochar.models.batch import CharacterBatch
from pyrochar.sampling import batch_to_controls, sample_batch
from pyrochar.viz import completion_grid

model = load_pretrained("full-ns")
if len(sys.argv) > 1:
    drawing = read_drawing_file(sys.argv[1])[0]
    controls = [splines.to_normalized(cp) for cp in splines.preprocess_drawing(drawing.strokes)]
    batch = CharacterBatch.from_control_points([controls])
else:
    pyro.set_rng_seed(3)
    batch = sample_batch(model, 1)

# poutine.condition on the first stroke's sites, then run the model forward:
# the completions come from the exact conditional distribution.
completions = complete(model, batch, keep_strokes=1, n=9, temperature=0.7, seed=0)
completion_grid(batch_to_controls(completions), keep_strokes=1).save("completions.png")
nll = -float(log_likelihood_partial(model, batch, keep_strokes=1)[0])
print(f"first stroke: NLL {nll:.2f} nats; wrote completions.png with 9 completions")
print("strokes per completion:", completions.n_strokes.tolist())
