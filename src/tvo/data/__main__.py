"""``python -m tvo.data NAME [--root PATH]``: prepare a dataset and print its description."""

import argparse
import json
import sys
import time

from tvo.data import DATASETS, DataError, load


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tvo.data", description=__doc__)
    parser.add_argument("name", help=f"one of {', '.join(DATASETS)}, or a .npz/.npy path")
    parser.add_argument("--root", help="local files for the dataset (see tvo.data.load)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        dataset = load(args.name, args.root)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    description = dataset.describe()
    description["seconds"] = round(time.perf_counter() - start, 3)
    print(json.dumps(description, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
