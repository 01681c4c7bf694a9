{{ config(dist='all', sort=['date_day']) }}

{#- One row per day from 2024-01-01 for about 27 years: the time spine MetricFlow joins
    metrics to, so a month with no rows still has a place in a metric's series. -#}

with days as (
    select units.n + 1000 * thousands.n as n
    from ({{ integers_0_999() }}) as units
    cross join ({{ integers_0_999() }}) as thousands
    where thousands.n < 10
)

select cast({{ dbt.dateadd('day', 'n', "cast('2024-01-01' as date)") }} as date) as date_day
from days
