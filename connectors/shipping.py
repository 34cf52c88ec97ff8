"""The shipment push, once for every platform: read the order's state, decide what is already done, call,
and turn the platform's refusals into rejections by their declared codes.

A platform gives its steps (``ShipmentSteps``: read, send, and where it has them update and follow-ups) and
a table (``ShipmentRules``); the order of the steps and what each outcome means live here
(``connectors.pushes`` for the result contract):

1. the carrier: the platform's code through ``connectors.carriers`` (``resolve_carrier`` may check it
   against the platform's live list); none -> ``rejected``, nothing sent;
2. ``read_shipment``: what the platform already holds for the order (the tracking numbers these lines
   shipped with, every number it shows, why nothing new can ship: closed, refunded, over quantity); this
   tracking already there -> ``already_done`` without a write (``on_already_done`` may finish what an
   earlier try left undone), so a replay after a lost answer never ships twice;
3. a correction (``previous_tracking_number`` shown on the platform, or a number the platform's read found
   this very shipment under) goes to ``update_tracking`` where the platform has one; a previous number that
   never reached the platform is shipped as new;
4. ``cannot_ship`` -> ``rejected``; else ``send_shipment``. A refusal whose code is declared
   ``already_shipped`` is read again (a push that raced another: ``already_done`` when this tracking is now
   there); one declared a refusal (by code or HTTP status) is ``rejected`` with the platform's words;
   anything else raises, so the caller's retry policy applies. Credential and quota trouble always raises.

A step may raise ``ShipmentRefused`` for what the push's own data rules out (a line the order does not
have): a rejection with that detail, nothing sent after it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.carriers import carrier_code
from connectors.errors import ApiError, AuthError, PageCapExceeded, QuotaExhausted
from connectors.pushes import PushResult, ShipmentPush


@dataclass(frozen=True, slots=True)
class ShipmentState:
    """What the platform holds for the order, as far as this push is concerned."""

    shipped_with: frozenset[str] = frozenset()  # tracking numbers every line of this push shipped with
    on_platform: frozenset[str] = frozenset()  # every number the order shows (where a correction looks)
    # A number the platform's read found this very shipment under, though the push names none (a ledger of
    # its own pushes, a fulfilment holding exactly these lines): corrected like a named previous number.
    replaces: str | None = None
    cannot_ship: str | None = None  # why nothing new can be recorded (closed, over quantity, no such order)
    platform_ref: str | None = None  # what to report for an ``already_done`` (fulfilment id, waybill, ...)
    detail: str = "already shipped with this tracking number"  # ... and in what words
    extra: Mapping[str, str] = field(default_factory=dict)
    order: Any = None  # the platform's own read, handed back to its send and update steps


def _default_words(error: ApiError) -> str:
    return f"{error.code}: {error.message}" if error.code else error.message


@dataclass(frozen=True)
class ShipmentRules:
    platform: str  # for the words of a rejection
    carrier_codes: Mapping[str, str]  # carrier key (connectors.carriers) -> the platform's code
    refusal_codes: frozenset[str] = frozenset()  # the platform's codes that retrying cannot fix
    refusal_statuses: frozenset[int] = frozenset()  # HTTP statuses that retrying cannot fix (REST shops)
    # Which other ``ApiError``s are refusals, for a platform whose refusal codes are open-ended (every
    # business answer about this request, where its trouble codes are declared on its ErrorPolicy).
    refuses: Callable[[ApiError], bool] | None = None
    already_shipped_codes: frozenset[str] = frozenset()  # "already shipped": read again before deciding
    messages: Mapping[str, str] = field(default_factory=dict)  # code -> what ops should do about it
    words: Callable[[ApiError], str] = _default_words  # the platform's words for a refusal
    # Extra for a refusal, e.g. {"status": "422"}: what a platform reported on its rejections before.
    refusal_extra: Callable[[ApiError], dict[str, str]] | None = None
    # A rejection for an unknown carrier; None: the name is sent as the warehouse wrote it (Shopify keeps an
    # unknown company without a tracking link).
    unknown_carrier: str | None = "carrier {carrier!r} has no {platform} code; known: {known}"


class ShipmentRefused(Exception):
    """What the push's own data (or the platform's answer to a step) rules out: a rejection, not a retry."""

    def __init__(self, detail: str, extra: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.result = PushResult("rejected", detail, extra=dict(extra or {}))


class ShipmentSteps:
    """A platform's steps. ``read_shipment`` and ``send_shipment`` are required; the others default to
    what a platform without them does."""

    def resolve_carrier(self, name: str, code: str | None) -> str | None:
        """What to send for the warehouse's carrier ``name``, given the table's ``code`` for it (None when
        the table has none); None rejects the push. A platform with a live carrier list checks it here."""
        return code

    def read_shipment(self, push: ShipmentPush, carrier: str) -> ShipmentState:
        raise NotImplementedError

    def send_shipment(self, push: ShipmentPush, carrier: str, state: ShipmentState) -> PushResult:
        """Record the shipment with the platform's code for the carrier."""
        raise NotImplementedError

    def update_tracking(
        self, push: ShipmentPush, carrier: str, state: ShipmentState, replacing: str
    ) -> PushResult:
        """Change the tracking of the parcel shipped as ``replacing``; a platform with no such call raises
        ``NotImplementedError`` (the correction is then rejected, never re-sent)."""
        raise NotImplementedError

    def on_already_done(
        self, push: ShipmentPush, carrier: str, state: ShipmentState, result: PushResult
    ) -> PushResult:
        """Finish what an earlier try left undone (a ledger note, a completion, a second service)."""
        return result


def refusal_words(rules: ShipmentRules, error: ApiError) -> str | None:
    """The platform's words when ``error`` is a declared refusal (retrying cannot fix it), else None.
    Credential, quota and paging trouble is never a refusal: the caller must see it."""
    if isinstance(error, AuthError | QuotaExhausted | PageCapExceeded):
        return None
    code = str(error.code) if error.code is not None else ""
    declared = (
        code in rules.refusal_codes
        or code in rules.already_shipped_codes
        or error.status in rules.refusal_statuses
        or (rules.refuses is not None and rules.refuses(error))
    )
    if not declared:
        return None
    advice = rules.messages.get(code)
    return rules.words(error) + (f" ({advice})" if advice else "")


def _rejection(rules: ShipmentRules, error: ApiError) -> PushResult | None:
    words = refusal_words(rules, error)
    if words is None:
        return None
    extra = rules.refusal_extra(error) if rules.refusal_extra is not None else {}
    return PushResult("rejected", words, extra=extra)


def push_shipment(steps: ShipmentSteps, rules: ShipmentRules, push: ShipmentPush) -> PushResult:
    try:
        return _push(steps, rules, push)
    except ShipmentRefused as refused:
        return refused.result
    except ApiError as error:
        rejection = _rejection(rules, error)
        if rejection is None:
            raise
        return rejection


def _push(steps: ShipmentSteps, rules: ShipmentRules, push: ShipmentPush) -> PushResult:
    code = carrier_code(rules.carrier_codes, push.carrier)
    if code is None and rules.unknown_carrier is None:
        code = push.carrier.strip()
    carrier = steps.resolve_carrier(push.carrier, code)
    if carrier is None:
        known = ", ".join(sorted(rules.carrier_codes))
        template = rules.unknown_carrier or "carrier {carrier!r} has no {platform} code"
        return PushResult(
            "rejected", template.format(carrier=push.carrier, platform=rules.platform, known=known)
        )
    state = steps.read_shipment(push, carrier)
    if push.tracking_number in state.shipped_with:
        done = PushResult("already_done", state.detail, state.platform_ref, dict(state.extra))
        return steps.on_already_done(push, carrier, state, done)
    previous = push.previous_tracking_number
    if previous and previous != push.tracking_number and previous in state.on_platform:
        replacing: str | None = previous
    else:
        replacing = state.replaces
    try:
        if replacing is not None:
            try:
                return steps.update_tracking(push, carrier, state, replacing)
            except NotImplementedError:
                return PushResult(
                    "rejected", f"{rules.platform} cannot change a shipment's tracking number through its API"
                )
        if state.cannot_ship is not None:
            return PushResult("rejected", state.cannot_ship)
        return steps.send_shipment(push, carrier, state)
    except ApiError as error:
        if str(error.code) in rules.already_shipped_codes and not isinstance(error, AuthError):
            again = steps.read_shipment(push, carrier)
            if push.tracking_number in again.shipped_with:
                done = PushResult("already_done", rules.words(error), again.platform_ref, dict(again.extra))
                return steps.on_already_done(push, carrier, again, done)
        raise
