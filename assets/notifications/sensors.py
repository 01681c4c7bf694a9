"""A failed run of this code location emails the ops address (OPS_ALERT_EMAIL) through the
notification senders."""

from dagster import DefaultSensorStatus, ResourceParam, RunFailureSensorContext, run_failure_sensor

from assets.notifications.resources import Senders


def alert_text(context: RunFailureSensorContext) -> tuple[str, str]:
    run = context.dagster_run
    partition = run.tags.get("dagster/partition", "-")
    subject = f"[paywall] {run.job_name} failed (partition {partition})"
    body = (
        f"Run {run.run_id} of {run.job_name} failed.\n"
        f"Partition: {partition}\n"
        f"Error: {context.failure_event.message}\n"
    )
    return subject, body


@run_failure_sensor(
    name="ops_alert_on_run_failure",
    default_status=DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=False,
    description="Emails the ops address (OPS_ALERT_EMAIL) when any run of this location fails.",
)
def ops_alert_on_run_failure(
    context: RunFailureSensorContext, senders: ResourceParam[Senders]
) -> None:
    subject, body = alert_text(context)
    senders.alert(subject, body)
    context.log.info(f"alerted {senders.ops_email}: {subject}")
