"""Lightning integration: the logger, its callbacks and the capture of media.

These modules translate Lightning's events and a user's objects (tensors, images,
figures, tables) into what the writers take; they need torch and Lightning, the read
side never imports them.
"""

# first: without torch or Lightning this fails naming the extra to install, before any module needs them
from lightning_tracker.integration import _compat  # noqa: F401
