"""The one progress display of every command: a tqdm bar on stderr."""

from __future__ import annotations

import sys


def progress_bar(enabled: bool, **kwargs):
    """A tqdm bar on stderr, or None when not ``enabled``."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(dynamic_ncols=True, file=sys.stderr, **kwargs)
