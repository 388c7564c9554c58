"""``python -m tvo``: the ``tvo`` command (``tvo.cli``), for an environment whose scripts are not
on the ``PATH``."""

import sys

from tvo.cli import main

if __name__ == "__main__":
    sys.exit(main())
