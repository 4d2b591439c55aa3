"""The paper's qualitative analysis ("Generating new concepts"), as pictures and a table.

- :mod:`.predictions`: Fig. 3, Full NS's termination, location and stroke
  predictions along a held-out character;
- :mod:`.grids`: Fig. 5 (samples of every model and real characters side by
  side) and Fig. 8 (Full NS samples with their strokes in colour, T = 1 and 0.5);
- :mod:`.novelty`: Fig. 6 (each sample and its 5 nearest training drawings in the
  last hidden layer of a CNN classifier), the classifier, and a novelty table
  comparing the nearest-neighbour distances of samples and of real held-out drawings;
- :mod:`.topology`: Fig. 7 (100 samples at T = 0.5 on a 10 x 10 grid where
  neighbours look alike, beside their nearest training drawings);
- :mod:`.run`: :func:`make_figures`, all of the above into one folder (the
  ``pyrochar figures`` command).

Pictures are drawn with pillow only (heatmaps are a white-to-blue ramp).
"""

from .run import FILES, FiguresResult, make_figures

__all__ = ["FILES", "FiguresResult", "make_figures"]
