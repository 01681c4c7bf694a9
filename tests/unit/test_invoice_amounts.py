"""Discount and tax on an invoice, one rounding rule (paywall/pricing.py): properties for
any lines, coupon and rate, and the worked examples a customer would check by hand."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from paywall import pricing
from paywall.pricing import Discount, Tax

prices = st.integers(min_value=0, max_value=10_000_000)
rates = st.integers(min_value=0, max_value=pricing.BASIS)
discounts = st.one_of(
    st.none(),
    st.builds(Discount, percent_off_bp=st.integers(min_value=1, max_value=pricing.BASIS)),
    st.builds(Discount, amount_off=st.integers(min_value=1, max_value=20_000_000)),
)
taxes = st.one_of(st.none(), st.builds(Tax, rate_bp=rates, inclusive=st.booleans()))


@st.composite
def invoice_lines(draw: st.DrawFn) -> list[int]:
    """A renewal (one line) or a proration (a credit and a larger charge)."""
    if draw(st.booleans()):
        return [draw(prices)]
    credit = draw(prices)
    return [-credit, credit + draw(prices)]


def exact_tax(net: int, tax: Tax | None) -> Fraction:
    if tax is None:
        return Fraction(0)
    rate = Fraction(tax.rate_bp, pricing.BASIS)
    return net * rate / (1 + rate) if tax.inclusive else net * rate


def exact_discount(subtotal: int, discount: Discount | None) -> Fraction:
    if discount is None:
        return Fraction(0)
    if discount.percent_off_bp is not None:
        return subtotal * Fraction(discount.percent_off_bp, pricing.BASIS)
    return Fraction(min(discount.amount_off or 0, subtotal))


@given(invoice_lines(), discounts, taxes)
def test_totals_are_the_sum_of_the_lines(
    lines: list[int], discount: Discount | None, tax: Tax | None
) -> None:
    a = pricing.invoice(lines, discount, tax)
    assert a.subtotal == sum(lines)
    assert sum(a.line_amounts) == a.subtotal - a.discount
    assert sum(a.line_taxes) == a.tax
    assert len(a.line_taxes) == len(a.line_amounts)
    assert a.total == sum(a.line_amounts) + (0 if a.inclusive else sum(a.line_taxes))


@given(invoice_lines(), discounts, taxes)
def test_no_negative_totals_and_each_amount_within_one_cent_of_exact(
    lines: list[int], discount: Discount | None, tax: Tax | None
) -> None:
    a = pricing.invoice(lines, discount, tax)
    assert a.total >= 0 and a.tax >= 0 and 0 <= a.discount <= a.subtotal
    assert abs(a.discount - exact_discount(a.subtotal, discount)) <= Fraction(1, 2)
    assert abs(a.tax - exact_tax(a.subtotal - a.discount, tax)) <= Fraction(1, 2)
    # Each line's tax is within one cent of its exact share of the invoice's tax.
    net = a.subtotal - a.discount
    for amount, line_tax in zip(a.line_amounts, a.line_taxes, strict=True):
        if net:
            assert abs(line_tax - Fraction(a.tax * amount, net)) < 1


@given(invoice_lines(), discounts, rates)
def test_inclusive_tax_never_changes_the_total(
    lines: list[int], discount: Discount | None, rate: int
) -> None:
    untaxed = pricing.invoice(lines, discount, None)
    inclusive = pricing.invoice(lines, discount, Tax(rate, inclusive=True))
    assert inclusive.total == untaxed.total
    assert inclusive.tax <= inclusive.total


@given(prices, discounts, rates)
def test_discount_comes_before_tax(price: int, discount: Discount | None, rate: int) -> None:
    a = pricing.invoice([price], discount, Tax(rate))
    assert a.tax == pricing.share(price - a.discount, rate, pricing.BASIS)


def test_worked_examples() -> None:
    # 29.00, 25 % off, 20 % VAT on top: 29.00 - 7.25 = 21.75, tax 4.35, total 26.10.
    a = pricing.invoice([2900], Discount(percent_off_bp=2500), Tax(2000))
    assert (a.subtotal, a.discount, a.tax, a.total) == (2900, 725, 435, 2610)
    assert (a.line_amounts, a.line_taxes) == ((2900, -725), (580, -145))
    # 20 % VAT included in 29.00: 29.00 * 0.2 / 1.2 = 4.8333… → 4.83; total unchanged.
    b = pricing.invoice([2900], None, Tax(2000, inclusive=True))
    assert (b.subtotal, b.discount, b.tax, b.total) == (2900, 0, 483, 2900)
    # 5.00 off a 3.00 invoice: the discount stops at the subtotal, never a negative total.
    c = pricing.invoice([300], Discount(amount_off=500), Tax(2000))
    assert (c.discount, c.tax, c.total) == (300, 0, 0)
    # Half a cent rounds up: 0.05 at 10 % → 0.005 → 0.01.
    assert pricing.invoice([5], None, Tax(1000)).tax == 1
