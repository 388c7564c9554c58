"""Objectives, one module per family; each has a pure function and a model-level class."""

from tvo.objectives.base import Objective, Output, Terms
from tvo.objectives.elbo import ELBO, VAE, elbo, vae
from tvo.objectives.iwae import IWAE, VIMCO, DReG, Reinforce, iwae, reinforce, vimco
from tvo.objectives.tvo import TVO, TVOReparam, TVOTerms, integration_weights, tvo
from tvo.objectives.wake_sleep import RWS, InferenceCompilation, WakeSleep, rws, sleep_phi

OBJECTIVES = {
    "tvo": TVO,
    "tvo-reparam": TVOReparam,
    "elbo": ELBO,
    "vae": VAE,
    "iwae": IWAE,
    "dreg": DReG,
    "reinforce": Reinforce,
    "vimco": VIMCO,
    "rws": RWS,
    "ws": WakeSleep,
    "ic": InferenceCompilation,
}
TVO_OBJECTIVES = ("tvo", "tvo-reparam")  # the ones with a partition (K, schedule, β1)

__all__ = [
    "ELBO",
    "IWAE",
    "OBJECTIVES",
    "RWS",
    "TVO",
    "TVO_OBJECTIVES",
    "VAE",
    "VIMCO",
    "DReG",
    "InferenceCompilation",
    "Objective",
    "Output",
    "Reinforce",
    "TVOReparam",
    "TVOTerms",
    "Terms",
    "WakeSleep",
    "elbo",
    "integration_weights",
    "iwae",
    "reinforce",
    "rws",
    "sleep_phi",
    "tvo",
    "vae",
    "vimco",
]
