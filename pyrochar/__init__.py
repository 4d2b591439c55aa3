"""pyrochar: neuro-symbolic generative models of handwritten characters on Pyro.

Implements Feinman & Lake (2020), "Generating new concepts with hybrid
neuro-symbolic models".
"""

__version__ = "0.1.0"
