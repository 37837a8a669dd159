"""``python -m pipeline.cli``: the same as the ``docvec`` command."""

import sys

from pipeline.cli.main import main

sys.exit(main())
