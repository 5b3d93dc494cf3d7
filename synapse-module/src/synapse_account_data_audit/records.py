"""What an outbox row holds, what its chain link covers, and how the delivery protocol carries it (README,
"Delivery protocol"). The table itself is in ``outbox``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import chain
from .keyed_digest import keyed_digest, keyed_digest_of_key

#: What an outbox row is: an account-data change the callback saw, one that crash recovery found in
#: Synapse's tables, or a notice that earlier values of some keys were overwritten before they were recorded.
KIND_CHANGE = "change"
KIND_RECOVERED = "recovered"
KIND_GAP = "gap"
#: A user was deactivated or reactivated (Synapse deletes a deactivated user's account data without calling
#: the account-data callback; ``content`` says which, and by whom).
KIND_DEACTIVATION = "deactivation"
#: Nothing was written for ``checkpoint_interval_seconds``: a record that only carries the chain on, so an
#: auditor can tell an idle trail from one that stopped (see ``checkpoints``).
KIND_CHECKPOINT = "checkpoint"

#: Kinds whose ``content`` is account data (size, salted commitment and salt on the wire, chain version 2).
CONTENT_KINDS = frozenset({KIND_CHANGE, KIND_RECOVERED})

#: Where a change was found (``NewChange.source``; on the wire only when not the callback).
SOURCE_CALLBACK = "callback"
SOURCE_TAGS = "tags"
SOURCE_PUSH_RULES = "push_rules"


@dataclass(frozen=True)
class NewChange:
    """A change as the callback recorded it (or recovery found it), before it has a sequence number."""

    change_id: str
    user_id: str
    room_id: str | None
    account_data_type: str
    content: str
    created_ts: int
    kind: str = KIND_CHANGE
    #: The change's position in Synapse's account-data stream, where it is known (see ``claims``).
    stream_id: int | None = None
    #: For a gap notice: its JSON (the keys concerned and how many values were lost).
    details: str | None = None
    #: The keyed digest (see ``keyed_digest``), set when written (``seal``); None for a checkpoint.
    keyed_digest: str | None = None
    #: The hash chain (see ``chain``), set when written.
    prev_hash: str | None = None
    hash: str | None = None
    #: A content record's salt (chain version 2), set when written and when fetched for delivery. Never
    #: stored: it is derived from the keyed-digest key (``chain.salt_for``).
    salt: str | None = None
    #: Where the change was found: the account-data callback, or Synapse's tables polled for what the
    #: callback never sees (``SOURCE_TAGS``, ``SOURCE_PUSH_RULES``; see ``poller``). Not in the chain: like
    #: ``recovered``, it says how the change was seen, not what it was.
    source: str = SOURCE_CALLBACK

    @property
    def has_content(self) -> bool:
        return self.kind in CONTENT_KINDS

    @property
    def content_size(self) -> int | None:
        return chain.content_size(self.content) if self.has_content else None

    @property
    def commitment(self) -> str | None:
        """The salted commitment to the content (a content record with its salt), else None."""
        if not self.has_content or self.salt is None:
            return None
        return chain.commitment(self.salt, self.content)


def seal(key: bytes, change: NewChange) -> NewChange:
    """``change`` with its keyed digest and (a content record) its salt, as chain version 2 covers them."""
    if change.kind == KIND_GAP:
        keyed: str | None = keyed_digest(key, change.details or "{}")
    elif change.kind == KIND_CHECKPOINT:
        keyed = None
    else:
        # A deactivation's "value" is its facts, under the user's key with no room and no type.
        keyed = keyed_digest_of_key(
            key, change.user_id, change.room_id, change.account_data_type, change.content
        )
    salt = chain.salt_for(key, change.change_id) if change.has_content else None
    return replace(change, keyed_digest=keyed, salt=salt)


def link_hash(change: NewChange, seq: int, prev_hash: str) -> str:
    """The chain version 2 hash of a sealed ``change`` at ``seq``."""
    if change.has_content and change.salt is None:
        raise ValueError(f"change {change.change_id} is not sealed: its commitment needs its salt")
    return chain.record_hash_v2(
        chain.LinkV2(
            seq=seq,
            change_id=change.change_id,
            ts=change.created_ts,
            kind=change.kind,
            user_id=change.user_id,
            room_id=change.room_id,
            account_data_type=change.account_data_type,
            content_size=change.content_size,
            commitment=change.commitment,
            keyed_digest=change.keyed_digest,
            prev_hash=prev_hash,
        )
    )


@dataclass(frozen=True)
class OutboxRow(NewChange):
    """A change in the outbox, with its sequence number."""

    seq: int = field(kw_only=True)
    #: The first seq of the digest this row is delivered in, or 0 to go alone, once decided (see
    #: ``digest_mode``); never changes.
    digest_group: int | None = field(default=None, kw_only=True)
    #: The chain version the row's hash was computed with: 1 for rows written before version 2 (NULL in the
    #: table), so they go out, and verify, exactly as they were written.
    chain_version: int = field(default=1, kw_only=True)

    def to_wire(self, without_content: bool = False, content_cap: int | None = None) -> dict[str, Any]:
        """The row as the delivery protocol carries it (``content`` stays JSON text). ``without_content``:
        ``content`` is null and ``content_omitted`` says how large it was (the appservice could not take it in
        any request, and posts the change quarantined); a version 2 row keeps its size, commitment and salt,
        so its link still checks. ``content_cap``: the same for a content of more bytes than that
        (``max_content_bytes``): reading a value of tens of megabytes would cost the appservice gigabytes."""
        wire: dict[str, Any] = {"id": self.change_id, "seq": self.seq, "ts": self.created_ts}
        if self.kind == KIND_GAP:
            wire.update(kind=KIND_GAP, gap=json.loads(self.details or "{}"))
        elif self.kind == KIND_CHECKPOINT:
            wire.update(kind=KIND_CHECKPOINT)
        elif self.kind == KIND_DEACTIVATION:
            facts = json.loads(self.content)
            wire.update(
                kind=KIND_DEACTIVATION,
                user_id=self.user_id,
                deactivated=bool(facts.get("deactivated")),
                by_admin=bool(facts.get("by_admin")),
            )
        else:
            wire.update(
                user_id=self.user_id,
                room_id=self.room_id,
                type=self.account_data_type,
            )
            size = chain.content_size(self.content)
            over_cap = content_cap is not None and size > content_cap
            wire["content"] = None if without_content or over_cap else self.content
            if without_content or over_cap:
                reason = "too_large" if without_content else "over_cap"
                wire["content_omitted"] = {"size": size, "reason": reason}
            if self.kind == KIND_RECOVERED:
                wire["recovered"] = True
            if self.source != SOURCE_CALLBACK:
                wire["source"] = self.source
            if self.chain_version >= 2:
                if self.salt is None:
                    raise ValueError(f"seq {self.seq} goes out without its salt (see AuditStore.fetch_batch)")
                wire.update(content_size=self.content_size, commitment=self.commitment, salt=self.salt)
        if self.keyed_digest is not None:
            wire["keyed_digest"] = self.keyed_digest
        if self.hash is not None:
            wire["chain"] = {"prev": self.prev_hash, "hash": self.hash}
            if self.chain_version >= 2:
                wire["chain"]["version"] = self.chain_version
        if self.digest_group:  # 0: decided to go alone
            wire["digest_group"] = self.digest_group
        return wire


def with_salts(key: bytes, rows: list[OutboxRow]) -> list[OutboxRow]:
    """``rows`` as fetched, with their salts (derived from ``key``, not stored: the same on every delivery
    of a row, after any restart, on any instance)."""
    return [replace(row, salt=chain.salt_for(key, row.change_id)) if row.has_content else row for row in rows]


def _to_json_compatible(value: object) -> object:
    # Synapse may hand us immutable mappings (e.g. from its caches); json only knows dict.
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, frozenset)):
        return list(value)
    raise TypeError(f"Cannot serialise {type(value).__name__} in account data")


def encode_content(content: Mapping[str, Any]) -> str:
    """JSON text of the content; floats keep Python's repr, so the appservice sees 1.0 as 1.0."""
    return json.dumps(content, separators=(",", ":"), allow_nan=False, default=_to_json_compatible)
