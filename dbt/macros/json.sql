{#- Read one top-level field of a JSON text column as text, whatever the warehouse.
    A JSON null or a missing field is SQL NULL everywhere. -#}
{% macro json_str(column, field) -%}
  {{ return(adapter.dispatch('json_str', 'paywall')(column, field)) }}
{%- endmacro %}

{% macro default__json_str(column, field) -%}
  ({{ column }}::json->>'{{ field }}')
{%- endmacro %}

{% macro duckdb__json_str(column, field) -%}
  json_extract_string({{ column }}, '$.{{ field }}')
{%- endmacro %}

{% macro postgres__json_str(column, field) -%}
  ({{ column }}::json->>'{{ field }}')
{%- endmacro %}

{% macro redshift__json_str(column, field) -%}
  {#- Redshift gives '' for null or missing fields; true = NULL on invalid JSON. -#}
  nullif(json_extract_path_text({{ column }}, '{{ field }}', true), '')
{%- endmacro %}

{% macro json_int(column, field) -%}
  cast({{ json_str(column, field) }} as {{ dbt.type_bigint() }})
{%- endmacro %}

{% macro json_bool(column, field) -%}
  cast({{ json_str(column, field) }} as boolean)
{%- endmacro %}

{#- An ISO-8601 timestamp with offset → UTC timestamp without time zone. -#}
{% macro json_ts(column, field) -%}
  {{ to_utc('cast(' ~ json_str(column, field) ~ ' as timestamptz)') }}
{%- endmacro %}
