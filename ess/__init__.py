"""ess: how much synthetic data can you safely mix into training?"""

__version__ = "0.1.0"
