"""localstripe lists objects of one type from an index of that type, not by walking its store.

localstripe keeps every object in one dict, `store`, keyed "<object type>:<id>", and lists
any type by walking the whole dict for that prefix. A charge's `refunds` and
`amount_refunded` are such lists, so every PaymentIntent confirmed walks the store twice,
and the stand-in slowed as its store filled (with localstripe_server's whole-store writes,
from ~60 PaymentIntents a second when empty to ~1 at 20,000 intents): a benchmark of a
billing day timed localstripe rather than the platform.

Here the store also keeps, per type, a dict of that type's entries (same keys, same
objects), updated wherever localstripe writes the store, and the base list reads it. A dict
keeps insertion order and a key written again keeps its place, in the store as in its
type's dict, so a list holds the same objects in the same order as the walk did: each
type's own sorting, filters, `limit` and `starting_after` then run unchanged on it.

This patches localstripe's internals as of 1.15.10 (the version uv.lock pins); importing
this module checks they are still there and stops the stand-in with one line if they moved.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from localstripe import resources

WRITTEN_FOR = "1.15.10"


def _require(owner: Any, *names: str) -> None:
    missing = [name for name in names if name not in vars(owner)]
    if missing:
        raise SystemExit(
            f"localstripe {version('localstripe')} has no {owner.__name__}."
            f"{', '.join(missing)}: paywall/stack/localstripe_index.py patches "
            f"localstripe {WRITTEN_FOR}'s; adapt it to this version"
        )


# Store's own __setitem__/__delitem__ are what every write goes through (they pickle the
# store, which localstripe_server turns into marking it dirty); the base list is the only walk.
_require(resources.Store, "__setitem__", "__delitem__", "try_load_from_disk", "dump_to_disk")
_require(resources.StripeObject, "_api_list_all")
_require(resources, "store", "List")
if not isinstance(resources.store, resources.Store):
    raise SystemExit(
        f"localstripe {version('localstripe')}: resources.store is no Store; "
        f"paywall/stack/localstripe_index.py patches localstripe {WRITTEN_FOR}'s"
    )


class TypeIndex:
    """Each type's entries of the store, in the store's order."""

    def __init__(self) -> None:
        self.by_type: dict[str, dict[str, Any]] = {}

    def put(self, key: object, value: Any) -> None:
        # The walk listed "<type>:<id>" keys only; "balance" (no colon) is never listed.
        if isinstance(key, str) and ":" in key:
            self.by_type.setdefault(key.partition(":")[0], {})[key] = value

    def drop(self, key: object) -> None:
        if isinstance(key, str) and ":" in key:
            self.by_type.get(key.partition(":")[0], {}).pop(key, None)

    def rebuild(self, store: dict[str, Any]) -> None:
        self.by_type.clear()
        for key, value in store.items():
            self.put(key, value)

    def of(self, kind: str) -> list[Any]:
        # A new list each time: the types' own listings sort and filter it in place.
        return list(self.by_type.get(kind, {}).values())


def install() -> TypeIndex:
    """Keep an index beside localstripe's store and list from it; returns the index."""
    from localstripe.errors import UserError

    index = TypeIndex()
    store_class = resources.Store
    setitem = store_class.__setitem__
    delitem = store_class.__delitem__

    def indexed_setitem(self: dict[str, Any], key: str, value: Any) -> None:
        setitem(self, key, value)
        index.put(key, value)

    def indexed_delitem(self: dict[str, Any], key: str) -> None:
        delitem(self, key)
        index.drop(key)

    # Writes that bypass __setitem__/__delitem__: DELETE /_config/data clears the store, and
    # loading the state file fills it with update(). Version 1.15.10 uses no other dict
    # method to change it (pop, setdefault, popitem, |=).
    def indexed_clear(self: dict[str, Any]) -> None:
        dict.clear(self)
        index.by_type.clear()

    def indexed_update(self: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        dict.update(self, *args, **kwargs)
        index.rebuild(self)

    def listed(
        cls: Any, url: Any, limit: Any = None, starting_after: Any = None, **kwargs: Any
    ) -> Any:
        # The walk's contract, argument checks and errors included; only the source differs.
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        page = resources.List(url, limit=limit, starting_after=starting_after)
        page._list = index.of(cls.object)
        return page

    store_class.__setitem__ = indexed_setitem
    store_class.__delitem__ = indexed_delitem
    store_class.clear = indexed_clear
    store_class.update = indexed_update
    resources.StripeObject._api_list_all = classmethod(listed)
    index.rebuild(resources.store)  # whatever the store already holds
    return index
