"""A user's model by name: ``package.module:Name`` or ``path/to/file.py:Name``, a class or a
factory that returns a model implementing the protocol of ``tvo.models.base``.

It is imported with the current folder on the import path (as ``python -m`` would), so
``tvo train --model mymodels:MixBern`` works from the folder that holds ``mymodels.py``. A run
records the file its model came from (``model_source``, an absolute path); a later process
(``tvo eval``, ``--resume``, a sweep's worker) that cannot import the module by name looks
beside that file before it gives up, with an error naming both, and a ``path/to/file.py:Name``
given relative to the folder it was trained from is that recorded file, from any folder.

``instantiate`` calls the class or factory with the user's keyword arguments and, where its
signature takes them and the user did not give them, the data's ``pixels`` and ``data_mean``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path


class ModelError(ValueError):
    """A model that cannot be found, built or used; the message names it and the fix."""


def is_spec(name: str) -> bool:
    """Whether ``name`` names a user's model (``module:Name`` or ``file.py:Name``)."""
    return ":" in str(name)


def _module_root(file: str, module: str) -> Path:
    """The folder that must be on the import path for ``module`` (defined in ``file``)."""
    path = Path(file).resolve()
    depth = module.count(".") + (1 if path.name == "__init__.py" else 0)
    return path.parents[depth]


def _import_module(module: str, source: str | None):
    """``module`` imported by name: with the current folder on the path, else from beside the
    file a run recorded for it."""
    roots = [os.getcwd()]
    if source:
        roots.append(str(_module_root(source, module)))
    errors = []
    for root in roots:
        added = root not in sys.path
        if added:
            sys.path.insert(0, root)
        try:
            return importlib.import_module(module)
        except ImportError as error:
            errors.append(error)
        finally:
            if added:
                sys.path.remove(root)
    recorded = f" (this run's model was imported from {source})" if source else ""
    raise ModelError(
        f"cannot import module {module!r}{recorded}: {errors[-1]}; run from the folder that "
        "holds it or add that folder to PYTHONPATH"
    ) from errors[-1]


def _import_file(path: str):
    """The module defined by a ``.py`` file, registered in ``sys.modules`` under its stem."""
    file = Path(path).resolve()
    if not file.is_file():
        raise ModelError(f"{path}: no such file (expected a Python file defining the model)")
    name = file.stem
    existing = sys.modules.get(name)
    if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == file:
        return existing
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
    return module


def _model_file(location: str, source: str | None) -> str:
    """The file of a ``file.py:Name`` model: the one a run recorded (``source``, absolute)
    where it still exists, so that a relative path works from any folder; else ``location``
    from here. Neither found: an error naming both."""
    if source and Path(source).is_file():
        return source
    if source and not Path(location).is_file():
        raise ModelError(
            f"{location}: no such file here ({os.getcwd()}), nor at {source}, where this run's "
            "model was imported from; put the file back or run from the folder it is relative to"
        )
    return location


def load_spec(spec: str, source: str | None = None):
    """The class or factory that ``spec`` names. ``source`` is the file a run recorded."""
    location, _, attribute = str(spec).rpartition(":")
    if not location or not attribute:
        raise ModelError(f"model {spec!r}: expected package.module:Name or path/to/file.py:Name")
    if location.endswith(".py"):
        module = _import_file(_model_file(location, source))
    else:
        module = _import_module(location, source)
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            found = sorted(n for n in dir(module) if not n.startswith("_"))[:12]
            raise ModelError(
                f"model {spec!r}: {module.__name__} has no {attribute!r} "
                f"(it has: {', '.join(found)})"
            )
        target = getattr(target, part)
    if not callable(target):
        raise ModelError(f"model {spec!r}: {attribute} is not a class or a function")
    return target


def import_class_module(spec: str, source: str | None) -> None:
    """Import the module of a model object's class (``spec`` is ``module:Name``), so that
    unpickling the object finds it: from the current folder, else from beside the file a run
    recorded (``source``). Nothing if it is imported already or cannot be: unpickling then
    says what it could not import."""
    module = str(spec).rpartition(":")[0]
    if not module or module.endswith(".py") or module == "__main__" or module in sys.modules:
        return
    try:
        _import_module(module, source)
    except ModelError:
        pass


def source_of(spec: str) -> str | None:
    """The file that defines the model ``spec`` names (recorded by a run), if any."""
    target = load_spec(spec)
    module = sys.modules.get(getattr(target, "__module__", ""), None)
    file = getattr(module, "__file__", None)
    return str(Path(file).resolve()) if file else None


def arguments(factory, kwargs: dict | None, pixels: int, data_mean) -> dict:
    """The keyword arguments ``factory`` is called with: ``kwargs``, plus ``pixels`` and
    ``data_mean`` where its signature takes them and ``kwargs`` lacks them. Arguments that do not
    fit the signature are a ``ModelError`` naming them."""
    kwargs = dict(kwargs or {})
    name = getattr(factory, "__qualname__", repr(factory))
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins and some C types have no signature
        return kwargs
    for key, value in (("pixels", pixels), ("data_mean", data_mean)):
        if key in signature.parameters and key not in kwargs:
            kwargs[key] = value
    try:
        signature.bind(**kwargs)
    except TypeError as error:
        raise ModelError(
            f"{name}{signature} cannot be called with {sorted(kwargs)}: {error}; give its "
            "keyword arguments with --model-args '{...}' (or model_args in TOML)"
        ) from error
    return kwargs


def instantiate(factory, kwargs: dict | None, pixels: int, data_mean):
    """``factory(**arguments(factory, kwargs, pixels, data_mean))``."""
    return factory(**arguments(factory, kwargs, pixels, data_mean))
