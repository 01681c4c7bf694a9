-- SCD2: a subscription is in exactly one state at any instant — intervals never overlap,
-- never run backwards, and only the last one is open.
select a.subscription_id, a.subscription_state_id, b.subscription_state_id as overlaps_with
from {{ ref('fct_subscriptions') }} as a
inner join {{ ref('fct_subscriptions') }} as b
    on a.subscription_id = b.subscription_id
    and a.subscription_state_id <> b.subscription_state_id
    and a.valid_from < coalesce(b.valid_to, cast('9999-12-31' as timestamp))
    and b.valid_from < coalesce(a.valid_to, cast('9999-12-31' as timestamp))
    and a.valid_from < coalesce(a.valid_to, cast('9999-12-31' as timestamp))
    and b.valid_from < coalesce(b.valid_to, cast('9999-12-31' as timestamp))

union all

select subscription_id, subscription_state_id, 'runs backwards'
from {{ ref('fct_subscriptions') }}
where valid_to < valid_from

union all

select subscription_id, max(subscription_state_id), 'not exactly one open interval'
from {{ ref('fct_subscriptions') }}
group by subscription_id
having sum(case when valid_to is null then 1 else 0 end) <> 1
    or sum(case when is_current then 1 else 0 end) <> 1
