-- The MRR mart at each month's end equals the MRR of the subscription states in force then.
with month_ends as (
    select
        month,
        currency,
        mrr,
        cast({{ dbt.dateadd('month', 1, 'month') }} as timestamp) as next_month
    from {{ ref('mrr_monthly') }}
),

from_states as (
    select month_ends.month, month_ends.currency, sum(states.mrr) as mrr
    from month_ends
    inner join {{ ref('fct_subscriptions') }} as states
        on states.currency = month_ends.currency
        and states.valid_from < month_ends.next_month
        and (states.valid_to is null or states.valid_to >= month_ends.next_month)
    group by month_ends.month, month_ends.currency
)

select month_ends.*, from_states.mrr as mrr_from_states
from month_ends
left join from_states
    on month_ends.month = from_states.month and month_ends.currency = from_states.currency
where abs(month_ends.mrr - coalesce(from_states.mrr, 0)) > 0.0001
