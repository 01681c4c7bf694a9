-- The MRR mart at each month's end equals the MRR of the subscription states in force then,
-- less the coupon discounts of the invoices billing the periods in force then (first
-- periods, renewals and trial conversions; prorations are not a period's price).
with month_ends as (
    select
        month,
        currency,
        mrr,
        cast({{ dbt.dateadd('month', 1, 'month') }} as timestamp) as next_month
    from {{ ref('mrr_monthly') }}
),

in_force as (
    select month_ends.month, month_ends.next_month, states.*
    from month_ends
    inner join {{ ref('fct_subscriptions') }} as states
        on states.currency = month_ends.currency
        and states.valid_from < month_ends.next_month
        and (states.valid_to is null or states.valid_to >= month_ends.next_month)
),

from_states as (
    select month, currency, sum(mrr) as mrr
    from in_force
    group by month, currency
),

discounts as (
    select
        in_force.month,
        in_force.currency,
        sum(
            case
                when in_force.billing_interval = 'year'
                    then round(invoices.discount_amount / 12, 2)
                else invoices.discount_amount
            end
        ) as discount
    from in_force
    inner join {{ ref('fct_invoices') }} as invoices
        on invoices.subscription_id = in_force.subscription_id
        and invoices.invoice_kind in ('first_period', 'renewal', 'trial_conversion')
        and invoices.invoice_status <> 'void'
        and invoices.period_start < in_force.next_month
        and invoices.period_end >= in_force.next_month
    where in_force.mrr > 0
    group by in_force.month, in_force.currency
)

select month_ends.*, from_states.mrr as mrr_from_states, discounts.discount
from month_ends
left join from_states
    on month_ends.month = from_states.month and month_ends.currency = from_states.currency
left join discounts
    on month_ends.month = discounts.month and month_ends.currency = discounts.currency
where abs(month_ends.mrr - (coalesce(from_states.mrr, 0) - coalesce(discounts.discount, 0)))
    > 0.0001
