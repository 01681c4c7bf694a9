{#- Money in the marts: numeric(18,2) in major units, currency beside it, one rounding rule.

    Amounts stay integers in minor units (cents) until the last step. The only amounts that
    are not whole cents are the monthly shares of yearly prices; each subscription's share is
    rounded to the cent, half away from zero (what `round` does on Postgres, Redshift and
    DuckDB alike), before anything is summed, so a sum in the marts is a sum of cents and
    equals the same sum taken from the subscription service's tables. -#}

{#- Minor units (an integer expression) → numeric(18,2) major units, exactly. A division
    would go through a double on DuckDB; a multiplication by 0.01 stays decimal everywhere. -#}
{% macro minor_to_major(expression) -%}
  cast(cast({{ expression }} as numeric(18, 0)) * 0.01 as numeric(18, 2))
{%- endmacro %}

{#- A sum or difference of numeric(18,2) amounts, typed as the contracts say. -#}
{% macro money(expression) -%}
  cast({{ expression }} as numeric(18, 2))
{%- endmacro %}

{#- A ratio (rates, retention) as the contracts say: six decimals. -#}
{% macro ratio(numerator, denominator) -%}
  cast(cast({{ numerator }} as numeric(18, 6)) / {{ denominator }} as numeric(18, 6))
{%- endmacro %}

{#- The monthly share of a price in minor units, rounded to the cent (yearly prices / 12). -#}
{% macro monthly_minor(amount, interval) -%}
  case when {{ interval }} = 'year' then round({{ amount }} / 12.0) else {{ amount }} end
{%- endmacro %}

{#- Monthly amount in major units from a price in minor units per interval. -#}
{% macro monthly_amount(amount, interval) -%}
  {{ minor_to_major(monthly_minor(amount, interval)) }}
{%- endmacro %}
