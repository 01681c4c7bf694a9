{{ config(dist='subscription_id', sort=['subscription_id', 'valid_from']) }}

{#- Every state a subscription was in: one per event, plus the changes the service
    scheduled for the period end — a downgrade to the pending plan, or a cancellation —
    when the period ended before any later event (billing's renewed / canceled event,
    which follows some time after the period end, then confirms it).

    Events carry the base row (plan, status, period) and only the columns their change
    touched: pending_plan_id is set by downgrade_scheduled and cleared by upgraded,
    renewed / reactivated (billing applies the downgrade) or canceled;
    cancel_at_period_end is set by cancel_scheduled. Both are carried forward
    here from the event that last touched them.

    price_amount is what this subscription pays for its plan: the amount of its last event
    that carried one (created, renewed, reactivated), while that event's plan is still its
    plan. Subscribers of one plan pay different prices (a price version is pinned at
    signup, moved only by a migration at a renewal); null after a plan change not yet
    billed, when the plan's price is all there is (dim_plans). -#}

with events as (
    select
        *,
        row_number() over (
            partition by subscription_id
            order by occurred_at, kafka_partition, kafka_offset, event_id
        ) as event_seq,
        lead(occurred_at) over (
            partition by subscription_id
            order by occurred_at, kafka_partition, kafka_offset, event_id
        ) as next_event_at
    from {{ ref('stg_subscription_events') }}
),

touches as (
    select
        *,
        max(
            case
                when event_type in (
                    'subscription.downgrade_scheduled',
                    'subscription.upgraded',
                    'subscription.renewed',
                    'subscription.reactivated',
                    'subscription.canceled'
                ) then event_seq
            end
        ) over (
            partition by subscription_id
            order by event_seq
            rows between unbounded preceding and current row
        ) as pending_set_seq,
        max(case when cancel_at_period_end then 1 else 0 end) over (
            partition by subscription_id
            order by event_seq
            rows between unbounded preceding and current row
        ) as cancel_was_scheduled,
        max(case when amount is not null then event_seq end) over (
            partition by subscription_id
            order by event_seq
            rows between unbounded preceding and current row
        ) as priced_seq
    from events
),

carried as (
    select
        touches.*,
        case
            when setter.event_type = 'subscription.downgrade_scheduled'
                and setter.pending_plan_id <> touches.plan_id
                then setter.pending_plan_id
        end as carried_pending_plan_id,
        touches.cancel_was_scheduled = 1 and touches.status <> 'canceled'
            as carried_cancel_at_period_end,
        case when priced.plan_id = touches.plan_id then priced.amount end as price_amount
    from touches
    left join events as setter
        on touches.subscription_id = setter.subscription_id
        and touches.pending_set_seq = setter.event_seq
    left join events as priced
        on touches.subscription_id = priced.subscription_id
        and touches.priced_seq = priced.event_seq
),

observed as (
    select
        event_id || ':event' as subscription_state_id,
        subscription_id,
        customer_id,
        tenant_id,
        plan_id,
        status,
        carried_pending_plan_id as pending_plan_id,
        carried_cancel_at_period_end as cancel_at_period_end,
        price_amount,
        current_period_start,
        current_period_end,
        occurred_at as valid_from,
        event_type as change_reason,
        event_id as source_event_id,
        event_seq,
        0 as is_scheduled
    from carried
),

scheduled as (
    select
        event_id || ':scheduled' as subscription_state_id,
        subscription_id,
        customer_id,
        tenant_id,
        case
            when carried_cancel_at_period_end then plan_id else carried_pending_plan_id
        end as plan_id,
        case when carried_cancel_at_period_end then 'canceled' else status end as status,
        cast(null as {{ dbt.type_string() }}) as pending_plan_id,
        false as cancel_at_period_end,
        -- a cancellation keeps the plan (and pays nothing); a downgrade's price is its plan's
        case when carried_cancel_at_period_end then price_amount end as price_amount,
        current_period_start,
        current_period_end,
        current_period_end as valid_from,
        case
            when carried_cancel_at_period_end then 'scheduled.cancel'
            else 'scheduled.downgrade'
        end as change_reason,
        event_id as source_event_id,
        event_seq,
        1 as is_scheduled
    from carried
    where
        (carried_cancel_at_period_end or carried_pending_plan_id is not null)
        and current_period_end <= {{ as_of() }}
        and (next_event_at is null or current_period_end < next_event_at)
)

select * from observed
union all
select * from scheduled
