"""Datasets, loaded offline: the registry (``tvo.data.datasets``), the readers and the cache.

``tvo.data.load(name, root=None)`` returns a ``Dataset``; ``python -m tvo.data NAME``
prepares one and prints its description.
"""

from tvo.data.datasets import DATASETS, SPLITS, Dataset, check_images, from_arrays, load
from tvo.data.readers import DataError

__all__ = ["DATASETS", "SPLITS", "DataError", "Dataset", "check_images", "from_arrays", "load"]
