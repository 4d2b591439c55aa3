"""The character models, behind one contract (:mod:`pyrochar.models.base`)."""

from __future__ import annotations

from .base import CharacterModel
from .baseline import BaselineConfig, BaselineLSTM
from .bpl import BPLConfig, BPLPrior
from .full_ns import FullNSConfig, GenerateCharacter
from .hlstm import HierarchicalLSTM, HLSTMConfig

MODELS: dict[str, type[CharacterModel]] = {
    GenerateCharacter.name: GenerateCharacter,
    HierarchicalLSTM.name: HierarchicalLSTM,
    BaselineLSTM.name: BaselineLSTM,
    BPLPrior.name: BPLPrior,
}


def model_class(name: str) -> type[CharacterModel]:
    from ..errors import PyrocharError

    try:
        return MODELS[name]
    except KeyError:
        raise PyrocharError(
            f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}"
        ) from None


def build_model(name: str, config: dict | None = None) -> CharacterModel:
    """A new model of the named kind, with the config's fields overriding the defaults."""
    from ..errors import PyrocharError
    from .config_check import validate_config

    cls = model_class(name)
    try:
        cfg = cls.config_class(**validate_config(name, cls.config_class, config))
    except TypeError as e:
        raise PyrocharError(f"bad config for model {name!r}: {e}") from None
    return cls(cfg)


__all__ = [
    "MODELS", "BPLConfig", "BPLPrior", "BaselineConfig", "BaselineLSTM", "CharacterModel",
    "FullNSConfig", "GenerateCharacter", "HLSTMConfig", "HierarchicalLSTM", "build_model",
    "model_class",
]
