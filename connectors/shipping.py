"""The shipment push, once for every platform: read the order's state, decide what is already done, call,
and turn the platform's refusals into rejections by their declared codes.

A platform gives three small hooks (``ShipmentSteps``) and a table (``ShipmentRules``); the order of the
steps and what each outcome means live here (``connectors.pushes`` for the result contract):

1. the carrier: the platform's code through ``connectors.carriers``; none -> ``rejected``, nothing sent;
2. ``read``: what the platform already holds for the order (the tracking numbers it shipped with, or why it
   cannot ship: closed, refunded, unknown); this tracking already there -> ``already_done`` without a write,
   so a replay after a lost answer never ships twice;
3. a correction (``previous_tracking_number`` already on the platform) goes to ``update`` where the platform
   has one; a previous number that never reached the platform is shipped as new;
4. ``send``; a refusal whose code is declared ``already_shipped`` is read again (a push that raced another:
   ``already_done`` when this tracking is now there), one declared ``refusal`` is ``rejected`` with the
   platform's words; anything else raises, so the caller's retry policy applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from connectors.carriers import carrier_code
from connectors.errors import ApiError
from connectors.pushes import PushResult, ShipmentPush


@dataclass(frozen=True, slots=True)
class ShipmentState:
    """What the platform holds for the order, as far as this push is concerned."""

    shipped_with: frozenset[str] = frozenset()  # tracking numbers its lines (of this push) shipped with
    cannot_ship: str | None = None  # why no shipment can be recorded (closed, refunded, no such order)
    platform_ref: str | None = None  # what to report for an ``already_done`` (delivery id, ...)


@dataclass(frozen=True)
class ShipmentRules:
    platform: str  # for the words of a rejection
    carrier_codes: Mapping[str, str]  # carrier key (connectors.carriers) -> the platform's code
    refusal_codes: frozenset[str] = frozenset()  # the platform's codes that retrying cannot fix
    already_shipped_codes: frozenset[str] = frozenset()  # "already shipped": read again before deciding
    messages: Mapping[str, str] = field(default_factory=dict)  # code -> what ops should do about it


class ShipmentSteps(Protocol):
    def read_shipment(self, push: ShipmentPush) -> ShipmentState: ...

    def send_shipment(self, push: ShipmentPush, carrier: str, state: ShipmentState) -> str | None:
        """Record the shipment with the platform's code for the carrier; returns the platform's reference."""
        ...

    def update_tracking(self, push: ShipmentPush, carrier: str, state: ShipmentState) -> str | None:
        """Change the tracking of the parcel shipped as ``push.previous_tracking_number``; a platform with
        no such call raises ``NotImplementedError`` (the correction is then rejected, never re-sent)."""
        ...


def push_shipment(steps: ShipmentSteps, rules: ShipmentRules, push: ShipmentPush) -> PushResult:
    carrier = carrier_code(rules.carrier_codes, push.carrier)
    if carrier is None:
        return PushResult(
            "rejected",
            f"carrier {push.carrier!r} has no {rules.platform} code; known: "
            f"{', '.join(sorted(rules.carrier_codes))}",
        )
    state = steps.read_shipment(push)
    if push.tracking_number in state.shipped_with:
        return PushResult("already_done", "already shipped with this tracking number", state.platform_ref)
    if state.cannot_ship is not None:
        return PushResult("rejected", state.cannot_ship)
    previous = push.previous_tracking_number
    correcting = previous is not None and previous in state.shipped_with
    try:
        if correcting:
            try:
                reference = steps.update_tracking(push, carrier, state)
            except NotImplementedError:
                return PushResult(
                    "rejected", f"{rules.platform} cannot change a shipment's tracking number through its API"
                )
        else:
            reference = steps.send_shipment(push, carrier, state)
    except ApiError as error:
        code = str(error.code)
        if code in rules.already_shipped_codes:
            again = steps.read_shipment(push)
            if push.tracking_number in again.shipped_with:
                return PushResult("already_done", "shipped by a concurrent push", again.platform_ref)
        if code in rules.refusal_codes or code in rules.already_shipped_codes:
            advice = rules.messages.get(code)
            return PushResult("rejected", f"{code}: {error.message}" + (f" ({advice})" if advice else ""))
        raise
    return PushResult("pushed", platform_ref=reference, extra={"corrected": "true"} if correcting else {})
