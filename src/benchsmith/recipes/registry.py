"""The recipe registry: recipe name -> RecipeSpec.

Built-in recipes register through `register`, exactly as a third-party one does; packages can
also add recipes through the entry point group `benchsmith.recipes` (each entry point loads a
RecipeSpec or a sequence of them). Entry points are read once, on the first lookup.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


from benchsmith.errors import BenchsmithError
from benchsmith.recipes.base import Recipe
from benchsmith.recipes.context import RecipeContext
from benchsmith.recipes.spec import CliFlag, CliVerb, RecipeSpec  # noqa: F401 - re-exported

ENTRY_POINT_GROUP = "benchsmith.recipes"
# The recipe of a config that names none.
DEFAULT_RECIPE = "plans"


class UnknownRecipe(LookupError):
    """No recipe of that name is registered (the message lists the known ones)."""


_registry: dict[str, RecipeSpec] = {}
_entry_point_errors: dict[str, str] = {}
_loaded = False


def register(spec: RecipeSpec, *, replace: bool = False) -> RecipeSpec:
    """Add a recipe. A second recipe of the same name is refused unless `replace`."""
    old = _registry.get(spec.name)
    if old is not None and old is not spec and not replace:
        raise ValueError(f"a recipe named {spec.name!r} is already registered")
    _registry[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _registry.pop(name, None)


def _builtins() -> Iterable[RecipeSpec]:
    from benchsmith.recipes.agentless import BUGFIX, TESTGEN
    from benchsmith.recipes.edit_predict import RECIPE as EDIT_PREDICT
    from benchsmith.recipes.plans import RECIPE as PLANS
    from benchsmith.recipes.skyrl_tools import RECIPE as SKYRL_TOOLS

    return (PLANS, BUGFIX, TESTGEN, EDIT_PREDICT, SKYRL_TOOLS)


def builtin_names() -> list[str]:
    """The names of the recipes benchsmith ships (they come first where names compete)."""
    return [s.name for s in _builtins()]


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for spec in _builtins():
        register(spec, replace=True)
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
            specs = loaded if isinstance(loaded, (list, tuple)) else [loaded]
            for spec in specs:
                if not isinstance(spec, RecipeSpec):
                    raise TypeError(f"{ep.value} is not a RecipeSpec")
                register(spec)  # a name taken (by a built-in) is refused, and reported
        except Exception as e:  # a broken plug-in must not break the other recipes
            _entry_point_errors[ep.name] = f"{ep.value}: {type(e).__name__}: {e}"


def names() -> list[str]:
    _load()
    return sorted(_registry)


def load_errors() -> dict[str, str]:
    """Entry points that registered nothing, by name: why (import error, name taken, ...)."""
    _load()
    return dict(_entry_point_errors)


class RecipeBuildError(BenchsmithError):
    """A recipe's `build` raised (a bug or a missing resource of the recipe)."""


def get_spec(name: str) -> RecipeSpec:
    _load()
    spec = _registry.get(name)
    if spec is not None:
        return spec
    if name in _entry_point_errors:
        raise UnknownRecipe(f"recipe {name!r} failed to load ({_entry_point_errors[name]})")
    raise UnknownRecipe(
        f"unknown recipe {name!r}; installed: {', '.join(names())} (a package adds one through "
        f"the `{ENTRY_POINT_GROUP}` entry point group)"
    )


def legacy_keys() -> tuple[str, ...]:
    """Top-level config keys that are old names of `recipe_options` for some recipe."""
    _load()
    return tuple(dict.fromkeys(k for s in _registry.values() for k in s.aliases))


def get_recipe(name: str, options: Any, ctx: RecipeContext) -> Recipe:
    """Build the named recipe from validated options (or a mapping of them)."""
    spec = get_spec(name)
    if not isinstance(options, spec.Options):
        options = spec.options(options)
    try:
        return spec.build(options, ctx)
    except BenchsmithError:
        raise
    except Exception as e:  # a plug-in's bug: one line, not a traceback
        raise RecipeBuildError(
            f"recipe {name!r} cannot be built ({type(e).__name__}: {e})"[:500]) from e
