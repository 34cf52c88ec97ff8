# The ChannelHub image: the official Airflow image of the version pyproject.toml pins, plus the hub
# installed with the exact pins of requirements.lock. Every Airflow service of docker-compose.yml runs it,
# and so do the demo's sandboxes.
# The tag must follow apache-airflow in pyproject.toml (tests/test_compose.py checks it).
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

# socat: only for the demo profile (deploy/entrypoint.sh forwards the sandboxes to loopback).
USER root
RUN apt-get update \
  && apt-get install -y --no-install-recommends socat \
  && apt-get autoremove -yqq --purge \
  && apt-get clean \
  && rm -rf /var/lib/apt/lists/*

USER airflow
# The project lives at /opt/channelhub and is installed editable: the hub finds its config/, dags/,
# plugins/ and warehouse migrations next to its code (channelhub.db.PROJECT_ROOT).
COPY --chown=airflow:0 . /opt/channelhub
# requirements.lock as constraints, as `make install` does (it pins apache-airflow to the image's own
# version, so Airflow is never up- or downgraded); pip check fails the build when a pin breaks one of the
# providers the image ships (the CeleryExecutor's, for one) rather than leaving that for run time.
RUN pip install --no-cache-dir --constraint /opt/channelhub/requirements.lock --editable /opt/channelhub \
  && pip check

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/channelhub/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/channelhub/plugins \
    HUB_CHANNELS_CONFIG=/opt/channelhub/config/channels.yaml \
    HUB_IMPORT_DIR=/opt/channelhub/imports

ENTRYPOINT ["/usr/bin/dumb-init", "--", "/opt/channelhub/deploy/entrypoint.sh"]
CMD []
