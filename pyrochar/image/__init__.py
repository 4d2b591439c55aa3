"""Characters as images: reading pictures, the token and image model, parsing.

- :mod:`pyrochar.image.io`: pictures -> the 105 x 105 ink frame;
- :mod:`pyrochar.image.render`: the differentiable, batched image renderer;
- :mod:`pyrochar.image.model`: the token and image Pyro sites over a type model;
- :mod:`pyrochar.image.refine`: MAP refinement of candidate parses.

See docs/image_model.md.
"""

#: Parses kept per image, at most (each is refined, drawn and written: time and memory grow with it).
MAX_K = 20
