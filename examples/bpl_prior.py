"""Fit the BPL-style parametric prior to Omniglot drawings and sample from it.

Run: python examples/bpl_prior.py [--source PATH]
PATH defaults to the downloaded data (`pyrochar data download`), else the
6-alphabet copy in ../shared/omniglot beside the repository. Fits on all
alphabets but one and scores the held-out alphabet; writes bpl_samples.png.
"""

import argparse
from pathlib import Path

from pyrochar.data.download import default_data_dir
from pyrochar.data.loader import BatchSource
from pyrochar.data.prepare import prepare_dataset
from pyrochar.data.splits import make_split
from pyrochar.errors import PyrocharError
from pyrochar.models import BPLPrior
from pyrochar.sampling import sample_characters
from pyrochar.scoring import score
from pyrochar.trivial_model import trivial_model_nll
from pyrochar.viz import character_grid

parser = argparse.ArgumentParser()
parser.add_argument("--source", default=None)
args = parser.parse_args()
shared = Path(__file__).resolve().parents[2] / "shared" / "omniglot"
source = args.source or (default_data_dir() if default_data_dir().exists() else shared)
print(f"data: {source}")

try:
    data = prepare_dataset(source, progress=False)
except PyrocharError as err:  # no data here: say so in one line, not a traceback
    raise SystemExit(f"Error: {err}") from None
split = make_split("alphabet:0", data.character_keys())
train = data.select_characters(split.train + split.validation)
test = data.select_characters(split.test)

prior = BPLPrior.fit(train)  # EM for the mixtures, closed form for the hazards
nll = score(prior, BatchSource(test)).mean
print(f"held-out alphabet {', '.join(sorted(set(test.meta['alphabet'].tolist())))}: BPL-style prior "
      f"{nll:.2f} nats per character (trivial model {trivial_model_nll(train, test)['mean_nll']:.2f})")

characters = sample_characters(prior, 36, seed=0)
character_grid(characters).save("bpl_samples.png")
print("wrote bpl_samples.png (strokes drawn independently of one another)")
