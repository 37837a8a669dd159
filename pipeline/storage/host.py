"""What the machine docvec runs on has: the memory that the embedded server's buffers, an index build's
memory and `docvec doctor`'s recommendations are shares of (the server is assumed local or alike)."""

from __future__ import annotations

import os


def machine_memory() -> int:
    """This machine's physical memory in bytes; 0 where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
