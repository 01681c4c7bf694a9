{{ config(dist='subscription_id', sort=['subscription_id', 'valid_from']) }}

{#- SCD2 of subscription state: one row per state change, valid over [valid_from, valid_to);
    valid_to is null for the current state. mrr is in major units per month. -#}

with states as (
    select
        *,
        lead(valid_from) over (
            partition by subscription_id
            order by valid_from, event_seq, is_scheduled
        ) as next_valid_from,
        row_number() over (
            partition by subscription_id
            order by valid_from desc, event_seq desc, is_scheduled desc
        ) as recency
    from {{ ref('int_subscription_states') }}
)

select
    states.subscription_state_id,
    states.subscription_id,
    states.customer_id,
    states.tenant_id,
    states.plan_id,
    states.status,
    states.pending_plan_id,
    states.cancel_at_period_end,
    states.change_reason,
    states.source_event_id,
    states.current_period_start,
    states.current_period_end,
    states.valid_from,
    states.next_valid_from as valid_to,
    states.recency = 1 as is_current,
    plans.currency,
    plans.billing_interval,
    case
        when states.status in ('{{ var("mrr_statuses") | join("', '") }}')
            -- the subscriber's own price (int_subscription_states), else its plan's
            then coalesce(
                {{ monthly_amount('states.price_amount', 'plans.billing_interval') }},
                plans.monthly_amount,
                0
            )
        else {{ money(0) }}
    end as mrr
from states
left join {{ ref('dim_plans') }} as plans on states.plan_id = plans.plan_id
