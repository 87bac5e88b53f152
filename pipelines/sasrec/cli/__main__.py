"""``python -m sasrec.cli``: the same as the ``sasrec`` script."""

import sys

from sasrec.cli.main import main

sys.exit(main())
