"""targetrun: Make's and Luigi's "skip what already exists" with Prefect 1's output
caching, on any storage fsspec can reach.

Read ``targetrun.api`` for the Python entry points and ``targetrun --help`` for the CLI.
"""

__version__ = "0.1.0"
