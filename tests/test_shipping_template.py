"""The shipment-push template's own decisions (``connectors.shipping``) and the one carrier table
(``connectors.carriers``): already done, corrections, what cannot ship, refusal classes from declared codes,
carrier resolution. The decisions run against a small scripted platform (an in-memory implementation of
the steps, written here); where a platform's real answers matter (a declared refusal code, a push racing
another), against the Youzan sandbox over HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib import import_module

import pytest

from connectors.carriers import CARRIERS, carrier_code, carrier_key
from connectors.errors import ApiError, AuthError, QuotaExhausted
from connectors.http import RetryPolicy
from connectors.pushes import PushResult, ShipmentLine, ShipmentPush
from connectors.shipping import (
    ShipmentRefused,
    ShipmentRules,
    ShipmentState,
    ShipmentSteps,
    push_shipment,
    refusal_words,
)
from platforms.registry import DECLARATIONS, PACKAGE_DIR, PLATFORM_NAMES
from platforms.youzan import pushes as youzan_pushes
from platforms.youzan.connector import YouzanConnector
from sandbox import youzan as sandbox_youzan
from sandbox.clock import Clock
from sandbox.server import run_sandbox

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def push(number: str = "T-2", previous: str | None = None, carrier: str = "SF") -> ShipmentPush:
    return ShipmentPush(
        external_order_id="1001",
        shipment_key="hub-1",
        carrier=carrier,
        tracking_number=number,
        lines=(ShipmentLine("L1", 1),),
        shipped_at=NOW,
        completes_order=True,
        previous_tracking_number=previous,
    )


@dataclass
class Scripted(ShipmentSteps):
    """A platform in memory: the numbers it holds, and what its send answers."""

    shipped: set[str] = field(default_factory=set)
    cannot_ship: str | None = None
    replaces: str | None = None
    send_raises: ApiError | None = None
    ship_on_refusal: bool = False  # the refused send was a race: the other push shipped this number
    updates: bool = True
    calls: list[str] = field(default_factory=list)

    def read_shipment(self, push: ShipmentPush, carrier: str) -> ShipmentState:
        self.calls.append("read")
        numbers = frozenset(self.shipped)
        return ShipmentState(
            shipped_with=numbers,
            on_platform=numbers,
            replaces=self.replaces,
            cannot_ship=self.cannot_ship,
            platform_ref="ref-1",
        )

    def send_shipment(self, push: ShipmentPush, carrier: str, state: ShipmentState) -> PushResult:
        self.calls.append(f"send {carrier}")
        if self.send_raises is not None:
            if self.ship_on_refusal:
                self.shipped.add(push.tracking_number)
            raise self.send_raises
        self.shipped.add(push.tracking_number)
        return PushResult("pushed", "sent")

    def update_tracking(
        self, push: ShipmentPush, carrier: str, state: ShipmentState, replacing: str
    ) -> PushResult:
        self.calls.append(f"update {replacing}")
        if not self.updates:
            raise NotImplementedError
        self.shipped = (self.shipped - {replacing}) | {push.tracking_number}
        return PushResult("pushed", "updated", extra={"action": "update_tracking"})


RULES = ShipmentRules(
    platform="Scripted",
    carrier_codes={"SF": "sf-code", "YTO": "yto-code"},
    refusal_codes=frozenset({"NOPE"}),
    already_shipped_codes=frozenset({"DONE"}),
    messages={"NOPE": "fix the order by hand"},
)


def refused(code: str, cls: type[ApiError] = ApiError, status: int | None = 200) -> ApiError:
    return cls(f"refused with {code}", platform="scripted", code=code, status=status)


# -- already done, corrections, what cannot ship -----------------------------------------------------


def test_a_tracking_number_already_there_is_already_done_without_a_write():
    platform = Scripted(shipped={"T-2"})
    result = push_shipment(platform, RULES, push("T-2"))
    assert (result.status, result.platform_ref) == ("already_done", "ref-1")
    assert platform.calls == ["read"]


def test_a_new_number_is_sent_with_the_platforms_carrier_code():
    platform = Scripted()
    assert push_shipment(platform, RULES, push("T-2", carrier="shunfeng")).status == "pushed"
    assert platform.calls == ["read", "send sf-code"]


def test_a_previous_number_on_the_platform_is_corrected_and_one_never_there_is_sent_as_new():
    platform = Scripted(shipped={"T-1"})
    corrected = push_shipment(platform, RULES, push("T-2", previous="T-1"))
    assert corrected.extra == {"action": "update_tracking"} and platform.calls == ["read", "update T-1"]
    fresh = Scripted(shipped={"T-9"})
    assert push_shipment(fresh, RULES, push("T-2", previous="T-1")).status == "pushed"
    assert fresh.calls == ["read", "send sf-code"]


def test_a_number_the_platform_found_the_shipment_under_is_corrected_without_being_named():
    platform = Scripted(shipped={"T-1"}, replaces="T-1")
    push_shipment(platform, RULES, push("T-2"))
    assert platform.calls == ["read", "update T-1"]


def test_a_correction_goes_ahead_where_a_new_shipment_could_not():
    """``cannot_ship`` guards a new send; a correction changes a parcel that already left."""
    platform = Scripted(shipped={"T-1"}, cannot_ship="order is completed")
    assert push_shipment(platform, RULES, push("T-2", previous="T-1")).status == "pushed"
    blocked = Scripted(shipped={"T-1"}, cannot_ship="order is completed")
    result = push_shipment(blocked, RULES, push("T-2"))
    assert (result.status, result.detail) == ("rejected", "order is completed")
    assert blocked.calls == ["read"]


def test_a_platform_without_an_update_call_rejects_a_correction_and_never_resends():
    platform = Scripted(shipped={"T-1"}, updates=False)
    result = push_shipment(platform, RULES, push("T-2", previous="T-1"))
    assert result.status == "rejected" and "cannot change" in result.detail
    assert platform.calls == ["read", "update T-1"]


def test_a_step_that_refuses_the_push_is_a_rejection():
    class Refusing(Scripted):
        def read_shipment(self, push: ShipmentPush, carrier: str) -> ShipmentState:
            raise ShipmentRefused("line L1 is not on the order", {"line": "L1"})

    result = push_shipment(Refusing(), RULES, push())
    assert (result.status, result.detail, result.extra) == (
        "rejected",
        "line L1 is not on the order",
        {"line": "L1"},
    )


# -- refusal classes from declared codes ----------------------------------------------------------------


def test_a_declared_refusal_code_is_rejected_with_the_platforms_words_and_the_advice():
    result = push_shipment(Scripted(send_raises=refused("NOPE")), RULES, push())
    assert result.status == "rejected"
    assert result.detail == "NOPE: refused with NOPE (fix the order by hand)"


def test_an_undeclared_code_raises_for_the_callers_retry_policy():
    with pytest.raises(ApiError, match="OTHER"):
        push_shipment(Scripted(send_raises=refused("OTHER")), RULES, push())


def test_already_shipped_is_read_again_before_deciding():
    raced = Scripted(send_raises=refused("DONE"), ship_on_refusal=True)
    result = push_shipment(raced, RULES, push())
    assert result.status == "already_done" and raced.calls == ["read", "send sf-code", "read"]
    alone = Scripted(send_raises=refused("DONE"))
    assert push_shipment(alone, RULES, push()).status == "rejected"


def test_refusal_statuses_a_predicate_and_what_is_never_a_refusal():
    by_status = replace(RULES, refusal_statuses=frozenset({404}))
    assert refusal_words(by_status, refused("X", status=404)) == "X: refused with X"
    assert refusal_words(by_status, refused("X", status=500)) is None
    open_ended = replace(RULES, refuses=lambda error: True)
    assert refusal_words(open_ended, refused("ANY")) is not None
    for trouble in (AuthError, QuotaExhausted):  # credentials and quotas are the caller's to see
        assert refusal_words(open_ended, refused("NOPE", trouble)) is None
        with pytest.raises(trouble):
            push_shipment(Scripted(send_raises=refused("NOPE", trouble)), open_ended, push())


# -- carriers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("SF", "SF"),
        ("sf express", "SF"),
        ("S.F. Express", "SF"),
        ("顺丰速运", "SF"),
        ("j&t-express", "JTEXPRESS"),
        ("中国邮政", "CHINA_POST"),
        ("Federal Express", "FEDEX"),
        ("Acme", None),
        ("YD", None),  # another system's code, not a name (docs/platform-notes.md, WeChat)
    ],
)
def test_carrier_names_fold_to_one_key(written, key):
    assert carrier_key(written) == key


def test_a_platform_code_comes_from_the_key_or_is_given_as_is():
    codes = {"SF": "sf-code"}
    assert carrier_code(codes, "shunfeng") == "sf-code"
    assert carrier_code(codes, "sf-code") == "sf-code"  # a warehouse that writes the platform's own code
    assert carrier_code(codes, "YTO") is None


def test_an_unknown_carrier_is_rejected_before_any_read_or_sent_as_given_where_the_platform_allows():
    platform = Scripted()
    result = push_shipment(platform, RULES, push(carrier="Acme"))
    assert result.status == "rejected" and "'Acme'" in result.detail and "SF, YTO" in result.detail
    assert platform.calls == []
    as_given = replace(RULES, unknown_carrier=None)
    push_shipment(platform, as_given, push(carrier=" Acme "))
    assert platform.calls == ["read", "send Acme"]


def test_a_live_list_may_refuse_the_tables_code():
    class LiveList(Scripted):
        def resolve_carrier(self, name: str, code: str | None) -> str | None:
            return code if code == "yto-code" else None

    platform = LiveList()
    assert push_shipment(platform, RULES, push(carrier="SF")).status == "rejected"
    assert push_shipment(platform, RULES, push(carrier="YTO")).status == "pushed"


PLATFORMS_WITH_PUSHES = [name for name in PLATFORM_NAMES if (PACKAGE_DIR / name / "pushes.py").exists()]


@pytest.mark.parametrize("name", PLATFORMS_WITH_PUSHES)
def test_every_platforms_carrier_codes_are_entries_of_the_one_table(name):
    module = import_module(f"platforms.{name}.pushes")
    keys = {carrier.key for carrier in CARRIERS}
    assert set(module.CARRIER_CODES) <= keys
    demo = DECLARATIONS[name].demo_carrier
    assert carrier_code(module.CARRIER_CODES, demo) is not None or module.RULES.unknown_carrier is None


# -- a real platform: Youzan's declared codes ---------------------------------------------------------------

FAST = RetryPolicy(max_attempts=2, backoff_initial=0.01, backoff_max=0.02, backoff_jitter=0.0)


@pytest.fixture(scope="module")
def shop():
    with run_sandbox(
        "youzan", seed=34, start=NOW - timedelta(days=2), interval=600, clock=Clock.frozen(NOW)
    ) as sb:
        yield sb


@pytest.fixture
def youzan(shop) -> YouzanConnector:
    return YouzanConnector.from_connection(
        shop.base_url,
        client_id=sandbox_youzan.SANDBOX_LOGIN,
        client_secret=shop.access_token,
        kdt_id=sandbox_youzan.SANDBOX_KDT_ID,
        retry=FAST,
        requests_per_second=1000.0,
    )


def waiting_orders(shop):
    renderer = shop.app.state.renderer
    for index in reversed(shop.world.orders_visible(NOW)):
        state = shop.world.state(index, NOW)
        if state is None or state.cancelled or state.fulfillments or state.refunds:
            continue
        if renderer.paid_ts(state) is not None:
            yield state


def youzan_push(shop, state, waybill: str) -> ShipmentPush:
    renderer = shop.app.state.renderer
    lines = tuple(
        ShipmentLine(renderer.oid(state.index, i), line.quantity) for i, line in enumerate(state.order.lines)
    )
    return ShipmentPush(
        external_order_id=renderer.tid(state.index),
        shipment_key=f"hub-{state.index}",
        carrier="SF",
        tracking_number=waybill,
        lines=lines,
        shipped_at=NOW,
        completes_order=True,
    )


def test_youzans_bad_waybill_is_a_rejection_only_while_its_code_is_declared(shop, youzan):
    state = next(waiting_orders(shop))
    bad = youzan_push(shop, state, "SF 12")  # Youzan answers 105000003
    steps = youzan_pushes.YouzanShipment(youzan)
    result = push_shipment(steps, youzan_pushes.RULES, bad)
    assert result.status == "rejected" and result.detail.startswith("Youzan 105000003:")
    undeclared = replace(youzan_pushes.RULES, refusal_codes=frozenset(), refuses=None)
    with pytest.raises(ApiError) as raised:
        push_shipment(steps, undeclared, bad)
    assert raised.value.code == "105000003"


def test_a_push_that_raced_another_is_already_done_after_youzans_already_shipped(shop, youzan):
    state = next(waiting_orders(shop))
    first = youzan_push(shop, state, "SF5555555555501")
    assert youzan.push_shipment(first).status == "pushed"

    class StaleFirstRead(youzan_pushes.YouzanShipment):
        """Reads the trade as it was before the other push landed, then as it is."""

        reads = 0

        def read_shipment(self, push: ShipmentPush, carrier: str) -> ShipmentState:
            self.reads += 1
            state = super().read_shipment(push, carrier)
            return (
                replace(state, shipped_with=frozenset(), on_platform=frozenset())
                if self.reads == 1
                else state
            )

    steps = StaleFirstRead(youzan)
    result = push_shipment(steps, youzan_pushes.RULES, first)  # Youzan answers 102570007 (already shipped)
    assert result.status == "already_done" and result.detail.startswith("Youzan 102570007:")
    assert steps.reads == 2
