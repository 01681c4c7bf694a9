"""Money as it enters the API: whole minor units, in a currency Stripe charges in, from a
card Stripe holds.

Every model with an amount or a currency in a request uses these types, so no endpoint
turns `true` into a 1-cent charge, `"100"` into 100, or charges in a code that is not a
currency. Amounts are strict integers: no booleans, strings or floats (JSON's `100.0`
included), and never coerced. Currencies are what Stripe's API requires: a lower-case
ISO 4217 code from its list of presentment currencies.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StrictInt, StrictStr, StringConstraints

# Stripe's ceiling for one charge in most currencies: eight digits of minor units.
MAX_AMOUNT = 99_999_999

# Stripe's presentment currencies, https://docs.stripe.com/currencies#presentment-currencies
# (card payments). Stripe adds or retires a few a year: a code missing here is refused with
# a 422 before anything is recorded; one Stripe has retired is refused by Stripe, and the
# payment fails with Stripe's reason. Stripe's own rules on amounts per currency (minimum
# charges; a last digit of 0 in three-decimal currencies) are left to Stripe the same way.
STRIPE_CURRENCIES = frozenset(
    """
    usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl
    bsd bwp byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd
    fkp gbp gel gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs
    khr kmf krw kwd kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk
    mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub
    rwf sar sbd scr sek sgd shp sle sos srd std szl thb tjs tnd top try ttd twd tzs uah
    ugx uyu uzs vnd vuv wst xaf xcd xcg xof xpf yer zar zmw
    """.split()  # noqa: SIM905 (140 codes read better as a block than one per line)
)


def _stripe_currency(code: str) -> str:
    if code not in STRIPE_CURRENCIES:
        raise ValueError(
            f"{code!r} is not a currency Stripe charges in; send its lower-case ISO 4217 code,"
            " such as 'usd' or 'eur'"
        )
    return code


Amount = Annotated[
    StrictInt,
    Field(
        gt=0,
        le=MAX_AMOUNT,
        description="A positive whole number of the currency's minor unit (cents for usd).",
    ),
]
Currency = Annotated[
    StrictStr,
    AfterValidator(_stripe_currency),
    Field(
        description="Lower-case ISO 4217 code of a currency Stripe charges in.",
        json_schema_extra={"enum": sorted(STRIPE_CURRENCIES)},
    ),
]
# How a card reaches us: the id of a Stripe PaymentMethod made by Stripe.js, never a number.
PaymentMethodId = Annotated[
    str,
    StringConstraints(min_length=4, max_length=255, pattern=r"^pm_[A-Za-z0-9_]+$"),
    Field(description="A PaymentMethod id from Stripe.js (pm_…); never a card number."),
]
