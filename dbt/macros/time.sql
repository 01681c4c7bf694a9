{#- Every timestamp in the warehouse is UTC without a time zone, so month boundaries do not
    depend on the session's time zone. -#}
{% macro to_utc(expression) -%}
  {{ return(adapter.dispatch('to_utc', 'paywall')(expression)) }}
{%- endmacro %}

{% macro default__to_utc(expression) -%}
  ({{ expression }} at time zone 'UTC')
{%- endmacro %}

{% macro redshift__to_utc(expression) -%}
  convert_timezone('UTC', {{ expression }})
{%- endmacro %}

{% macro utc_now() -%}
  {{ return(adapter.dispatch('utc_now', 'paywall')()) }}
{%- endmacro %}

{% macro default__utc_now() -%}
  (now() at time zone 'UTC')
{%- endmacro %}

{% macro redshift__utc_now() -%}
  cast(getdate() as timestamp)
{%- endmacro %}

{#- The timestamp the marts are computed as of: var('as_of') or now, UTC. -#}
{% macro as_of() -%}
  {%- if var('as_of', none) -%}
    cast('{{ var("as_of") }}' as timestamp)
  {%- else -%}
    {{ utc_now() }}
  {%- endif -%}
{%- endmacro %}

{% macro month_start(expression) -%}
  cast(date_trunc('month', {{ expression }}) as date)
{%- endmacro %}

{#- 0 .. 999 without a recursive CTE, a generate_series or a VALUES list (Redshift has
    neither of the last two on the leader node). -#}
{% macro integers_0_999() -%}
  select d0.n + 10 * d1.n + 100 * d2.n as n
  from ({{ _digits() }}) as d0
  cross join ({{ _digits() }}) as d1
  cross join ({{ _digits() }}) as d2
{%- endmacro %}

{% macro _digits() -%}
  select 0 as n {% for i in range(1, 10) %}union all select {{ i }} {% endfor %}
{%- endmacro %}
