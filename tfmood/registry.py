"""A tiny name -> object registry: models and recipes are looked up by name, never by if/elif chains."""


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries = {}

    def register(self, name: str):
        """Decorator: `@MODELS.register("mobilenetv2")` on a builder function or class."""
        def decorate(obj):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice.")
            self._entries[name] = obj
            return obj
        return decorate

    def get(self, name: str):
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise LookupError(f"Unknown {self.kind} {name!r}. Known {self.kind}s: {known}.") from None

    def names(self) -> list:
        return sorted(self._entries)

    def describe(self) -> dict:
        """name -> first line of the entry's docstring (for `--list-models`)."""
        return {n: (self._entries[n].__doc__ or "").strip().splitlines()[0] if self._entries[n].__doc__ else ""
                for n in self.names()}

    def __contains__(self, name):
        return name in self._entries
