"""``python -m tvo.sweep --worker RUN_DIR… --evaluation JSON``: one unit of work of a sweep, as
the local executor starts it (``tvo.sweep.local``)."""

import json
import sys
from pathlib import Path

from tvo.sweep.worker import watch_parent, work_or_report

USAGE = "usage: python -m tvo.sweep --worker RUN_DIR… --evaluation JSON (started by tvo sweep)"

if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) < 4 or args[0] != "--worker" or args[-2] != "--evaluation":
        sys.exit(USAGE)
    watch_parent()
    sys.exit(work_or_report([Path(a) for a in args[1:-2]], json.loads(args[-1])))
