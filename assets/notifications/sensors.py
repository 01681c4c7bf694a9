"""A failed run of this code location emails the ops address (OPS_ALERT_EMAIL) through the
notification toolkit."""

from __future__ import annotations

from dagster import DefaultSensorStatus, ResourceParam, RunFailureSensorContext, run_failure_sensor

from streaming.notifications.senders import Email, Senders
from streaming.notifications.templates import Message, render


def alert(context: RunFailureSensorContext) -> Message:
    run = context.dagster_run
    values = {
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition", "-"),
        "run_id": run.run_id,
        "error": context.failure_event.message,
    }
    return render("run_failed", "email", values)


@run_failure_sensor(
    name="ops_alert_on_run_failure",
    default_status=DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=False,
    description="Emails the ops address (OPS_ALERT_EMAIL) when any run of this location fails.",
)
def ops_alert_on_run_failure(
    context: RunFailureSensorContext, senders: ResourceParam[Senders]
) -> None:
    message = alert(context)
    ops = senders.settings.ops_alert_email
    key = f"alert:{context.dagster_run.run_id}"
    senders.email([Email(ops, message.subject, message.body, key)])
    context.log.info(f"alerted {ops}: {message.subject}")
