"""Models: the protocol (:mod:`tvo.models.base`) and the toy models with exact answers."""

from tvo.models.base import GenerativeModel, Model
from tvo.models.toy import DiscreteToy, LinearGaussian

__all__ = ["DiscreteToy", "GenerativeModel", "LinearGaussian", "Model"]
