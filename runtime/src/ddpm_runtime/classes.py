"""Class names of a class-conditional model, and how users name a class: by name or by index.

A conditional model has K classes, indices 0..K-1, and a "no class" index K (the row of its class
embedding that classifier-free guidance trains with dropped labels). ``--class`` takes a name
(case-insensitive; "_" for a space), an index, or ``all``.
"""

from __future__ import annotations

from .errors import UserError

ALL_CLASSES = "all"  # --class all: every class, in index order


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def check_class_names(names: tuple[str, ...] | list[str]) -> str | None:
    """A complaint about a list of class names, or None: they must be non-empty, distinct (as typed
    after --class), not "all", and a name made of digits must be its own index."""
    if len(names) < 2:
        return f"a conditional model needs at least two classes, got {len(names)}"
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            return f"class {index} has an empty name"
        key = _key(name)
        if key == ALL_CLASSES:
            return f"class {index} may not be named {name!r} (--class {ALL_CLASSES} means every class)"
        if key.isdigit() and int(key) != index:
            return f"class {index} is named {name!r}, which --class would read as class {int(key)}"
        if key in seen:
            return f"classes {seen[key]} and {index} have the same name {name!r}"
        seen[key] = index
    return None


def class_index(request: str, names: tuple[str, ...]) -> int:
    """The index of the class a user asked for (a name or a number)."""
    key = _key(str(request))
    if key.isdigit():
        index = int(key)
        if index < len(names):
            return index
        raise UserError(f"--class {request}: this model has classes 0..{len(names) - 1}")
    for index, name in enumerate(names):
        if _key(name) == key:
            return index
    raise UserError(f"--class {request!r}: unknown class (this model has: {', '.join(names)})")


def requested_classes(requests: tuple[str, ...] | list[str], names: tuple[str, ...]) -> tuple[int, ...]:
    """Indices for the --class values in order (``all`` expands to every class); repeats are kept."""
    indices: list[int] = []
    for request in requests:
        if _key(str(request)) == ALL_CLASSES:
            indices.extend(range(len(names)))
        else:
            indices.append(class_index(request, names))
    return tuple(indices)
