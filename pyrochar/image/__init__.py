"""Characters as images: reading, rendering, the token and image model, parsing."""
