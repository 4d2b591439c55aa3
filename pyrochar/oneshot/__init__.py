"""One-shot classification on Omniglot (Lake et al. 2015's protocol).

* :mod:`pyrochar.oneshot.runs`: build development runs in the official layout
  from Omniglot images, and read runs (official or built) with clear errors.
* :mod:`pyrochar.oneshot.mhd`: the modified Hausdorff distance baseline.
* :mod:`pyrochar.oneshot.classify`: classify every test item of a set of runs,
  resumably, with per-run errors, every score and a picture per run.

See docs/oneshot.md.
"""
