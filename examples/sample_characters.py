"""Sample new characters from the shipped Full NS model at two temperatures.

Run: python examples/sample_characters.py   (writes samples_T1.0.png and samples_T0.5.png)
"""

from pyrochar import load_pretrained
from pyrochar.sampling import sample_characters
from pyrochar.viz import character_grid

model = load_pretrained("full-ns")
for temperature in (1.0, 0.5):
    characters = sample_characters(model, 16, temperature=temperature, seed=0)
    path = f"samples_T{temperature}.png"
    character_grid(characters, n_cols=8).save(path)
    strokes = [len(c) for c in characters]
    print(f"{path}: 16 characters, {sum(strokes) / len(strokes):.1f} strokes on average")
