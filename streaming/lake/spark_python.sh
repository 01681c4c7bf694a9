#!/bin/sh
# The Python that Spark starts for the lake's workers (PYSPARK_PYTHON, set by
# streaming.lake.job when the deployment sets none).
#
# Spark puts $SPARK_HOME/python/lib/pyspark.zip and py4j's zip first on its workers'
# PYTHONPATH. The zips hold sources only, so each new worker compiles pyspark again: about
# 0.6 s of CPU a process, and a fresh session's first query starts sixteen of them. When
# SPARK_HOME is the installed pyspark package, the same modules are installed with their
# bytecode, so the zips of that package (PAYWALL_PYSPARK_LIB) are dropped from the path.
set -eu
if [ -n "${PAYWALL_PYSPARK_LIB:-}" ] && [ -n "${PYTHONPATH:-}" ]; then
    PYTHONPATH=$(printf '%s\n' "$PYTHONPATH" | tr ':' '\n' | grep -vF "$PAYWALL_PYSPARK_LIB/" | paste -sd: -)
    if [ -n "$PYTHONPATH" ]; then export PYTHONPATH; else unset PYTHONPATH; fi
fi
exec "$PAYWALL_SPARK_PYTHON" "$@"
