"""Time helpers. The store keeps naive UTC; the API speaks aware times with offsets."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now as naive UTC, the store's convention."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_store(value: datetime) -> datetime:
    """An aware datetime as naive UTC for the store."""
    if value.tzinfo is None:
        raise ValueError("a time without a UTC offset cannot be stored")
    return value.astimezone(UTC).replace(tzinfo=None)


def from_store(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)
