"""What an immediate plan change costs: proration by the second, with one rounding rule.

The rule, written once: each side is the plan's price times the seconds left in the
period over the seconds in the period, rounded half up to a whole minor unit on its own
(a credit for the old plan, a charge for the new). Rounded separately, each is within
half a cent of its exact share, so credit and charge together are within one cent of
what the two plans cost for their shares of the period; and the invoice shows the same
two amounts the customer can check. Pure: no I/O, no clock (the moment is passed in).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Proration:
    """What an immediate plan change credits and charges for the rest of the period."""

    seconds_left: int
    seconds_in_period: int
    credit: int  # unused part of the old plan, minor units
    charge: int  # remaining part of the new plan, minor units

    @property
    def amount_due(self) -> int:
        return self.charge - self.credit


def share(amount: int, part: int, whole: int) -> int:
    """`amount * part / whole`, rounded half up (the one rounding rule); whole > 0."""
    return (2 * amount * part + whole) // (2 * whole)


def prorate(
    old_amount: int, new_amount: int, period_start: datetime, period_end: datetime, at: datetime
) -> Proration:
    """Credit for `old_amount`'s unused seconds, charge for `new_amount`'s, from `at`."""
    whole = max(int((period_end - period_start).total_seconds()), 1)
    left = min(max(int((period_end - at).total_seconds()), 0), whole)
    return Proration(left, whole, share(old_amount, left, whole), share(new_amount, left, whole))


# -- discount and tax: one rule for every invoice ------------------------------------------
#
# The rule, written once (every invoice producer calls `invoice`): amounts are whole minor
# units, rounded half up, and the discount comes before tax.
#
# 1. subtotal = the sum of the invoice's lines (a credit line is negative).
# 2. discount = percent off: share(subtotal, bp, 10000), half up; amount off: the amount,
#    at most the subtotal (never a negative total). It is shown as one `discount` line.
# 3. tax = on what is left (subtotal - discount), half up, once per invoice: exclusive,
#    net * rate; inclusive, the part of the (tax-included) net that is tax, net * rate /
#    (1 + rate). Rounded once, the invoice's tax is within half a cent of the exact value.
# 4. each line's tax is that tax split over the lines in proportion to their amounts
#    (the discount line's is negative), largest remainder first, so the lines' taxes add
#    up to the invoice's exactly; each is within one unit of its exact share.
# 5. total = subtotal - discount + tax (exclusive) or subtotal - discount (inclusive: the
#    tax is already in the prices and never changes the total).

BASIS = 10000  # basis points: 2000 = 20.00 %


@dataclass(frozen=True)
class Discount:
    """A coupon's terms, as an invoice applies them: one of percent_off_bp or amount_off."""

    percent_off_bp: int | None = None
    amount_off: int | None = None


@dataclass(frozen=True)
class Tax:
    rate_bp: int
    inclusive: bool = False


@dataclass(frozen=True)
class Amounts:
    """An invoice's totals and its lines' amounts and taxes (the discount line last)."""

    subtotal: int
    discount: int
    tax: int
    total: int
    inclusive: bool
    line_amounts: tuple[int, ...]
    line_taxes: tuple[int, ...]


def discount_of(subtotal: int, discount: Discount | None) -> int:
    if discount is None or subtotal <= 0:
        return 0
    if discount.percent_off_bp is not None:
        return min(share(subtotal, discount.percent_off_bp, BASIS), subtotal)
    return min(max(discount.amount_off or 0, 0), subtotal)


def tax_of(net: int, tax: Tax | None) -> int:
    if tax is None or net <= 0 or tax.rate_bp <= 0:
        return 0
    if tax.inclusive:
        return share(net, tax.rate_bp, BASIS + tax.rate_bp)
    return share(net, tax.rate_bp, BASIS)


def split(total: int, weights: list[int]) -> list[int]:
    """`total` over `weights` in proportion (signed), largest remainder: sums to `total`."""
    whole = sum(weights)
    if whole == 0 or total == 0:
        return [0] * len(weights)
    floors = [total * w // whole for w in weights]
    remainders = [total * w - f * whole for w, f in zip(weights, floors, strict=True)]
    left = total - sum(floors)
    # Python's floor division keeps every remainder in [0, whole) for whole > 0.
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        floors[i] += 1
    return floors


def invoice(lines: list[int], discount: Discount | None, tax: Tax | None) -> Amounts:
    """The one rule above, applied to an invoice's line amounts."""
    subtotal = sum(lines)
    off = discount_of(subtotal, discount)
    amounts = [*lines, -off] if off else list(lines)
    taxed = tax_of(subtotal - off, tax)
    taxes = split(taxed, amounts)
    inclusive = bool(tax and tax.inclusive)
    total = subtotal - off + (0 if inclusive else taxed)
    return Amounts(subtotal, off, taxed, total, inclusive, tuple(amounts), tuple(taxes))
