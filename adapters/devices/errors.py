"""The one error an adapter raises for a payload it must refuse."""

from __future__ import annotations


class DecodeError(ValueError):
    """A payload that cannot be read, with the field and byte offset where reading failed.

    The message is meant for the vendor debugging an upload: it says which field, where in the
    payload, and what was wrong. It never contains patient identity (payloads carry none).
    """

    def __init__(self, message: str, *, field: str | None = None, offset: int | None = None) -> None:
        self.reason = message
        self.field = field
        self.offset = offset
        where = []
        if field is not None:
            where.append(f"field '{field}'")
        if offset is not None:
            where.append(f"byte offset {offset}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)

    @property
    def location(self) -> str | None:
        """A short location string such as ``systolic@1`` (field@offset) for OperationOutcome.location."""
        if self.field is None and self.offset is None:
            return None
        if self.offset is None:
            return self.field
        return f"{self.field or 'payload'}@{self.offset}"
