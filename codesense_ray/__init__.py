"""codesense: a self-hosted code intelligence assistant built on Ray (Data, Train, Serve).

Importing the package is cheap on purpose: torch, ray.serve and vllm load only inside the code that needs
them (a model backend, the Serve app), so the CLI and KFP components start fast.
"""

__version__ = "0.1.0"
